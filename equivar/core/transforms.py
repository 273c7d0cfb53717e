"""Targeted transformations of ring grids: each keeps some invariant statistics, destroys others.

All act on grids (n, R, N) before amplitude encoding (which renormalises), are exact, and are
seeded by a numpy Generator. :data:`TRANSFORMS` lists them with what they keep and destroy;
:func:`swap_sectors` is the sector swap of chapter 2. Used by chapter 2.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from equivar.core import rings, sectors


def global_rotation(grids, rng):
    """Rotate every image by a random element of C_N (the control)."""
    m = rng.integers(grids.shape[-1], size=len(grids))
    return np.stack([rings.rotate(g, int(k)) for g, k in zip(grids, m)])


def ring_means_only(grids, rng=None):
    """Keep sector k = 0 (each ring replaced by its mean), zero k ≥ 1."""
    return sectors.keep_sectors(grids, [0])


def ring_means_removed(grids, rng=None):
    """Zero sector k = 0 (subtract each ring's mean), keep k ≥ 1."""
    return sectors.keep_sectors(grids, range(1, grids.shape[-1]))


def rotate_rings_independently(grids, rng):
    """Turn each ring of each image by its own random element of C_N."""
    n, r, a = grids.shape
    shifts = rng.integers(a, size=(n, r))
    index = (np.arange(a)[None, None, :] - shifts[..., None]) % a
    return np.take_along_axis(grids, index, axis=-1)


def shuffle_within_rings(grids, rng):
    """Permute the angles of each ring at random (independently per ring and image)."""
    n, r, a = grids.shape
    index = np.argsort(rng.random((n, r, a)), axis=-1)
    return np.take_along_axis(grids, index, axis=-1)


def shuffle_rings(grids, rng):
    """Permute the rings of each image at random (the radial order is lost)."""
    n, r, a = grids.shape
    index = np.argsort(rng.random((n, r)), axis=-1)
    return np.take_along_axis(grids, index[..., None], axis=1)


@dataclass(frozen=True)
class Transform:
    name: str
    apply: Callable
    keeps: str
    destroys: str


TRANSFORMS = (
    Transform("none", lambda g, rng=None: g, "everything", "nothing"),
    Transform("global rotation", global_rotation, "every invariant statistic (all ρ_k)",
              "nothing an invariant model can see (control)"),
    Transform("ring means only", ring_means_only, "ring means (ρ_0)",
              "all angular structure (ρ_k, k ≥ 1)"),
    Transform("ring means removed", ring_means_removed, "angular structure (ρ_k, k ≥ 1)",
              "ring means (ρ_0)"),
    Transform("rings turned independently", rotate_rings_independently,
              "ring means, per-ring angular power spectra (diagonals of ρ_k)",
              "cross-ring phases (off-diagonals of ρ_k, k ≥ 1)"),
    Transform("angles shuffled within rings", shuffle_within_rings,
              "ring means, ring energies (diagonal of Σ_k ρ_k)",
              "angular power spectra and cross-ring structure"),
    Transform("rings shuffled", shuffle_rings, "the multiset of per-ring statistics",
              "the radial order (which ring holds what)"),
)


def by_name(name: str) -> Transform:
    for t in TRANSFORMS:
        if t.name == name:
            return t
    raise ValueError(f"unknown transformation {name!r}; valid: {[t.name for t in TRANSFORMS]}")


def swap_sectors(grids_a, grids_b, k: int):
    """Grids A with sector k (and its partner N-k) taken from grids B, both normalised first.

    Returns real grids (n, R, N). The sector weights of A at k, N-k become those of B.
    """
    a, b = sectors.normalise(grids_a), sectors.normalise(grids_b)
    n_angles = a.shape[-1]
    modes = sectors.sector_partners(k, n_angles)
    ha, hb = sectors.angular_dft(a), sectors.angular_dft(b)
    ha[..., modes] = hb[..., modes]
    return sectors.inverse_angular_dft(ha).real
