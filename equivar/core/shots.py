"""Finite shots: the readout estimated from S samples of the radial register, as on hardware.

The exact readout of a model with the ``"probs"`` readout is the probability of radial basis
states; with ``"z"`` it is ⟨Z_i⟩ on radial qubits. Both are functions of the distribution P(r)
of the radial register's outcomes, so S shots are one multinomial draw of S outcomes from
P(r) (seeded), and the estimate is the empirical distribution pushed through the same readout
matrix (an unbiased estimate of the exact readout, standard error ≈ sqrt(p(1-p)/S)).
Predictions break ties (frequent at small S) at random, seeded.

:func:`sector_contributions` measures chapter 2's per-sector readout contributions
Tr[ρ_k M_k] as an experiment would: prepare the state with only the sectors {k, N-k} kept,
ψ_k = P_k ψ / ‖P_k ψ‖, estimate its readout from S shots and multiply by the sector weight
w_k = ‖P_k ψ‖² (computed classically from the image). Because every M_c of an invariant model
commutes with the rotations, Σ_k w_k ⟨ψ_k|M_c|ψ_k⟩ is the readout exactly. Used by chapter 5.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from equivar.core import sectors, simulator
from equivar.core.model import QuantumClassifier


def _seeded(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


def _key(seed, *extra) -> list[int]:
    """A seed (an int or a list of ints) extended by ``extra`` ints: derived, independent
    streams for the parts of one experiment."""
    return [int(v) for v in np.atleast_1d(np.asarray(seed, dtype=np.int64))] + \
        [int(v) for v in extra]


def register_probabilities(model: QuantumClassifier, states) -> np.ndarray:
    """Exact P(radial basis state r) of the model's output, (B, 2**n_rad) float64."""
    cfg = replace(model.config, readout="probs", n_classes=model.config.n_rings)
    with torch.no_grad():
        return simulator.readout(model._check_states(states), model.weights, cfg).numpy()


def sample_counts(probabilities, shots: int, seed) -> np.ndarray:
    """Outcome counts (B, K) int64: for each row, one multinomial draw of ``shots`` outcomes
    from ``probabilities`` (B, K) (rows renormalised against rounding)."""
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1:
        raise ValueError(f"shots must be a positive integer, got {shots!r}")
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, None)
    if p.ndim != 2 or not np.isfinite(p).all() or (p.sum(1) <= 0).any():
        raise ValueError("probabilities must be a finite (B, K) array with positive rows")
    p = p / p.sum(1, keepdims=True)
    return _seeded(seed).multinomial(int(shots), p)


def estimate_readout(model: QuantumClassifier, states, shots: int, seed) -> np.ndarray:
    """The readout (B, n_classes) estimated from ``shots`` samples per state (seeded)."""
    counts = sample_counts(register_probabilities(model, states), shots, seed)
    return (counts / shots) @ simulator.readout_matrix(model.config).numpy().T


def predict_from(readout, seed) -> np.ndarray:
    """argmax per row with ties broken uniformly at random (seeded); (B,) int64."""
    r = np.asarray(readout, dtype=np.float64)
    if r.size == 0:
        return np.zeros(len(r), dtype=np.int64)
    # a jitter far below the smallest non-zero gap between estimates (multiples of 1/S)
    gaps = np.diff(np.unique(r))
    scale = (gaps.min() if len(gaps) else 1.0) * 1e-3
    return (r + scale * _seeded(seed).random(r.shape)).argmax(1)


def shot_accuracy(model: QuantumClassifier, states, labels, shots: int | None, seed) -> float:
    """Accuracy with the readout estimated from ``shots`` samples (``None``: exact)."""
    labels = np.asarray(labels)
    if shots is None:
        with torch.no_grad():
            pred = model.readout(states).argmax(1).numpy()
    else:
        pred = predict_from(estimate_readout(model, states, shots, seed), _key(seed, 1))
    return float((pred == labels).mean())


def sector_states(grids) -> tuple[np.ndarray, np.ndarray]:
    """Per independent sector k = 0..N/2: the normalised states with only modes {k, N-k}
    kept, (K, B, R·N), and their weights w_k (B, K) (they sum to 1 over k). A sector absent
    from an image (w_k = 0) gets a zero state."""
    g = sectors.normalise(np.asarray(grids, dtype=np.float64))
    n = g.shape[-1]
    states, weights = [], []
    for k in sectors.independent_sectors(n):
        kept = sectors.keep_sectors(g, sectors.sector_partners(k, n)).reshape(len(g), -1)
        w = (kept ** 2).sum(1)
        norm = np.sqrt(np.where(w > 0, w, 1.0))
        states.append(kept / norm[:, None])
        weights.append(w)
    return np.stack(states), np.stack(weights, axis=1)


def sector_contributions(model: QuantumClassifier, grids, shots: int | None = None,
                         seed=0) -> np.ndarray:
    """Per-sector contributions to the logits, (B, n_classes, K) (K = N/2 + 1 independent
    sectors), in logit units (× scale): exact (``shots=None``) or each sector's readout
    estimated from ``shots`` samples (so ``K × shots`` shots per image)."""
    if not model.config.equivariant:
        raise ValueError("sector contributions need an invariant model, not the baseline")
    states, weights = sector_states(grids)
    out = []
    for k, psi in enumerate(states):
        present = weights[:, k] > 0
        r = np.zeros((len(psi), model.config.n_classes))
        if present.any():
            if shots is None:
                with torch.no_grad():
                    r[present] = model.readout(psi[present]).numpy()
            else:
                r[present] = estimate_readout(model, psi[present], shots, _key(seed, k))
        out.append(model.config.scale * weights[:, k, None] * r)
    return np.stack(out, axis=-1)


def margin_contributions(contributions, order=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-sector contribution to the margin winner − runner-up, (B, K), with the winner and
    runner-up taken from ``order`` (B, 2) (default: from the summed contributions), and that
    order. ``contributions``: (B, n_classes, K) from :func:`sector_contributions`."""
    c = np.asarray(contributions)
    if order is None:
        order = np.argsort(-c.sum(-1), axis=1)[:, :2]
    idx = np.arange(len(c))
    return c[idx, order[:, 0]] - c[idx, order[:, 1]], order

