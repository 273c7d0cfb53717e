"""Atomic files and the on-disk result cache.

Every file equivar writes (downloads it converted, figures, cached results) goes through
:func:`atomic_path`: the content is written to a temporary file in the target directory and
renamed into place only once complete, so an interrupted run never leaves a half-written file
under the final name. Used by :mod:`equivar.data` and :mod:`equivar.plots`.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pooch


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
