"""equivar.core.simulator: values and gradients equal PennyLane (default.qubit, qml.matrix).

Every variant and readout, 4-9 qubits (n_rad from 1, C_4 to C_16), to 1e-10; gradients with
respect to the weights and to the input states come from ``torch.autograd.grad`` on both sides.
"""
from __future__ import annotations

import itertools

import numpy as np
import pennylane as qml
import pytest
import torch

from equivar.core import simulator as sim
from equivar.core.model import (READOUTS, VARIANTS, ModelConfig, QuantumClassifier, amplitudes,
                                assert_invariant, bit_reverse, circuit, fourier_transform,
                                readout_diagonals, readout_from_states)
from tests.conftest import random_state

# (n_rad, n_ang): 4, 4, 7, 7, 9 and 9 qubits; n_ang = 4 is C_16
SIZES = [(1, 3), (2, 2), (3, 4), (4, 3), (5, 4), (6, 3)]
CASES = list(itertools.product(VARIANTS, READOUTS, SIZES))


def size_id(value):
    return f"{value[0]}+{value[1]}" if isinstance(value, tuple) else str(value)


def make_config(variant, readout, n_rad, n_ang, n_layers=None):
    n_classes = min(2, n_rad) if readout == "z" else min(3, 2 ** n_rad)
    layers = n_layers or (2 if n_rad + n_ang > 7 else 3)
    return ModelConfig(n_rad=n_rad, n_ang=n_ang, n_layers=layers, variant=variant,
                       readout=readout, n_classes=n_classes)


def states(rng, n, dim, complex_):
    return torch.as_tensor(np.stack([random_state(rng, dim, complex_) for _ in range(n)]))


def state_qnode(model):
    """A default.qubit QNode returning the output state (the reference for ``simulate``)."""
    cfg = model.config
    dev = qml.device("default.qubit", wires=cfg.n_wires)

    @qml.qnode(dev, interface="torch", diff_method="backprop")
    def run(state):
        qml.StatePrep(state, wires=range(cfg.n_wires))
        circuit(model.weights, cfg)
        return qml.state()

    return run


@pytest.fixture(params=["stored", "adjoint"])
def backward_mode(request, monkeypatch):
    """Both backward modes of the layers: every intermediate state kept from forward (small
    problems), or only the final state, ψ un-computed on the way back (large ones)."""
    monkeypatch.setattr(sim, "KERNEL", "layers")
    monkeypatch.setattr(sim, "STORE_BYTES", 0 if request.param == "adjoint" else 1 << 40)
    return request.param


@pytest.fixture(params=["layers-stored", "layers-adjoint", "rows"])
def readout_path(request, monkeypatch):
    """Every way :func:`sim.readout` can compute: the layers in both backward modes, or the
    readout pulled back to rows of the radial unitaries (equivariant variants)."""
    kernel, _, mode = request.param.partition("-")
    monkeypatch.setattr(sim, "KERNEL", kernel)
    monkeypatch.setattr(sim, "STORE_BYTES", 0 if mode == "adjoint" else 1 << 40)
    return request.param


def reference_unitary(model):
    cfg = model.config
    return qml.matrix(lambda: circuit(model.weights, cfg), wire_order=range(cfg.n_wires))()


