"""equivar.core.shots: sampled readout and per-sector contributions from shots."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equivar.core import sectors, shots
from equivar.core.model import ModelConfig, QuantumClassifier, amplitudes


def grids(n, seed, rings=4, angles=8):
    return np.random.default_rng(seed).random((n, rings, angles))


@pytest.mark.parametrize("readout", ["probs", "z"])
def test_register_probabilities_give_the_exact_readout(readout):
    cfg = ModelConfig(n_rad=2, n_ang=3, n_layers=2, variant="sector", readout=readout,
                      n_classes=2 if readout == "z" else 3)
    model = QuantumClassifier(cfg, seed=1)
    x = amplitudes(grids(6, 0))
    p = shots.register_probabilities(model, x)
    assert p.shape == (6, 4) and np.allclose(p.sum(1), 1, atol=1e-12)
    from equivar.core.simulator import readout_matrix
    exact = model.readout(torch.as_tensor(x)).detach().numpy()
    assert np.abs(p @ readout_matrix(cfg).numpy().T - exact).max() < 1e-12


def test_sample_counts_are_seeded_multinomial_draws():
    p = np.array([[0.5, 0.25, 0.25, 0.0], [0.1, 0.2, 0.3, 0.4]])
    a = shots.sample_counts(p, 1000, seed=3)
    assert (a.sum(1) == 1000).all() and a[0, 3] == 0
    assert np.array_equal(a, shots.sample_counts(p, 1000, seed=3))
    assert not np.array_equal(a, shots.sample_counts(p, 1000, seed=4))
    big = shots.sample_counts(np.repeat(p, 200, axis=0), 10_000, seed=5) / 10_000
    # the mean over 200 rows of 10^4 shots: within 5 standard errors of p
    se = np.sqrt(p * (1 - p) / (200 * 10_000))
    assert (np.abs(big.reshape(2, 200, 4).mean(1) - p) <= 5 * se + 1e-12).all()


def test_estimates_converge_to_the_exact_readout():
    cfg = ModelConfig(n_rad=2, n_ang=2, n_layers=2, variant="west", n_classes=4)
    model = QuantumClassifier(cfg, seed=2)
    x = amplitudes(grids(20, 1, angles=4))
    exact = model.readout(torch.as_tensor(x)).detach().numpy()
    errors = [np.abs(shots.estimate_readout(model, x, s, seed=0) - exact).mean()
              for s in (10, 1000, 100_000)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 5 * 0.5 / np.sqrt(100_000)
    labels = exact.argmax(1)
    assert shots.shot_accuracy(model, x, labels, None, 0) == 1.0
    assert shots.shot_accuracy(model, x, labels, 10 ** 6, 0) >= 0.9


def test_ties_are_broken_at_random_but_reproducibly():
    flat = np.zeros((400, 4))
    pred = shots.predict_from(flat, seed=1)
    assert set(np.unique(pred)) == {0, 1, 2, 3}
    assert np.array_equal(pred, shots.predict_from(flat, seed=1))
    clear = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    assert list(shots.predict_from(clear, seed=0)) == [1, 0]


@pytest.mark.parametrize("variant", ["west", "sector"])
def test_sector_contributions_sum_to_the_logits_and_match_chapter_2(variant):
    cfg = ModelConfig(n_rad=2, n_ang=3, n_layers=3, variant=variant, n_classes=4, scale=7.0)
    model = QuantumClassifier(cfg, seed=3)
    g = grids(5, 2)
    c = shots.sector_contributions(model, g)
    assert c.shape == (5, 4, 5)
    logits = model(torch.as_tensor(amplitudes(g))).detach().numpy()
    assert np.abs(c.sum(-1) - logits).max() < 1e-10
    with torch.no_grad():
        blocks = sectors.operator_blocks(model.observables().numpy(), cfg.n_rad, cfg.n_ang)
    reference = sectors.fold_weights(cfg.scale * sectors.sector_contributions(g, blocks))
    assert np.abs(c - reference).max() < 1e-10
    margins, order = shots.margin_contributions(c)
    assert np.allclose(margins.sum(1), np.sort(logits, 1)[:, -1] - np.sort(logits, 1)[:, -2])
    noisy = shots.sector_contributions(model, g, shots=50, seed=1)
    assert np.abs(noisy - c).max() > 1e-6  # sampling does change the estimate
    assert np.array_equal(noisy, shots.sector_contributions(model, g, shots=50, seed=1))


def test_bad_shot_input_is_refused():
    with pytest.raises(ValueError, match="shots"):
        shots.sample_counts(np.ones((1, 2)) / 2, 0, seed=0)
    with pytest.raises(ValueError, match="probabilities"):
        shots.sample_counts(np.zeros((1, 2)), 5, seed=0)
    base = QuantumClassifier(ModelConfig(n_rad=2, n_ang=2, variant="baseline", n_classes=4))
    with pytest.raises(ValueError, match="baseline"):
        shots.sector_contributions(base, grids(1, 0, angles=4))
