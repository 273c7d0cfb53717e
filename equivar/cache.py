"""Atomic files and the on-disk result cache.

Every file equivar writes (converted downloads, figures, cached results) goes through
:func:`atomic_path`: the content is written to a temporary file in the target directory and
renamed into place only once complete, so an interrupted run never leaves a half-written file
under the final name. Files get the permissions the user's umask allows (as ``open`` would).

:func:`cached` stores expensive results (trained weights, surrogate models, adversarial sets)
under ``$EQUIVAR_CACHE_DIR/results/<kind>/<key>.<fmt>`` with a JSON record beside it, keyed by
their parameters (including the data fingerprint), the package version and a digest of the
code that computes them. One process at a time computes a key (a file lock per key), so
parallel workers never compute or write one entry twice. :func:`clear` deletes only entries
whose record names their own kind and key, never anything else under the cache directory.
Used by chapters 2-4 and ``equivar cache``.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock

from equivar.paths import cache_root


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    On any exception (including KeyboardInterrupt) the temporary file is removed and ``path``
    is left as it was.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; cannot write a file there")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the file what a plain open() would under this umask
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no reader: set and restore at once
    os.umask(mask)
    return mask


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------- result cache

# The kinds of result the package caches; ``cached`` and ``clear`` accept no other.
KINDS = ("model", "surrogate", "adversarial", "threat", "probe", "score")
FORMATS = ("pt", "npz")
_KEY = re.compile(r"^[0-9a-f]{24}$")
# temporary files of atomic_path for an entry: ".<key>.<fmt|json>.<random>.part"
_PART = re.compile(r"^\.(?P<key>[0-9a-f]{24})\.(pt|npz|json)\.[^/]*\.part$")

# Subpackages whose code determines cached results: any change to them invalidates the cache.
CODE_PACKAGES = ("core", "data", "learn", "adversary")


def code_digest(packages: tuple[str, ...] = CODE_PACKAGES) -> str:
    """SHA-256 over the source files of ``packages`` (subpackages of equivar)."""
    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for package in packages:
        for path in sorted((here / package).glob("*.py")):
            digest.update(f"{package}/{path.name}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(kind: str, params: dict) -> str:
    """Key of a cached result: its kind, parameters, the package version and code digest."""
    from equivar import __version__

    blob = json.dumps({"kind": kind, "params": params, "version": __version__,
                       "code": code_digest()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def check_kind(kind: str) -> str:
    """``kind`` if it is one of :data:`KINDS`; ValueError naming the valid kinds otherwise."""
    if kind not in KINDS:
        raise ValueError(f"unknown cache kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    return kind


def results_dir(kind: str | None = None) -> Path:
    """``<cache>/results`` or, for a known ``kind``, its folder in it."""
    root = cache_root() / "results"
    return root / check_kind(kind) if kind is not None else root


def cached(kind: str, params: dict, compute, fmt: str = "pt"):
    """Return the cached result of ``compute()`` for ``(kind, params)``, computing it once.

    ``fmt="pt"``: ``compute`` returns a dict of tensors, numbers, strings and lists (saved with
    ``torch.save``); ``fmt="npz"``: a dict of numpy arrays (saved with ``np.savez_compressed``).
    The file's SHA-256 is recorded in a JSON file beside it and checked on every load; an
    entry that fails the check or cannot be read is recomputed. Writes are atomic and hold a
    lock on the key, so an interrupted run leaves no entry behind and two processes never
    compute the same entry. Returns ``(result, hit)``.
    """
    check_kind(kind)
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be 'pt' or 'npz', got {fmt!r}")
    key = cache_key(kind, params)
    folder = results_dir(kind)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.{fmt}"
    meta = path.with_suffix(".json")
    with FileLock(folder / f".{key}.lock"):
        if path.exists() and meta.exists():
            try:
                record = json.loads(meta.read_text())
                if isinstance(record, dict) and record.get("sha256") == sha256_file(path):
                    return _read(path, fmt), True
            except (RuntimeError, EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile,
                    pickle.UnpicklingError):
                pass
        # a broken entry of this key, or leftovers of a writer killed while holding the lock
        path.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        for part in _parts(folder, key):
            part.unlink(missing_ok=True)
        result = compute()
        with atomic_path(path) as tmp:
            _write(tmp, result, fmt)
            digest = sha256_file(tmp)
        with atomic_path(meta) as tmp:
            tmp.write_text(json.dumps({"kind": kind, "key": key, "format": fmt,
                                       "sha256": digest, "params": params},
                                      indent=2, sort_keys=True, default=str) + "\n")
    return result, False


def _parts(folder: Path, key: str | None = None) -> list[Path]:
    """Temporary files left in ``folder`` by interrupted writes (of one key, or all)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if (m := _PART.match(p.name))
                  and (key is None or m["key"] == key) and p.is_file())