@pytest.mark.parametrize("variant,readout,size", CASES, ids=size_id)
def test_readout_values_and_gradients_equal_the_qnode(variant, readout, size, readout_path, rng,
                                                     atol):
    cfg = make_config(variant, readout, *size)
    model = QuantumClassifier(cfg, seed=int(rng.integers(1000)))
    qnode = model.qnode()
    target = torch.as_tensor(rng.standard_normal((4, cfg.n_classes)))
    for complex_ in (False, True):
        x = states(rng, 4, 2 ** cfg.n_wires, complex_)
        a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        ours, ref = model.readout(a), qnode(b)
        assert (ours - ref).abs().max() < atol
        g_ours = torch.autograd.grad((ours * target).sum(), (model.weights, a))
        g_ref = torch.autograd.grad((ref * target).sum(), (model.weights, b))
        for g1, g2 in zip(g_ours, g_ref):
            assert g1.dtype == g2.dtype and g1.shape == g2.shape
            assert (g1 - g2).abs().max() < atol
        assert g_ours[0].abs().max() > 1e-3 and g_ours[1].abs().max() > 1e-3  # real gradients
    # negative control: perturbed weights give other values and other gradients
    other = QuantumClassifier(cfg)
    with torch.no_grad():
        other.weights.copy_(model.weights + 0.1)
    assert (other.readout(x) - model.readout(x)).abs().max() > 1e-4
    (g_other,) = torch.autograd.grad((other.readout(x) * target).sum(), other.weights)
    assert (g_other - g_ours[0]).abs().max() > 1e-4


@pytest.mark.parametrize("variant,size", [(v, s) for v in VARIANTS for s in SIZES], ids=size_id)
def test_output_states_and_gradients_equal_the_state_qnode(variant, size, backward_mode, rng, atol):
    cfg = make_config(variant, "probs", *size)
    model = QuantumClassifier(cfg, seed=2)
    x = states(rng, 3, 2 ** cfg.n_wires, True)
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours, ref = model.output_states(a), state_qnode(model)(b)
    assert ours.dtype == torch.complex128
    assert (ours - ref).abs().max() < atol
    target = torch.as_tensor(rng.standard_normal(ours.shape) + 1j * rng.standard_normal(ours.shape))
    g_ours = torch.autograd.grad((ours * target).real.sum(), (model.weights, a))
    g_ref = torch.autograd.grad((ref * target).real.sum(), (model.weights, b))
    for g1, g2 in zip(g_ours, g_ref):
        assert (g1 - g2).abs().max() < atol
    assert g_ours[0].abs().max() > 1e-3
    # the readout is the output state's readout
    assert (readout_from_states(ours, cfg) - model.readout(x)).abs().max() < atol


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("size", [(1, 3), (3, 4), (4, 3)], ids=size_id)
def test_unitary_equals_qml_matrix(variant, size, backward_mode, rng, atol):
    cfg = make_config(variant, "probs", *size, n_layers=2)
    model = QuantumClassifier(cfg, seed=5)
    U, ref = model.unitary(), reference_unitary(model)
    assert U.shape == (2 ** cfg.n_wires,) * 2
    assert (U - ref).abs().max() < atol
    target = torch.as_tensor(rng.standard_normal(U.shape) + 1j * rng.standard_normal(U.shape))
    (g1,) = torch.autograd.grad((U * target).real.sum(), model.weights)
    (g2,) = torch.autograd.grad((ref * target).real.sum(), model.weights)
    assert (g1 - g2).abs().max() < atol and g1.abs().max() > 1e-3
    # observables M_c = U† O_c U reproduce the readout
    x = states(rng, 3, 2 ** cfg.n_wires, True)
    M = model.observables()
    via_operators = torch.einsum("bi,cij,bj->bc", x.conj(), M, x).real
    assert (via_operators - model.readout(x)).abs().max() < atol


@pytest.mark.parametrize("n_ang", [2, 3, 4])
def test_transform_is_the_bit_reversed_dft_and_the_pennylane_ops(n_ang, atol):
    cfg = ModelConfig(n_rad=1, n_ang=n_ang, n_classes=2)
    W = QuantumClassifier(cfg).transform_unitary()
    n = 2 ** n_ang
    dft = np.zeros((n, n), complex)
    for k, theta in itertools.product(range(n), range(n)):
        dft[bit_reverse(k, n_ang), theta] = np.exp(-2j * np.pi * k * theta / n) / np.sqrt(n)
    assert np.abs(W.numpy() - np.kron(np.eye(2), dft)).max() < atol
    ref = qml.matrix(lambda: fourier_transform(cfg), wire_order=range(cfg.n_wires))()
    assert np.abs(W.numpy() - np.asarray(ref)).max() < atol


