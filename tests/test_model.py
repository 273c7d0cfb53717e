"""equivar.core.model: simulator = QNode, exact invariance, analytic cases, errors
(the simulator itself is tested in depth in tests/test_simulator.py)."""
from __future__ import annotations

import itertools

import numpy as np
import pennylane as qml
import pytest
import torch

from equivar import data
from equivar.core import rings, sectors
from equivar.core.model import (READOUTS, VARIANTS, ModelConfig, QuantumClassifier, amplitudes,
                           assert_invariant, bit_reverse, fourier_transform, invariance_deviation,
                           rotate_states)
from equivar.core.unitary import unitary
from tests.conftest import random_state

ALL = [(v, r) for v, r in itertools.product(VARIANTS, READOUTS)]


def config_for(variant, readout, n_layers=2, n_rad=4, n_ang=3):
    return ModelConfig(n_rad=n_rad, n_ang=n_ang, variant=variant, readout=readout,
                       n_layers=n_layers, n_classes=min(4, n_rad) if readout == "z" else 10)


@pytest.fixture(scope="module")
def real_states():
    x, _ = data.load("fashion-mnist", "test", n=12, seed=5)
    return torch.as_tensor(amplitudes(rings.sample(x, 16, 8)))


def random_states(rng, n, dim, complex_=True):
    return torch.as_tensor(np.stack([random_state(rng, dim, complex_) for _ in range(n)]))


class TestFastPathEqualsQNode:
    @pytest.mark.parametrize("variant,readout", ALL)
    def test_values(self, variant, readout, real_states, rng, atol):
        model = QuantumClassifier(config_for(variant, readout), seed=int(rng.integers(1000)))
        qnode = model.qnode()
        with torch.no_grad():
            assert (model.readout(real_states) - qnode(real_states)).abs().max() < atol
            states = random_states(rng, 5, 128)
            assert (model.readout(states) - qnode(states)).abs().max() < atol

    @pytest.mark.parametrize("variant,readout", ALL)
    def test_weight_gradients(self, variant, readout, real_states, atol):
        model = QuantumClassifier(config_for(variant, readout), seed=3)
        target = torch.arange(len(real_states)) % model.config.n_classes
        loss = lambda out: torch.nn.functional.cross_entropy(10 * out, target)
        (g_fast,) = torch.autograd.grad(loss(model.readout(real_states)), model.weights)
        (g_qnode,) = torch.autograd.grad(loss(model.qnode()(real_states)), model.weights)
        assert (g_fast - g_qnode).abs().max() < atol
        assert g_fast.abs().max() > 1e-4  # negative control: a real gradient

    def test_input_gradients(self, real_states, atol):
        model = QuantumClassifier(config_for("sector", "probs"), seed=4)
        x = real_states.clone().requires_grad_(True)
        (g_fast,) = torch.autograd.grad(model.readout(x)[:, 3].sum(), x)
        x2 = real_states.clone().requires_grad_(True)
        (g_qnode,) = torch.autograd.grad(model.qnode()(x2)[:, 3].sum(), x2)
        assert (g_fast - g_qnode).abs().max() < atol


    @pytest.mark.parametrize("variant", VARIANTS)
    def test_unitary_equals_the_compiled_pennylane_operations(self, variant, atol):
        # the simulator's U (basis states through it) and equivar.core.unitary's U from the
        # circuit's PennyLane operations: two independent constructions
        model = QuantumClassifier(config_for(variant, "probs"), seed=6)
        ref = unitary(model.operations(), model.config.n_wires)
        assert (model.unitary() - ref).abs().max() < atol


class TestInvariance:
    @pytest.mark.parametrize("variant,readout", [a for a in ALL if a[0] != "baseline"])
    @pytest.mark.parametrize("n_ang", [2, 3])
    def test_every_rotation_and_random_weights(self, variant, readout, n_ang, rng, atol):
        cfg = config_for(variant, readout, n_layers=3, n_ang=n_ang)
        for seed in range(3):
            model = QuantumClassifier(cfg, seed=seed)
            states = random_states(rng, 6, 2 ** cfg.n_wires)
            assert assert_invariant(model, states, atol=atol) < atol

    def test_baseline_is_not_invariant(self, real_states):
        model = QuantumClassifier(config_for("baseline", "probs"), seed=0)
        assert invariance_deviation(model, real_states) > 1e-3
        with pytest.raises(AssertionError, match="baseline model is not invariant"):
            assert_invariant(model, real_states)

    def test_rotating_the_image_by_90_degrees_leaves_predictions_unchanged(self, atol):
        x, _ = data.load("fashion-mnist", "test", n=5, seed=8)
        model = QuantumClassifier(ModelConfig(variant="sector", n_layers=2), seed=1)
        a = model.readout(amplitudes(rings.sample(x, 16, 8)))
        b = model.readout(amplitudes(rings.sample(np.rot90(x, axes=(1, 2)), 16, 8)))
        assert (a - b).abs().max() < atol


