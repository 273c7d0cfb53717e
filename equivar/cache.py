"""Atomic files and the on-disk result cache.

Every file equivar writes (converted downloads, figures, cached results) goes through
:func:`atomic_path`: the content is written to a temporary file in the target directory and
renamed into place only once complete, so an interrupted run never leaves a half-written file
under the final name.

:func:`cached` stores expensive results (trained weights, surrogate models, adversarial sets)
under ``$EQUIVAR_CACHE_DIR/results/<kind>/<key>.pt``, keyed by their parameters (including the
data fingerprint), the package version and a digest of the code that computes them. Used by
chapters 2-4 and ``equivar cache``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from equivar.paths import cache_root


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    On any exception (including KeyboardInterrupt) the temporary file is removed and ``path``
    is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------- result cache

# Subpackages whose code determines cached results: any change to them invalidates the cache.
CODE_PACKAGES = ("core", "data", "learn", "adversary")


def code_digest() -> str:
    """SHA-256 over the source files of :data:`CODE_PACKAGES`."""
    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for package in CODE_PACKAGES:
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


def results_dir(kind: str | None = None) -> Path:
    root = cache_root() / "results"
    return root / kind if kind else root


def cached(kind: str, params: dict, compute, fmt: str = "pt"):
    """Return the cached result of ``compute()`` for ``(kind, params)``, computing it once.

    ``fmt="pt"``: ``compute`` returns a dict of tensors, numbers, strings and lists (saved with
    ``torch.save``); ``fmt="npz"``: a dict of numpy arrays (saved with ``np.savez_compressed``).
    The file's SHA-256 is recorded in a JSON file beside it and checked on every load; an
    entry that fails the check or cannot be read is recomputed. Writes are atomic, so an
    interrupted run leaves no entry behind. Returns ``(result, hit)``.
    """
    if fmt not in ("pt", "npz"):
        raise ValueError(f"fmt must be 'pt' or 'npz', got {fmt!r}")
    key = cache_key(kind, params)
    path = results_dir(kind) / f"{key}.{fmt}"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        try:
            if json.loads(meta.read_text()).get("sha256") == sha256_file(path):
                return _read(path, fmt), True
        except (RuntimeError, EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile,
                pickle.UnpicklingError):
            pass
    path.unlink(missing_ok=True)
    meta.unlink(missing_ok=True)
    result = compute()
    with atomic_path(path) as tmp:
        _write(tmp, result, fmt)
        digest = sha256_file(tmp)
    with atomic_path(meta) as tmp:
        tmp.write_text(json.dumps({"kind": kind, "key": key, "format": fmt, "sha256": digest,
                                   "params": params}, indent=2, sort_keys=True, default=str)
                       + "\n")
    return result, False


def _write(path: Path, result, fmt: str) -> None:
    if fmt == "pt":
        torch.save(result, path)
    else:
        with open(path, "wb") as handle:
            np.savez_compressed(handle, **result)


def _read(path: Path, fmt: str):
    if fmt == "pt":
        return torch.load(path, weights_only=True)
    with np.load(path) as table:
        return {name: table[name] for name in table.files}


def entries() -> list[dict]:
    """Every cache entry: kind, key, format, size in bytes, parameters."""
    out = []
    root = results_dir()
    if not root.exists():
        return out
    for meta in sorted(root.glob("*/*.json")):
        record = json.loads(meta.read_text())
        data_file = meta.with_suffix("." + record.get("format", "pt"))
        if not data_file.exists():
            continue
        record["bytes"] = data_file.stat().st_size
        out.append(record)
    return out


def clear(kind: str | None = None) -> int:
    """Delete cache entries (of one kind, or all); returns how many were removed."""
    removed = 0
    root = results_dir(kind)
    if not root.exists():
        return 0
    for meta in sorted(root.rglob("*.json")):
        for suffix in (".pt", ".npz"):
            target = meta.with_suffix(suffix)
            if target.exists():
                target.unlink()
                removed += 1
        meta.unlink()
    return removed
