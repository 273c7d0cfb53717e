"""Chapter settings: notebook parameters → one frozen dataclass per chapter.

Each chapter's papermill ``parameters`` cell sets ``profile`` and a few optional overrides;
``<Chapter>Settings.for_profile(profile, **overrides)`` merges them with the profile's values
and validates every field. ``smoke`` is sized for tests (seconds), ``default`` for the book
build, ``paper`` for full scale. Every field carries its provenance (see
:mod:`equivar.provenance`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from equivar import data
from equivar.provenance import check_types, setting

PROFILES = ("smoke", "default", "paper")


@dataclass(frozen=True)
class Sampling:
    """How images become ring grids (shared by every chapter)."""

    n_angles: int = setting(8, "west", "8 points per ring: the symmetry group is C_8")
    rings_28px: int = setting(16, "ours", "rings for 28×28 images (4 radial qubits); West used "
                                          "1024 rings on larger STM images")
    rings_8px: int = setting(4, "ours", "rings for the 8×8 digits (2 radial qubits)")
    method: str = setting("bilinear", "ours", "West sampled the nearest pixel; bilinear is "
                                              "smooth in the pixels, which transfer attacks "
                                              "differentiate through")
    ring_offset: float = setting(0.0, "ours", "West turned each ring by an index-dependent "
                                              "angle (value not published for 28×28)")

    def n_rings(self, image_shape: tuple[int, int]) -> int:
        """Number of rings for images of ``image_shape`` (H, W)."""
        return self.rings_8px if min(image_shape) <= 8 else self.rings_28px


SAMPLING = Sampling()


@dataclass(frozen=True)
class Settings:
    """Base of the chapter settings: profile lookup, overrides, type checks."""

    profile: str = setting("default", "ours", "smoke: tests; default: book; paper: full scale")
    PROFILES: ClassVar[dict[str, dict]] = {}

    def __post_init__(self):
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {self.profile!r}")
        check_types(self)
        for name in getattr(self, "datasets", ()):
            data.info(name)  # ValueError listing the valid names

    @classmethod
    def for_profile(cls, profile: str, **overrides):
        """Settings of ``profile`` with ``overrides`` (``None`` keeps the profile's value)."""
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
        names = {f.name for f in dataclasses.fields(cls)} - {"profile"}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"{cls.__name__} has no setting(s) {unknown}; "
                             f"valid: {sorted(names)}")
        values = dict(cls.PROFILES.get(profile, {}))
        for key, value in overrides.items():
            if value is not None:
                values[key] = tuple(value) if isinstance(value, list) else value
        return cls(profile=profile, **values)


ALL_DATASETS = ("fashion-mnist", "mnist", "mnist-5k", "mnist-rot", "digits", "synthetic")


@dataclass(frozen=True)
class TwirlSettings(Settings):
    """Chapter 1: twirl characterization."""

    seed: int = setting(0, "ours", "seed of random weights, image subsets and random states")
    datasets: tuple[str, ...] = setting(
        ALL_DATASETS, "ours", "the abstract says 'several datasets' without naming them; the "
        "group's earlier benchmarks used MNIST and Fashion-MNIST; MNIST-rot, digits and the "
        "planted synthetic set are our additions")
    n_per_class: int = setting(200, "ours", "images per class for the sector-weight statistics")
    n_check: int = setting(16, "ours", "images on which each identity is checked")
    n_layers: int = setting(3, "ours", "depth of the random-weight models whose identities are "
                                       "checked (the identities hold for any depth)")

    PROFILES: ClassVar[dict[str, dict]] = {
        "smoke": dict(n_per_class=10, n_check=4,
                      datasets=("fashion-mnist", "digits", "synthetic")),
        "default": dict(),
        "paper": dict(n_per_class=1000, n_check=64),
    }
