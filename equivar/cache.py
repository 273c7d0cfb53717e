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
from collections.abc import Iterator
from pathlib import Path

import pooch
import torch


def cache_root() -> Path:
    """Root of equivar's caches: ``$EQUIVAR_CACHE_DIR`` or the user cache (``~/.cache/equivar``)."""
    env = os.environ.get("EQUIVAR_CACHE_DIR")
    return Path(env) if env else Path(pooch.os_cache("equivar"))


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

# Modules whose code determines cached results: any change to them invalidates the cache.
CODE_MODULES = ("data", "rings", "model", "unitary", "train", "sectors", "attacks", "suppress")


def code_digest() -> str:
    """SHA-256 over the source of :data:`CODE_MODULES` (those that exist)."""
    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in CODE_MODULES:
        path = here / f"{name}.py"
        if path.exists():
            digest.update(name.encode())
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


def cached(kind: str, params: dict, compute):
    """Return the cached result of ``compute()`` for ``(kind, params)``, computing it once.

    ``compute`` returns a dict of tensors, numbers, strings and lists (saved with
    ``torch.save``). The result and a JSON record of its parameters are written atomically, so
    an interrupted run leaves no entry behind. Returns ``(result, hit)``.
    """
    key = cache_key(kind, params)
    path = results_dir(kind) / f"{key}.pt"
    if path.exists():
        try:
            return torch.load(path, weights_only=True), True
        except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError):
            path.unlink(missing_ok=True)  # unreadable entry: recompute it
    result = compute()
    with atomic_path(path) as tmp:
        torch.save(result, tmp)
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps({"kind": kind, "key": key, "params": params}, indent=2,
                                  sort_keys=True, default=str) + "\n")
    return result, False


def entries() -> list[dict]:
    """Every cache entry: kind, key, size in bytes, parameters."""
    out = []
    root = results_dir()
    if not root.exists():
        return out
    for meta in sorted(root.glob("*/*.json")):
        data_file = meta.with_suffix(".pt")
        if not data_file.exists():
            continue
        record = json.loads(meta.read_text())
        record["bytes"] = data_file.stat().st_size
        out.append(record)
    return out


def clear(kind: str | None = None) -> int:
    """Delete cache entries (of one kind, or all); returns how many were removed."""
    removed = 0
    root = results_dir(kind)
    if not root.exists():
        return 0
    for path in sorted(root.rglob("*.pt")):
        path.unlink()
        path.with_suffix(".json").unlink(missing_ok=True)
        removed += 1
    return removed
