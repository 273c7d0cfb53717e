"""equivar.learn.probes: invariant feature sets, the probe's choice on validation, the ideal
measurement's structure."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equivar import data
from equivar.core import rings
from equivar.learn import probes


@pytest.fixture(scope="module")
def digits():
    x, y = data.load("digits", "train", n=300, seed=1)
    return x, rings.sample(x, 16, 8), y


@pytest.mark.parametrize("kind", ["west-parity", "sector-blocks", "k=0", "k>=1"])
def test_invariant_features_do_not_change_under_rotation(digits, kind, atol):
    x, grids, _ = digits
    for m in range(8):
        turned = probes.features(x, rings.rotate(grids, m), kind)
        assert np.abs(turned - probes.features(x, grids, kind)).max() < atol


def test_grid_features_do_change_under_rotation(digits):
    x, grids, _ = digits
    assert np.abs(probes.features(x, rings.rotate(grids, 1), "grid")
                  - probes.features(x, grids, "grid")).max() > 1e-3


def test_k0_features_are_the_ring_mean_outer_product(digits, atol):
    x, grids, _ = digits
    f = probes.features(x, grids, "k=0")[:, :16]  # the diagonal: N μ_r²
    from equivar.core import sectors

    mu = sectors.ring_means(sectors.normalise(grids))
    assert np.abs(f - 8 * mu ** 2).max() < atol


def test_probe_chooses_on_validation_and_scores_test_once(digits):
    x, grids, y = digits
    f = probes.features(x, grids, "sector-blocks")
    out = probes.fit_probe((f[:200], y[:200]), (f[200:], y[200:]), strengths=(0.01, 1.0))
    assert set(out["tried"]) == {0.01, 1.0} and out["C"] in (0.01, 1.0)
    assert "test_accuracy" not in out and out["valid_accuracy"] > 0.5


def test_ideal_measurement_unitaries_and_probabilities(digits, atol):
    _, grids, _ = digits
    from equivar.core import sectors

    model = probes.IdealMeasurement(probes.groups_of("west", 8), 16, 10, scale=1.0)
    u = model.unitaries()
    eye = torch.eye(16, dtype=u.dtype)
    assert (u @ u.conj().transpose(-1, -2) - eye).abs().max() < atol
    blocks = torch.as_tensor(sectors.sector_blocks(grids))
    full = probes.IdealMeasurement(probes.groups_of("west", 8), 16, 16, scale=1.0)
    assert (full(blocks).sum(1) - 1).abs().max() < atol  # probabilities of all radial states


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown feature set 'fourier'"):
        probes.features(np.zeros((1, 8, 8)), np.ones((1, 16, 8)), "fourier")
    with pytest.raises(ValueError, match="variant must be 'west' or 'sector'"):
        probes.groups_of("baseline", 8)