class TestAnalytic:
    def test_transform_is_the_bit_reversed_dft(self, atol):
        for n_ang in (2, 3, 4):
            cfg = ModelConfig(n_rad=1, n_ang=n_ang, n_classes=2)
            ops = qml.tape.make_qscript(fourier_transform)(cfg).operations
            W = unitary(ops, cfg.n_wires).numpy()
            n = 2 ** n_ang
            expected = np.zeros((n, n), complex)
            for k in range(n):
                for theta in range(n):
                    expected[bit_reverse(k, n_ang), theta] = np.exp(-2j * np.pi * k * theta / n)
            assert np.abs(W - np.kron(np.eye(2), expected / np.sqrt(n))).max() < atol

    def test_transform_diagonalises_the_rotation(self, atol):
        cfg = ModelConfig()
        W = QuantumClassifier(cfg).transform_unitary().numpy()
        R = sectors.rotation_matrix(1, cfg.n_rad, cfg.n_ang)
        D = W @ R @ W.conj().T
        assert np.abs(D - np.diag(np.diag(D))).max() < atol

    def test_zero_weights_read_ring_energies(self, rng, atol):
        # Rot(0, 0, 0) = 1; the CZs are phases: P(radial state r) = Σ_θ x_rθ² (Parseval)
        cfg = ModelConfig(n_layers=2)
        model = QuantumClassifier(cfg)
        with torch.no_grad():
            model.weights.zero_()
        grids = rng.random((4, 16, 8))
        x = amplitudes(grids)
        energies = (x.reshape(4, 16, 8) ** 2).sum(-1)
        assert np.abs(model.readout(x).detach().numpy() - energies[:, :10]).max() < atol
        z_model = QuantumClassifier(ModelConfig(n_layers=2, readout="z", n_classes=4))
        with torch.no_grad():
            z_model.weights.zero_()
        signs = 1 - 2 * ((np.arange(16)[None, :] >> (3 - np.arange(4)[:, None])) & 1)
        assert np.abs(z_model.readout(x).detach().numpy() - energies @ signs.T).max() < atol

    def test_one_qubit_ry_by_hand(self, atol):
        # 1 radial + 2 angular qubits, one layer: Rot(0, t, 0) = RY(t) on the radial qubit.
        cfg = ModelConfig(n_rad=1, n_ang=2, n_layers=1, readout="z", n_classes=1)
        model = QuantumClassifier(cfg)
        t = 0.7
        with torch.no_grad():
            model.weights.copy_(torch.tensor([[[0.0, t, 0.0]]], dtype=torch.float64))
        # all amplitude on ring 0 -> <Z_0> = cos t; on ring 1 -> -cos t
        x0 = np.zeros(8)
        x0[:4] = 0.5
        x1 = np.roll(x0, 4)
        out = model.readout(np.stack([x0, x1])).detach().numpy().ravel()
        assert np.abs(out - [np.cos(t), -np.cos(t)]).max() < atol


class TestSectorStructure:
    """The structural facts derived in chapter 1, §4."""

    def blocks(self, variant, n_layers, seed=0):
        cfg = ModelConfig(variant=variant, n_layers=n_layers)
        M = QuantumClassifier(cfg, seed=seed).observables().detach().numpy()
        return sectors.block_distances(sectors.operator_blocks(M, cfg.n_rad, cfg.n_ang))

    @pytest.mark.parametrize("seed", [0, 1])
    def test_west_one_layer_sees_one_block(self, seed, atol):
        assert self.blocks("west", 1, seed).max() < atol

    @pytest.mark.parametrize("n_layers", [2, 4])
    def test_west_deeper_sees_even_and_odd(self, n_layers, atol):
        dist = self.blocks("west", n_layers)
        parity = np.arange(8) % 2
        same = parity[:, None] == parity[None, :]
        assert dist[same].max() < atol
        assert dist[~same].min() > 1e-3

    @pytest.mark.parametrize("k", [0, 3, 6])
    def test_sector_weight_slot_k_acts_on_sector_k_only(self, k, atol):
        cfg = ModelConfig(variant="sector", n_layers=2)
        model = QuantumClassifier(cfg, seed=0)
        before = sectors.operator_blocks(model.observables().detach().numpy(), 4, 3)
        with torch.no_grad():
            model.weights[:, k] += 0.3
        after = sectors.operator_blocks(model.observables().detach().numpy(), 4, 3)
        changed = np.abs(after - before).max(axis=(0, 2, 3))
        assert changed[k] > 1e-3
        assert np.delete(changed, k).max() < atol

    def test_sector_variant_has_a_block_per_k(self):
        dist = self.blocks("sector", 2)
        assert dist[~np.eye(8, dtype=bool)].min() > 1e-3


