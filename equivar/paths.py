"""Where equivar reads and writes: the checkout, the cache, the data and the figures.

Three environment variables move them: ``EQUIVAR_CACHE_DIR`` (default ``~/.cache/equivar``),
``EQUIVAR_DATA_DIR`` (default ``<cache>/data``) and ``EQUIVAR_FIGURES_DIR`` (default
``book/figures`` of the checkout). A relative value is taken relative to the directory where
the command was started: :func:`absolute_environment` rewrites them to absolute paths once, in
the process that launches notebook kernels, so a kernel started in ``notebooks/`` sees the same
places as the shell. Bottom layer: imports nothing of equivar.
"""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

ENVIRONMENT = ("EQUIVAR_CACHE_DIR", "EQUIVAR_DATA_DIR", "EQUIVAR_FIGURES_DIR")


def absolute_environment(environ=os.environ) -> dict[str, str]:
    """Rewrite relative ``EQUIVAR_*_DIR`` values in ``environ`` to absolute paths (against the
    current directory); an empty value is removed. Returns the values set."""
    out = {}
    for name in ENVIRONMENT:
        value = environ.get(name)
        if value is None:
            continue
        if not value.strip():
            del environ[name]
            continue
        environ[name] = out[name] = str(Path(value).expanduser().absolute())
    return out


def _from_env(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser().absolute() if value else None


def cache_root() -> Path:
    """Root of equivar's caches: ``$EQUIVAR_CACHE_DIR`` or the user cache (``~/.cache/equivar``)."""
    env = _from_env("EQUIVAR_CACHE_DIR")
    if env is not None:
        return env
    return platformdirs.user_cache_path("equivar").absolute()


def data_dir() -> Path:
    """Where downloads go and user-provided data files are looked for: ``$EQUIVAR_DATA_DIR``."""
    env = _from_env("EQUIVAR_DATA_DIR")
    return env if env is not None else cache_root() / "data"


def project_root() -> Path:
    """The checkout holding ``_toc.yml`` (the package's parent in an editable install)."""
    here = Path(__file__).resolve().parents[1]
    if (here / "_toc.yml").exists():
        return here
    for path in [Path.cwd(), *Path.cwd().parents]:
        if (path / "_toc.yml").exists():
            return path
    raise FileNotFoundError("no _toc.yml above the package or the working directory: "
                            "run from an equivar checkout or pass an output directory")


def figures_dir(override: str | os.PathLike | None = None) -> Path:
    """Where figures go: ``override``, else ``$EQUIVAR_FIGURES_DIR``, else ``book/figures``."""
    if override:
        return Path(override).expanduser().absolute()
    env = _from_env("EQUIVAR_FIGURES_DIR")
    return env if env is not None else project_root() / "book" / "figures"


def writable_dir(path: Path, what: str) -> Path:
    """``path`` if it is (or can be created as) a writable directory; ValueError naming it and
    ``what`` it is for otherwise."""
    path = Path(path)
    for ancestor in (path, *path.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                where = "" if ancestor == path else f" ({ancestor} is a file)"
                raise ValueError(f"{what} {path} cannot be a directory{where}"
                                 if where else f"{what} {path} is a file, not a directory")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{what} {path} cannot be created: {err.strerror or err}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path} is not writable")
    return path
