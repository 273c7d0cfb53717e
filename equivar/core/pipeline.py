"""Pixels to logits as one differentiable module: ring sampling, a sector filter, encoding,
the quantum classifier. What every attack on a quantum model differentiates through
(chapters 3 and 4).
"""
from __future__ import annotations

import torch
from torch import nn

from equivar.core.model import QuantumClassifier, amplitudes
from equivar.core.rings import sample_grid


def as_images(images) -> torch.Tensor:
    """Images as a floating tensor (N, H, W); accepts (N, H, W) or (N, 1, H, W)."""
    x = torch.as_tensor(images)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError("images must have shape (N, H, W) or (N, 1, H, W) (grey scale), "
                         f"got {tuple(x.shape)}")
    if min(x.shape[-2:]) < 1:
        raise ValueError(f"images must be at least 1×1 pixels, got {tuple(x.shape[-2:])}")
    return x if x.is_floating_point() else x.to(torch.float32)


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
        grids = sample_grid(as_images(images).to(torch.float64))
        states = amplitudes(grids) if self.grid_filter is None else self.grid_filter.states(grids)
        return self.model(states)