class TestEncodingAndErrors:
    def test_amplitudes_are_unit_and_ring_major(self, rng):
        grids = rng.random((3, 16, 8))
        x = amplitudes(grids)
        assert np.allclose(np.linalg.norm(x, axis=1), 1)
        assert np.allclose(x[1, 2 * 8 + 5] * np.linalg.norm(grids[1]), grids[1, 2, 5])

    def test_all_zero_image(self):
        with pytest.raises(ValueError, match=r"grid\(s\) \[1\] are all zero.*cannot normalise"):
            amplitudes(np.stack([np.ones((16, 8)), np.zeros((16, 8))]))

    def test_nan(self):
        grids = np.ones((2, 16, 8))
        grids[0, 3, 3] = np.nan
        with pytest.raises(ValueError, match="NaN or infinite"):
            amplitudes(grids)

    def test_grid_shape(self):
        with pytest.raises(ValueError, match="grids must have shape"):
            amplitudes(np.ones(8))

    def test_states_with_nan_or_norm_above_one(self):
        model = QuantumClassifier(ModelConfig())
        bad = np.full((2, 128), 1 / np.sqrt(128))
        bad[0, 5] = np.nan
        with pytest.raises(ValueError, match="NaN or infinite amplitudes"):
            model(bad)
        with pytest.raises(ValueError, match="norm at most 1"):
            model(np.ones((2, 128)))

    def test_state_shape(self):
        model = QuantumClassifier(ModelConfig())
        with pytest.raises(ValueError, match=r"states must have shape \(batch, 128\), got \(2, 64\)"):
            model(np.ones((2, 64)))

    @pytest.mark.parametrize("kwargs,match", [
        (dict(readout="z", n_classes=10), "n_classes=10 exceeds what readout 'z' holds"),
        (dict(n_rad=3, n_classes=10), r"at most 8"),
        (dict(variant="cnn"), "variant must be one of"),
        (dict(readout="softmax"), "readout must be one of"),
        (dict(n_layers=0), "n_layers must be a positive integer"),
        (dict(n_ang=1), "n_ang must be at least 2"),
        (dict(scale=-1.0), "scale must be a positive number"),
        (dict(scale="10"), "scale must be a positive number, got '10'"),
        (dict(n_rad=30), r"33 qubits is too large to simulate: one complex128 state alone "
                         r"needs 128 GiB"),
    ])
    def test_config_errors(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            ModelConfig(**kwargs)

    def test_rotate_states_matches_rotation_matrix(self, rng, atol):
        x = random_states(rng, 2, 128).numpy()
        R = sectors.rotation_matrix(3, 4, 3)
        assert np.abs(rotate_states(x, 3, ModelConfig()).numpy() - x @ R.T).max() < atol

    def test_same_seed_same_weights(self):
        a, b = QuantumClassifier(ModelConfig(), seed=7), QuantumClassifier(ModelConfig(), seed=7)
        assert torch.equal(a.weights, b.weights)
        assert not torch.equal(a.weights, QuantumClassifier(ModelConfig(), seed=8).weights)

    def test_float32_unit_vectors_are_accepted_and_agree_with_float64(self, rng):
        # regression: the norm check was tighter than float32 precision ("found 1")
        model = QuantumClassifier(ModelConfig(n_layers=2), seed=0)
        states = amplitudes(rng.random((64, 16, 8)))
        single = model(torch.as_tensor(states.astype(np.float32))).detach()
        double = model(torch.as_tensor(states)).detach()
        assert (single - double).abs().max() < 1e-4
        with pytest.raises(ValueError, match="norm at most 1"):
            model(torch.as_tensor(1.001 * states.astype(np.float32)))

    def test_empty_batch(self):
        # regression: amplitudes failed on zero grids while forward and predict accept them
        states = amplitudes(np.zeros((0, 16, 8)))
        assert states.shape == (0, 128)
        assert QuantumClassifier(ModelConfig(), seed=0)(torch.as_tensor(states)).shape == (0, 10)
