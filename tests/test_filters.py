"""equivar.core.filters: the sector filter, the (a)/(c) equivalence, invariance."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equivar import data
from equivar.core import sectors
from equivar.core import filters
from equivar.core.model import ModelConfig, QuantumClassifier, amplitudes, assert_invariant
from equivar.core.rings import sample_grid


@pytest.fixture(scope="module")
def grids():
    x, _ = data.load("fashion-mnist", "test", n=16, seed=6)
    return sample_grid(x)


def test_alpha_zero_is_the_input_projection(grids, atol):
    states = filters.SectorFilter(0, 0.0).states(grids)
    expected = amplitudes(sectors.keep_sectors(grids, range(1, 8)))
    assert np.abs(states - expected).max() < atol
    assert np.abs(sectors.ring_means(states.reshape(-1, 16, 8))).max() < atol


def test_alpha_one_changes_nothing(grids, atol):
    assert np.abs(filters.NO_FILTER.states(grids) - amplitudes(grids)).max() < atol


def test_downweighting_scales_the_ring_mean_weight(grids, atol):
    w = sectors.sector_weights(grids)
    scaled = sectors.sector_weights(filters.SectorFilter(0, 0.5).scale(grids))
    # before renormalisation: w_0 shrinks by alpha^2 relative to the others
    ratio = (scaled[:, 0] / scaled[:, 1:].sum(1)) / (w[:, 0] / w[:, 1:].sum(1))
    assert np.abs(ratio - 0.25).max() < 1e-9


@pytest.mark.parametrize("variant", ["west", "sector"])
def test_readout_projection_equals_pmp_and_scaled_input_projection(grids, variant, atol):
    model = QuantumClassifier(ModelConfig(variant=variant, n_layers=3), seed=2)
    a = model.readout(filters.SectorFilter(0, 0.0, True).states(grids)).detach().numpy()
    c_states = filters.SectorFilter(0, 0.0, False).states(grids)
    c = model.readout(c_states).detach().numpy()
    P = filters.projector_off_sector(4, 3, 0)
    M = model.observables().detach().numpy()
    psi = amplitudes(grids)
    pmp = np.einsum("bi,cij,bj->bc", psi, P @ M @ P, psi).real
    assert np.abs(c - pmp).max() < atol
    norm = (c_states ** 2).sum(1)
    assert np.abs(c - norm[:, None] * a).max() < atol
    assert (c.argmax(1) == a.argmax(1)).all()
    assert 0 < norm.max() < 1  # negative control: the normalisation really differs


@pytest.mark.parametrize("k", [0, 2, 3])
def test_filtered_models_stay_invariant(grids, k, atol):
    model = QuantumClassifier(ModelConfig(variant="sector", n_layers=2), seed=0)
    states = torch.as_tensor(filters.SectorFilter(k, 0.25).states(grids))
    assert assert_invariant(model, states, atol=atol) < atol


def test_filter_commutes_with_rotation(grids, atol):
    from equivar.core import rings

    f = filters.SectorFilter(2, 0.1)
    assert np.abs(f.scale(rings.rotate(grids, 3)) - rings.rotate(f.scale(grids), 3)).max() < atol


def test_torch_and_numpy_agree(grids, atol):
    f = filters.SectorFilter(1, 0.3)
    assert np.abs(f.states(torch.as_tensor(grids)).numpy() - f.states(grids)).max() < atol


@pytest.mark.parametrize("kwargs,match", [(dict(alpha=1.5), r"alpha must lie in \[0, 1\]"),
                                          (dict(k=-1), "non-negative")])
def test_bad_filters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        filters.SectorFilter(**kwargs)
