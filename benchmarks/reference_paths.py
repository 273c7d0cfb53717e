"""The evaluation paths the benchmarks compare with ``equivar.core.simulator`` (benchmark use only).

Each ``make_*`` returns ``readout(states) -> (B, n_classes)`` for a model, differentiable in the
model's weights:

* :func:`make_dense_old`: the package's previous fast path, kept here for comparison: compile the
  layers' PennyLane operations into the dense 2**n × 2**n unitary every call
  (:class:`equivar.core.unitary.CompiledCircuit`), times the fixed transform, one matrix product
  for the batch;
* :func:`make_dense_floor`: a precomputed unitary applied with one matrix product (forward only:
  the floor any dense-unitary method can reach);
* :func:`make_default_qubit`: ``default.qubit``, torch interface, backprop, the batch broadcast;
* :func:`make_lightning`: ``lightning.qubit`` with adjoint differentiation. Adjoint refuses
  ``qml.probs``, so the "probs" readout is one ``qml.Projector`` expectation per class (and
  ⟨Z⟩ expectations for "z"); lightning splits a broadcast batch into one tape per state.
"""
from __future__ import annotations

import pennylane as qml
import torch

from equivar.core.model import (QuantumClassifier, circuit, fourier_transform, layers,
                                readout_from_states)
from equivar.core.unitary import CompiledCircuit, unitary


def make_dense_old(model: QuantumClassifier):
    cfg = model.config
    compiled = CompiledCircuit(layers, cfg.weight_shape, cfg.n_wires, cfg)
    ops = qml.tape.make_qscript(fourier_transform)(cfg).operations if cfg.equivariant else []
    transform = unitary(ops, cfg.n_wires)

    def run(states):
        U = compiled(model.weights) @ transform
        return readout_from_states(states.to(torch.complex128) @ U.T, cfg)

    return run


def make_dense_floor(model: QuantumClassifier):
    cfg = model.config
    with torch.no_grad():
        U = model.unitary()

    def run(states):
        return readout_from_states(states.to(torch.complex128) @ U.T, cfg)

    return run


def make_default_qubit(model: QuantumClassifier):
    return model.qnode()


def make_lightning(model: QuantumClassifier):
    cfg = model.config
    dev = qml.device("lightning.qubit", wires=cfg.n_wires)
    if cfg.readout == "probs":
        observables = [qml.Projector([int(b) for b in format(c, f"0{cfg.n_rad}b")],
                                     wires=cfg.radial_wires) for c in range(cfg.n_classes)]
    else:
        observables = [qml.Z(i) for i in range(cfg.n_classes)]

    @qml.qnode(dev, interface="torch", diff_method="adjoint")
    def node(state):
        qml.StatePrep(state, wires=range(cfg.n_wires))
        circuit(model.weights, cfg)
        return [qml.expval(o) for o in observables]

    def run(states):
        return torch.stack(list(node(states)), dim=-1).reshape(len(states), cfg.n_classes)

    return run