@pytest.mark.parametrize("variant", ["west", "sector"])
@pytest.mark.parametrize("readout", READOUTS)
def test_invariant_under_c16(variant, readout, readout_path, rng, atol):
    cfg = make_config(variant, readout, 3, 4)
    for seed in range(2):
        model = QuantumClassifier(cfg, seed=seed)
        x = states(rng, 5, 2 ** cfg.n_wires, True)
        assert assert_invariant(model, x, atol=atol) < atol


@pytest.mark.parametrize("variant", VARIANTS)
def test_blocks_and_chunks_do_not_change_anything(variant, rng, monkeypatch, atol):
    """Several sample blocks (a ragged last one), other chunkings and both backward modes give
    the same numbers."""
    cfg = make_config(variant, "z", 5, 3, n_layers=2)
    model = QuantumClassifier(cfg, seed=3)
    x = states(rng, 7, 2 ** cfg.n_wires, False)
    target = torch.as_tensor(rng.standard_normal((7, cfg.n_classes)))

    def run():
        a = x.clone().requires_grad_(True)
        out = model.readout(a)
        return (out, *torch.autograd.grad((out * target).sum(), (model.weights, a)))

    monkeypatch.setattr(sim, "KERNEL", "layers")
    base = run()
    for block, chunk, store in [(3, 4, 0), (1, 1, 1 << 40), (7, 2, 0), (2, 3, 1 << 40)]:
        monkeypatch.setattr(sim, "BLOCK_AMPLITUDES", block * 2 ** cfg.n_wires)
        monkeypatch.setattr(sim, "CHUNK", chunk)
        monkeypatch.setattr(sim, "STORE_BYTES", store)
        assert sim._block_size(sim.structure(cfg), 7) == block
        for ours, ref in zip(run(), base):
            assert (ours - ref).abs().max() < atol


@pytest.mark.parametrize("variant", ["west", "sector"])
def test_the_rows_kernel_ignores_chunking_and_keeps_float64(variant, rng, monkeypatch, atol):
    cfg = make_config(variant, "z", 5, 3, n_layers=2)
    model = QuantumClassifier(cfg, seed=3)
    x = states(rng, 7, 2 ** cfg.n_wires, False)
    monkeypatch.setattr(sim, "KERNEL", "layers")
    base = model.readout(x)
    monkeypatch.setattr(sim, "KERNEL", "rows")
    for chunk in (1, 2, 3, 4):
        monkeypatch.setattr(sim, "CHUNK", chunk)
        out = model.readout(x)
        assert out.dtype == torch.float64 and (out - base).abs().max() < atol


def test_row_kernel_choice():
    """probs readouts read n_classes rows: always cheaper than the layers for the equivariant
    variants; a z readout reads every radial row, cheaper only while 2**n_rad is small; the
    baseline has no radial structure to use. KERNEL forces a choice."""
    def choice(variant, readout, n_rad, n_layers=4):
        cfg = ModelConfig(n_rad=n_rad, n_ang=3, n_layers=n_layers, variant=variant,
                          readout=readout, n_classes=2 if readout == "z" else 10)
        return sim.row_kernel(sim.structure(cfg), sim.readout_matrix(cfg))

    assert all(choice(v, "probs", r) for v in ("west", "sector") for r in (4, 6, 10))
    assert choice("west", "z", 4) and not choice("west", "z", 10)
    assert not choice("baseline", "probs", 4)
    cfg = ModelConfig(n_layers=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sim, "KERNEL", "layers")
        assert not sim.row_kernel(sim.structure(cfg), sim.readout_matrix(cfg))


