"""equivar.core.noise: density-matrix simulation with noise, against default.mixed."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equivar.core import noise
from equivar.core.model import ModelConfig, QuantumClassifier, rotate_states


def random_states(n, dim, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, dtype=torch.float64, generator=gen)
    return x / x.norm(dim=1, keepdim=True)


def small(variant, n_rad=2, n_ang=2, n_layers=2):
    n_classes = 2 ** n_rad if n_rad < 4 else 10
    return ModelConfig(n_rad=n_rad, n_ang=n_ang, n_layers=n_layers, variant=variant,
                       n_classes=n_classes)


@pytest.mark.parametrize("channel", noise.CHANNELS)
def test_kraus_operators_are_trace_preserving(channel):
    ops = noise.kraus(channel, 0.3)
    total = torch.einsum("kba,kbc->ac", ops.conj(), ops)
    assert torch.allclose(total, torch.eye(2, dtype=total.dtype), atol=1e-14)


@pytest.mark.parametrize("variant", ["west", "sector", "baseline"])
def test_noiseless_density_matrix_equals_the_state_vector_simulator(variant):
    cfg = small(variant, n_rad=3, n_ang=2, n_layers=3)
    model = QuantumClassifier(cfg, seed=4)
    x = random_states(5, 2 ** cfg.n_wires, 0)
    got = noise.noisy_readout(x, model.weights, cfg)
    assert (got - model.readout(x)).abs().max() < 1e-12
    # and noise does change it (a negative control for the comparison above)
    noisy = noise.noisy_readout(x, model.weights, cfg, noise.NoiseModel("depolarizing", 0.05))
    assert (noisy - model.readout(x)).abs().max() > 1e-3


@pytest.mark.parametrize("variant", ["west", "sector", "baseline"])
@pytest.mark.parametrize("channel", noise.CHANNELS)
@pytest.mark.parametrize("placement", noise.PLACEMENTS)
def test_batched_path_equals_default_mixed(variant, channel, placement):
    cfg = small(variant)
    model = QuantumClassifier(cfg, seed=2)
    x = random_states(3, 2 ** cfg.n_wires, 1)
    rng = np.random.default_rng([len(variant), len(channel), len(placement)])
    for wires in noise.WIRES:
        nm = noise.NoiseModel(channel, float(rng.uniform(0.01, 0.2)), placement, wires,
                              float(rng.uniform(0, 0.1)))
        ours = noise.noisy_readout(x, model.weights, cfg, nm)
        ref = torch.stack([noise.reference_readout(s, model.weights, cfg, nm) for s in x])
        assert (ours - ref).abs().max() < 1e-10, (wires, nm)


def test_batched_path_equals_default_mixed_at_seven_qubits():
    cfg = ModelConfig(n_rad=4, n_ang=3, n_layers=2, variant="west")
    model = QuantumClassifier(cfg, seed=5)
    x = random_states(2, 128, 3)
    nm = noise.NoiseModel("amplitude_damping", 0.03, "layers", "all", 0.02)
    ours = noise.noisy_readout(x, model.weights, cfg, nm)
    ref = torch.stack([noise.reference_readout(s, model.weights, cfg, nm) for s in x])
    assert (ours - ref).abs().max() < 1e-10


def test_readout_error_matrix_is_stochastic_and_flips_bits():
    m = noise.readout_error_matrix(2, 0.1)
    assert torch.allclose(m.sum(0), torch.ones(4, dtype=m.dtype))
    # P(read 01 | true 00) = 0.9 * 0.1 (second bit flipped, wire 0 the most significant)
    assert abs(float(m[1, 0]) - 0.09) < 1e-15 and abs(float(m[3, 0]) - 0.01) < 1e-15


def test_which_channels_commute_with_the_rotation():
    for channel in ("depolarizing", "amplitude_damping"):
        assert noise.rotation_commutator(channel, 0.05, "layers", 3) < 1e-12
    assert noise.rotation_commutator("bit_flip", 0.05, "layers", 3) > 1e-3
    for channel in noise.CHANNELS:
        assert noise.rotation_commutator(channel, 0.05, "input", 3) > 1e-3
        assert noise.rotation_commutator(channel, 0.0, "input", 3) < 1e-12


def test_noise_after_the_layers_keeps_invariance_noise_on_the_input_need_not():
    cfg = small("sector", n_rad=2, n_ang=3, n_layers=2)
    model = QuantumClassifier(cfg, seed=7)
    x = random_states(4, 2 ** cfg.n_wires, 2)

    def deviation(nm):
        base = noise.noisy_readout(x, model.weights, cfg, nm)
        return max(float((noise.noisy_readout(rotate_states(x, m, cfg), model.weights, cfg, nm)
                          - base).abs().max()) for m in range(1, cfg.n_angles))

    for channel in noise.CHANNELS:
        assert deviation(noise.NoiseModel(channel, 0.05, "layers", "all", 0.02)) < 1e-10
    assert deviation(noise.NoiseModel("depolarizing", 0.05, "input", "angular")) > 1e-5
    assert deviation(noise.NoiseModel("depolarizing", 0.05, "input", "radial")) < 1e-10


def test_bad_noise_settings_are_refused():
    with pytest.raises(ValueError, match="channel"):
        noise.NoiseModel("dephasing")
    with pytest.raises(ValueError, match="rate"):
        noise.NoiseModel(rate=1.5)
    with pytest.raises(ValueError, match="placement"):
        noise.NoiseModel(placement="end")
    with pytest.raises(ValueError, match="readout_error"):
        noise.NoiseModel(readout_error=-0.1)
    cfg = small("west")
    with pytest.raises(ValueError, match="shape"):
        noise.noisy_readout(torch.zeros(2, 3), QuantumClassifier(cfg).weights, cfg)
    big = ModelConfig(n_rad=8, n_ang=3)
    with pytest.raises(ValueError, match="limited to"):
        noise.noisy_readout(torch.zeros(1, 2 ** 11), torch.zeros(big.weight_shape), big)


@pytest.mark.parametrize("variant", ["west", "sector"])
def test_diagonal_block_method_equals_the_full_density_matrix(variant):
    cfg = small(variant, n_rad=2, n_ang=3, n_layers=3)
    model = QuantumClassifier(cfg, seed=8)
    x = random_states(5, 2 ** cfg.n_wires, 4)
    for channel in noise.CHANNELS:
        for placement in noise.PLACEMENTS:
            for wires in noise.WIRES:
                nm = noise.NoiseModel(channel, 0.07, placement, wires, 0.03)
                full = noise.noisy_readout(x, model.weights, cfg, nm, method="full")
                blocks = noise.noisy_readout(x, model.weights, cfg, nm, method="blocks")
                assert (full - blocks).abs().max() < 1e-12, nm


def test_layers_of_the_equivariant_variants_are_block_diagonal_in_the_angular_basis():
    for variant in ("west", "sector"):
        cfg = small(variant, n_rad=2, n_ang=2, n_layers=2)
        _, layers = noise.layer_unitaries(QuantumClassifier(cfg, seed=1).weights, cfg)
        for u in layers:
            u4 = u.reshape(cfg.n_rings, cfg.n_angles, cfg.n_rings, cfg.n_angles)
            off = u4.clone()
            for a in range(cfg.n_angles):
                off[:, a, :, a] = 0
            assert off.abs().max() < 1e-12
    base = small("baseline")
    with pytest.raises(ValueError, match="block"):
        noise.noisy_readout(random_states(1, 16, 0), QuantumClassifier(base).weights, base,
                            method="blocks")


def test_the_transform_gates_multiply_to_the_transform():
    for n_ang in (2, 3):
        cfg = small("west", n_rad=2, n_ang=n_ang)
        product = torch.eye(2 ** cfg.n_wires, dtype=torch.complex128)
        gates = noise.transform_gates(cfg)
        assert len(gates) == n_ang * (n_ang + 1) // 2  # Hadamards and controlled phases
        for matrix, wires in gates:
            assert set(wires) <= set(cfg.angular_wires)
            product = torch.kron(torch.eye(cfg.n_rings, dtype=matrix.dtype), matrix) @ product
        assert (product - noise._transform(cfg)).abs().max() < 1e-12
    assert noise.transform_gates(small("baseline")) == ()


def test_noise_inside_the_transform_breaks_the_sector_models_invariance():
    cfg = small("sector", n_rad=2, n_ang=3, n_layers=2)
    model = QuantumClassifier(cfg, seed=9)
    x = random_states(4, 2 ** cfg.n_wires, 5)
    nm = noise.NoiseModel("depolarizing", 0.05, "transform", "all")
    turned = torch.cat([rotate_states(x, m, cfg) for m in range(cfg.n_angles)])
    out = noise.noisy_readout(turned, model.weights, cfg, nm).reshape(cfg.n_angles, 4, -1)
    assert (out - out[0]).abs().max() > 1e-5
    # the radial wires carry no transform gate: no noise at all there
    quiet = noise.noisy_readout(x, model.weights, cfg,
                                noise.NoiseModel("depolarizing", 0.05, "transform", "radial"))
    assert (quiet - model.readout(x)).abs().max() < 1e-12
    with pytest.raises(ValueError, match="inside the transform"):
        noise.rotation_commutator("depolarizing", 0.1, "transform", 3)
