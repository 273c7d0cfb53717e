"""Sector filters: scale one symmetry sector of every ring's angular spectrum (chapter 4).

A :class:`SectorFilter` scales sector k (with its partner N-k) of every ring's angular DFT by
α. It commutes with the rotations, so a filtered model stays exactly invariant. The three
suppression mechanisms of chapter 4 are filters on sector 0 (the ring means):

* (a) **input projection**: α = 0, then renormalise (each ring's mean subtracted);
* (b) **down-weighting**: 0 < α < 1, then renormalise;
* (c) **readout projection**: the observable M_c replaced by P M_c P with P = 1 - Π_0, i.e.
  α = 0 *after* normalising, without renormalising. For one set of weights
  f^(c)(x) = ‖Pψ‖² f^(a)(x): the same predictions, logits scaled per input.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from equivar.core import sectors
from equivar.core.model import amplitudes


@dataclass(frozen=True)
class SectorFilter:
    """Scale angular modes {k, N-k} of every ring by ``alpha``.

    ``renormalise=True``: filter the grid, then amplitude-encode (mechanisms a, b);
    ``renormalise=False``: encode, then filter, leaving the norm below 1 (mechanism c).
    """

    k: int = 0
    alpha: float = 0.0
    renormalise: bool = True

    def __post_init__(self):
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must lie in [0, 1], got {self.alpha}")
        if self.k < 0:
            raise ValueError(f"sector k must be non-negative, got {self.k}")

    def scale(self, grids):
        """Grids with modes {k, N-k} multiplied by alpha (real in, real out)."""
        n = grids.shape[-1]
        factor = np.ones(n)
        factor[sectors.sector_partners(self.k, n)] = self.alpha
        return sectors.scale_modes(grids, factor)

    def states(self, grids):
        """Encoded states (n, R·N) of ring grids (n, R, N), numpy or torch."""
        if self.renormalise:
            return amplitudes(self.scale(grids))
        filtered = self.scale(sectors.normalise(grids))
        return filtered.reshape(filtered.shape[0], -1)


NO_FILTER = SectorFilter(k=0, alpha=1.0)


def projector_off_sector(n_rad: int, n_ang: int, k: int = 0) -> np.ndarray:
    """P = 1 - Π_k - Π_{N-k} as a (D, D) matrix."""
    proj = sectors.sector_projectors(n_rad, n_ang)
    modes = sectors.sector_partners(k, 2 ** n_ang)
    return np.eye(proj.shape[-1]) - sum(proj[m] for m in modes)
