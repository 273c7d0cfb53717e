"""equivar: reproducible companion to arXiv:2604.15552.

Modules: ``data`` (datasets), ``rings`` (ring sampling and C_N), ``model`` (the quantum
classifiers), ``unitary`` (fast circuit compilation), ``sectors`` (twirl and symmetry sectors),
``train`` (optimisation), ``plots`` (figures), ``config`` / ``provenance`` (chapter settings),
``notebooks`` / ``book`` / ``cli`` (running the book).
"""
from importlib import metadata

try:
    __version__ = metadata.version("equivar")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"
