"""Pixels to logits as one differentiable module: ring sampling, a sector filter, encoding,
the quantum classifier. What every attack on a quantum model differentiates through
(chapters 3 and 4).
"""
from __future__ import annotations

import torch
from torch import nn

from equivar.core.model import QuantumClassifier, amplitudes
from equivar.core.rings import sample_grid

class QuantumPipeline(nn.Module):
    """Pixels → ring grid (bilinear) → amplitudes → quantum classifier → logits.

    Input: images (N, H, W) or (N, 1, H, W) in [0, 1]; differentiable end to end (the fast
    path of :mod:`equivar.core.simulator`), so torchattacks can attack it white-box. An optional
    sector filter (chapter 4) acts on the grid before the circuit.
    """

    def __init__(self, model: QuantumClassifier, grid_filter=None):
        super().__init__()
        self.model = model
        self.grid_filter = grid_filter  # an equivar.core.filters.SectorFilter, or None

    def forward(self, images):
        x = torch.as_tensor(images)
        if x.ndim == 4 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 3:
            raise ValueError("images must have shape (N, H, W) or (N, 1, H, W) (grey scale), "
                             f"got {tuple(x.shape)}")
        grids = sample_grid(x.to(torch.float64))
        states = amplitudes(grids) if self.grid_filter is None else self.grid_filter.states(grids)
        return self.model(states)