# numpy and torch are imported where entries are read and written, so that commands which only
# run notebooks (and import this module for atomic_path) start without loading torch.

def _write(path: Path, result, fmt: str) -> None:
    import numpy as np
    import torch

    if fmt == "pt":
        # through a buffer: torch names the zip's folder after the (random) temporary file,
        # which would make identical results differ byte for byte
        buffer = io.BytesIO()
        torch.save(result, buffer)
        path.write_bytes(buffer.getvalue())
    else:
        with open(path, "wb") as handle:
            np.savez_compressed(handle, **result)


def _read(path: Path, fmt: str):
    import numpy as np
    import torch

    if fmt == "pt":
        return torch.load(path, weights_only=True)
    with np.load(path) as table:
        return {name: table[name] for name in table.files}


def _own_record(meta: Path, kind: str) -> dict | None:
    """The record in ``meta`` if it is one the cache wrote for ``kind``: a JSON object naming
    this kind and the file's own key, with a known format; ``None`` otherwise."""
    if not _KEY.match(meta.stem) or not meta.is_file():
        return None
    try:
        record = json.loads(meta.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or record.get("kind") != kind \
            or record.get("key") != meta.stem or record.get("format") not in FORMATS:
        return None
    return record


def entries() -> list[dict]:
    """Every cache entry: kind, key, format, size in bytes, parameters, and ``status``
    (``ok``; ``missing data`` when the record's data file is gone). Files in the kind folders
    that are not entries are reported as ``status`` ``not an entry`` (a record that is not
    one the cache wrote) or ``partial`` (left by an interrupted write), with their ``path``."""
    out = []
    for kind in KINDS:
        folder = cache_root() / "results" / kind
        if not folder.is_dir():
            continue
        for meta in sorted(folder.glob("*.json")):
            record = _own_record(meta, kind)
            if record is None:
                out.append({"kind": kind, "key": meta.stem, "status": "not an entry",
                            "path": str(meta), "bytes": _size(meta), "params": {}})
                continue
            data_file = meta.with_suffix("." + record["format"])
            record["status"] = "ok" if data_file.is_file() else "missing data"
            record["bytes"] = _size(data_file)
            record["path"] = str(data_file)
            out.append(record)
        for part in _parts(folder):
            out.append({"kind": kind, "key": _PART.match(part.name)["key"], "status": "partial",
                        "path": str(part), "bytes": _size(part), "params": {}})
    return out


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def clear(kind: str | None = None) -> int:
    """Delete the cache's own entries (of one kind, or of all :data:`KINDS`) and the partial
    files of interrupted writes; returns how many entries were removed.

    Only files the cache provably wrote are deleted: a record whose JSON names its own kind
    and key, its data file, its lock, and temporary files named after an entry's key. Nothing
    else in the folders (and nothing outside them) is touched; no folder is searched
    recursively.
    """
    kinds = KINDS if kind is None else (check_kind(kind),)
    removed = 0
    for name in kinds:
        folder = cache_root() / "results" / name
        if not folder.is_dir():
            continue
        for meta in sorted(folder.glob("*.json")):
            record = _own_record(meta, name)
            if record is None:
                continue
            with FileLock(folder / f".{meta.stem}.lock"):
                meta.with_suffix("." + record["format"]).unlink(missing_ok=True)
                meta.unlink(missing_ok=True)
            (folder / f".{meta.stem}.lock").unlink(missing_ok=True)
            removed += 1
        for part in _parts(folder):
            part.unlink(missing_ok=True)
    return removed
