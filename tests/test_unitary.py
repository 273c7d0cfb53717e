"""equivar.core.unitary: compiled unitaries equal qml.matrix, values and gradients."""
from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest
import torch

from equivar.core.unitary import CompiledCircuit, unitary


def reference(ops, n):
    return torch.as_tensor(qml.matrix(qml.tape.QuantumScript(ops), wire_order=range(n)))


def random_ops(params, n, rng):
    """A circuit exercising every path: batched 1-qubit gates, ctrl runs, diagonals, dense."""
    ops, p = [], iter(params)
    for _ in range(3):
        for w in range(n):
            ops.append(qml.Rot(next(p), next(p), next(p), wires=w))
        ops.append(qml.RY(next(p), wires=int(rng.integers(n))))
        ops += [qml.CZ(wires=[i, i + 1]) for i in range(n - 1)]
        ops.append(qml.CNOT(wires=[0, n - 1]))
        ops.append(qml.ControlledPhaseShift(0.3, wires=[1, 2]))
        ops.append(qml.adjoint(qml.S(wires=2)))
        for values in ([0, 1], [1, 1], [0, 0]):  # a run with distinct control values
            ops.append(qml.ctrl(qml.Rot(next(p), next(p), next(p), wires=0), control=[2, 3],
                                control_values=values))
        ops.append(qml.ctrl(qml.RX(next(p), wires=1), control=[0], control_values=[1]))
        ops.append(qml.Hadamard(wires=3))
    return ops


def test_matches_qml_matrix(rng, atol):
    n = 4
    params = torch.tensor(rng.uniform(-3, 3, 100), dtype=torch.float64)
    ops = random_ops(params, n, rng)
    assert (unitary(ops, n) - reference(ops, n)).abs().max() < atol


def test_gradients_match_qml_matrix(rng, atol):
    n = 4
    params = torch.tensor(rng.uniform(-3, 3, 100), dtype=torch.float64, requires_grad=True)
    target = torch.tensor(rng.standard_normal((16, 16)), dtype=torch.complex128)
    loss = lambda U: (U * target).real.sum()
    (g_fast,) = torch.autograd.grad(loss(unitary(random_ops(params, n, np.random.default_rng(1)), n)),
                                    params)
    (g_ref,) = torch.autograd.grad(loss(reference(random_ops(params, n, np.random.default_rng(1)), n)),
                                   params)
    assert (g_fast - g_ref).abs().max() < atol
    assert g_fast.abs().max() > 1e-3  # negative control: the gradient is not trivially zero


def test_repeated_control_values_are_not_fused_wrongly(atol):
    # two gates on the same slice do not commute with each other: order must be kept
    t = lambda v: torch.tensor(v, dtype=torch.float64)
    ops = [qml.ctrl(qml.Rot(t(a), t(0.1), t(0.2), wires=0), control=[1], control_values=[v])
           for a, v in [(0.4, 1), (0.9, 1), (0.2, 0)]]
    assert (unitary(ops, 2) - reference(ops, 2)).abs().max() < atol


def test_controlled_diagonal_gates_keep_their_control_values(atol):
    ops = [qml.ctrl(qml.Z(2), control=[0, 1], control_values=values)
           for values in ([0, 1], [1, 0], [1, 1])]
    ops += [qml.ctrl(qml.S(2), control=[0], control_values=[v]) for v in (0, 1)]
    assert (unitary(ops, 3) - reference(ops, 3)).abs().max() < atol


def test_is_unitary(rng, atol):
    params = torch.tensor(rng.uniform(-3, 3, 100), dtype=torch.float64)
    U = unitary(random_ops(params, 4, rng), 4)
    assert (U.conj().T @ U - torch.eye(16, dtype=U.dtype)).abs().max() < atol


def test_wire_out_of_range():
    with pytest.raises(ValueError, match="acts on wires \\[2\\], outside 0..1"):
        unitary([qml.Hadamard(wires=2)], 2)


class TestCompiledCircuit:
    def circuit(self, w, n):
        for layer in range(w.shape[0]):
            for i in range(n):
                qml.Rot(w[layer, i, 0], w[layer, i, 1], w[layer, i, 2], wires=i)
            qml.Hadamard(wires=0)
            for values in ([0, 1], [1, 0]):
                qml.ctrl(qml.RY(w[layer, 0, 0], wires=1), control=[2, 3], control_values=values)
            for i in range(n - 1):
                qml.CZ(wires=[i, i + 1])
            qml.CNOT(wires=[3, 0])

    def test_matches_rebuilding_the_ops_for_new_weights(self, rng, atol):
        n = 4
        compiled = CompiledCircuit(self.circuit, (2, n, 3), n, n)
        for _ in range(3):
            w = torch.tensor(rng.uniform(-3, 3, (2, n, 3)), dtype=torch.float64)
            ops = qml.tape.make_qscript(self.circuit)(w, n).operations
            assert (compiled(w) - reference(ops, n)).abs().max() < atol

    def test_gradients_match(self, rng, atol):
        n = 4
        compiled = CompiledCircuit(self.circuit, (2, n, 3), n, n)
        w = torch.tensor(rng.uniform(-3, 3, (2, n, 3)), dtype=torch.float64, requires_grad=True)
        target = torch.tensor(rng.standard_normal((16, 16)), dtype=torch.complex128)
        (g1,) = torch.autograd.grad((compiled(w) * target).real.sum(), w)
        ops = qml.tape.make_qscript(self.circuit)(w, n).operations
        (g2,) = torch.autograd.grad((reference(ops, n) * target).real.sum(), w)
        assert (g1 - g2).abs().max() < atol and g1.abs().max() > 1e-3

    def test_rejects_derived_parameters(self):
        def derived(w):
            qml.RX(2 * w[0], wires=0)
        with pytest.raises(ValueError, match="not a single weight entry"):
            CompiledCircuit(derived, (3,), 1)

    def test_wrong_weight_shape(self):
        compiled = CompiledCircuit(lambda w: qml.RX(w[0], wires=0), (2,), 1)
        with pytest.raises(ValueError, match=r"weights must have shape \(2,\)"):
            compiled(torch.zeros(3, dtype=torch.float64))


def test_kron_run_with_an_adjoint_constant_gate(atol):
    # regression: qml.matrix of an adjoint gate is a transposed view, which torch.kron rejected
    t = torch.tensor([0.3, 0.5, 0.7], dtype=torch.float64)
    ops = [qml.Rot(t[0], t[1], t[2], wires=0), qml.adjoint(qml.Hadamard(wires=1)),
           qml.adjoint(qml.S(wires=2))]
    assert (unitary(ops, 3) - reference(ops, 3)).abs().max() < atol