def test_backward_can_run_twice(readout_path, rng, atol):
    """retain_graph (torchattacks' DeepFool, FAB): the stored final states stay intact."""
    model = QuantumClassifier(make_config("sector", "probs", 3, 3), seed=0)
    x = states(rng, 4, 64, False).requires_grad_(True)
    out = model.readout(x)
    g1 = torch.autograd.grad(out[:, 0].sum(), (model.weights, x), retain_graph=True)
    g2 = torch.autograd.grad(out[:, 0].sum(), (model.weights, x), retain_graph=True)
    g3 = torch.autograd.grad(out[:, 1].sum(), (model.weights, x))
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))
    assert (g3[1] - g1[1]).abs().max() > 1e-4


def test_gradient_only_for_what_needs_it(rng, atol):
    model = QuantumClassifier(make_config("west", "probs", 4, 3), seed=0)
    x = states(rng, 4, 128, False).requires_grad_(True)
    with torch.no_grad():
        w = model.weights.clone()
    (gx,) = torch.autograd.grad(sim.readout(x, w, model.config)[:, 2].sum(), x)
    (gx_ref,) = torch.autograd.grad(model.readout(x)[:, 2].sum(), x)
    assert (gx - gx_ref).abs().max() < atol
    (gw,) = torch.autograd.grad(model.readout(x.detach())[:, 2].sum(), model.weights)
    assert gw.abs().max() > 1e-3


def test_float32_and_empty_inputs(rng):
    model = QuantumClassifier(ModelConfig(n_layers=2), seed=0)
    x = amplitudes(rng.random((5, 16, 8)))
    single = model.readout(torch.as_tensor(x.astype(np.float32)))
    assert single.dtype == torch.float64
    assert (single - model.readout(x)).abs().max() < 1e-5
    assert model.readout(np.zeros((0, 128))).shape == (0, 10)
    assert model.output_states(np.zeros((0, 128))).shape == (0, 128)


def test_readout_matrix_matches_the_diagonals():
    for readout, n_classes in (("probs", 10), ("z", 3)):
        cfg = ModelConfig(readout=readout, n_classes=n_classes)
        diag = readout_diagonals(cfg)
        assert diag.shape == (n_classes, 128)
        assert torch.equal(diag[:, ::8], sim.readout_matrix(cfg))


class TestErrors:
    def test_weight_shape(self):
        cfg = ModelConfig(n_layers=2)
        with pytest.raises(ValueError, match=r"weights must have shape \(2, 4, 3\), got \(2, 4\)"):
            sim.readout(torch.ones(1, 128), torch.zeros(2, 4), cfg)

    def test_state_shape(self):
        cfg = ModelConfig(n_layers=2)
        with pytest.raises(ValueError, match=r"states must have shape \(batch, 128\), got \(128,\)"):
            sim.simulate(torch.ones(128), torch.zeros(2, 4, 3), cfg)

    def test_structure_arguments(self):
        with pytest.raises(ValueError, match="variant must be one of .* got 'cnn'"):
            sim._structure(2, 2, 1, "cnn", 4)
        with pytest.raises(ValueError, match="n_layers must be a positive integer, got 0"):
            sim._structure(2, 2, 0, "west", 4)

    def test_readout_name(self):
        class Config:
            n_rad, n_classes, readout = 2, 2, "softmax"
        with pytest.raises(ValueError, match="readout must be one of .* got 'softmax'"):
            sim.readout_matrix(Config())


@pytest.mark.parametrize("n_ang", [2, 3, 4])
def test_the_dft_has_the_sign_and_normalisation_of_torch_fft(n_ang, rng, atol):
    F, F_real = sim._dft(n_ang)
    x = torch.as_tensor(rng.standard_normal((5, 2 ** n_ang)))
    assert (x.to(torch.complex128) @ F.T - torch.fft.fft(x, norm="ortho")).abs().max() < atol
    assert (torch.view_as_complex((x @ F_real).view(5, -1, 2)) - x.to(F.dtype) @ F.T).abs().max() < atol
