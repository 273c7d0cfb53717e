"""Compile PennyLane operations into one dense unitary, fast and differentiably.

A general tool for arbitrary lists of PennyLane operations. The classifiers of
:mod:`equivar.core.model` no longer use it: they run on :mod:`equivar.core.simulator`, which
also gives their unitaries. It stays as an independent cross-check and for analyses of other
circuits. The circuit's matrices are multiplied into its (2**n, 2**n) unitary (complex128,
torch autograd intact); ``tests/test_unitary.py`` checks it against ``qml.matrix`` to 1e-10.

Two entry points share one plan and one evaluator:

* :func:`unitary` (ops) → U, for any list of operations;
* :class:`CompiledCircuit` traces a quantum function of a weight tensor **once**, with probe
  weights whose entries equal their flat index, so every gate records which weights it reads;
  each later call gathers the weights with one index operation instead of building the
  PennyLane operations again.

What makes it fast (all exact):

* the matrices of all parametrised one-qubit gates of one type (``Rot``, ``RY``, ...), bare or
  as the target of a ``qml.ctrl``, come from one broadcast ``compute_matrix`` call;
* runs of parameter-free diagonal gates (the CZ chain) are merged into one diagonal, cached;
* a run of one-qubit gates on distinct wires (a layer of ``Rot``) is one Kronecker product;
* a run of controlled one-qubit gates with the same controls and target but different control
  values acts on disjoint slices of the state: it is applied as one batched product.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pennylane as qml
import torch
from pennylane.ops import Controlled

from equivar.core.simulator import DTYPE


@dataclass
class _Gate:
    """A one-qubit matrix: computed from ``cls`` and ``params``, or the constant ``matrix``."""

    cls: type | None = None
    params: list = field(default_factory=list)
    matrix: torch.Tensor | None = None
    slot: int = -1  # position in its class's batch (set when planning)


def unitary(ops: Sequence[qml.operation.Operator], n_wires: int) -> torch.Tensor:
    """The product ``ops[-1] @ ... @ ops[0]`` on wires ``0..n_wires-1`` (wire 0 = most significant).

    Args:
        ops: PennyLane operations on integer wires in ``range(n_wires)``.
        n_wires: number of qubits n.

    Returns:
        complex128 tensor of shape (2**n, 2**n); differentiable in the ops' torch parameters.
    """
    steps, groups = _plan(ops, n_wires)
    params = {cls: torch.stack([torch.stack([torch.as_tensor(p, dtype=torch.float64)
                                             for p in g.params]) for g in gates])
              for cls, gates in groups.items()}
    return _evaluate(steps, groups, params, n_wires)


class CompiledCircuit:
    """A quantum function ``qfunc(weights, *args)`` compiled once for a weight shape.

    ``CompiledCircuit(qfunc, shape, n_wires, *args)(weights)`` equals
    ``unitary(make_qscript(qfunc)(weights, *args).operations, n_wires)`` for every ``weights``
    of that shape, as long as every gate parameter is a single weight entry (true for the
    circuits of :mod:`equivar.core.model`).
    """

    def __init__(self, qfunc, weight_shape: tuple[int, ...], n_wires: int, *args):
        self.weight_shape, self.n_wires = tuple(weight_shape), n_wires
        size = int(np.prod(weight_shape))
        index = torch.arange(size, dtype=torch.float64).reshape(weight_shape)
        ops = qml.tape.make_qscript(qfunc)(index, *args).operations
        # a second probe, 3 * index + 1/4: a parameter that is one weight entry reads both
        check_ops = qml.tape.make_qscript(qfunc)(3 * index + 0.25, *args).operations
        self.steps, self.groups = _plan(ops, n_wires)
        _, check_groups = _plan(check_ops, n_wires)
        self.index = {}
        for cls, gates in self.groups.items():
            flat = [p for g in gates for p in g.params]
            check = [p for g in check_groups.get(cls, []) for p in g.params]
            ok = len(flat) == len(check) and all(
                torch.is_tensor(p) and p.ndim == 0 and float(p) == int(p) and 0 <= int(p) < size
                and float(q) == 3 * int(p) + 0.25 for p, q in zip(flat, check))
            if not ok:
                raise ValueError(f"a {cls.__name__} parameter is not a single weight entry; "
                                 "use equivar.core.unitary.unitary instead")
            self.index[cls] = torch.tensor([int(p) for p in flat]).reshape(len(gates), -1)

    def __call__(self, weights: torch.Tensor) -> torch.Tensor:
        if tuple(weights.shape) != self.weight_shape:
            raise ValueError(f"weights must have shape {self.weight_shape}, "
                             f"got {tuple(weights.shape)}")
        flat = weights.reshape(-1)
        params = {cls: flat[idx] for cls, idx in self.index.items()}
        return _evaluate(self.steps, self.groups, params, self.n_wires)


# ----------------------------------------------------------------- planning

def _one_qubit_gate(op) -> _Gate:
    """The matrix source of a one-qubit op (or of a controlled op's target)."""
    base = op.base if isinstance(op, Controlled) else op
    if base.num_params > 0 and any(torch.is_tensor(p) for p in base.parameters) \
            and type(base).compute_matrix is not qml.operation.Operator.compute_matrix:
        return _Gate(cls=type(base), params=list(base.parameters))
    return _Gate(matrix=_as_tensor(qml.matrix(base, wire_order=base.wires)))


def _is_constant_diagonal(op) -> bool:
    return op.num_params == 0 and _constant_diagonal(op) is not None


def _is_single(op) -> bool:
    return len(op.wires) == 1 and not isinstance(op, Controlled) and not _is_constant_diagonal(op)


def _is_controlled_one_qubit(op) -> bool:
    return isinstance(op, Controlled) and len(op.target_wires) == 1


def _plan(ops, n_wires):
    """Turn ops into fused steps; parametrised one-qubit gates are grouped by class."""
    for op in ops:
        wires = [int(w) for w in op.wires]
        if any(w < 0 or w >= n_wires for w in wires):
            raise ValueError(f"{op} acts on wires {wires}, outside 0..{n_wires - 1}")
    steps, groups = [], defaultdict(list)

    def register(gate: _Gate) -> _Gate:
        if gate.cls is not None:
            gate.slot = len(groups[gate.cls])
            groups[gate.cls].append(gate)
        return gate

    i = 0
    while i < len(ops):
        op = ops[i]
        if _is_constant_diagonal(op):
            j = i
            while j < len(ops) and _is_constant_diagonal(ops[j]):
                j += 1
            steps.append(("diag", _run_diagonal(ops[i:j], n_wires)))
        elif _is_controlled_one_qubit(op):
            controls = [int(w) for w in op.control_wires]
            target = int(op.target_wires[0])
            j, seen, slices = i, set(), []
            while j < len(ops) and _is_controlled_one_qubit(ops[j]) \
                    and [int(w) for w in ops[j].control_wires] == controls \
                    and int(ops[j].target_wires[0]) == target:
                values = tuple(bool(v) for v in ops[j].control_values)
                if values in seen:
                    break
                seen.add(values)
                index = int("".join("1" if v else "0" for v in values), 2)
                slices.append((index, register(_one_qubit_gate(ops[j]))))
                j += 1
            steps.append(("ctrl", controls, target, slices))
        elif _is_single(op):
            j, wires = i, set()
            while j < len(ops) and _is_single(ops[j]) and int(ops[j].wires[0]) not in wires:
                wires.add(int(ops[j].wires[0]))
                j += 1
            # gates on distinct wires commute: one Kronecker product in ascending wire order
            gates = sorted(((int(ops[k].wires[0]), register(_one_qubit_gate(ops[k])))
                            for k in range(i, j)), key=lambda item: item[0])
            steps.append(("kron", [w for w, _ in gates], [g for _, g in gates]))
        else:
            steps.append(("dense", [int(w) for w in op.wires], _as_tensor(op.matrix())))
            j = i + 1
        i = j
    return steps, dict(groups)


# ----------------------------------------------------------------- evaluation

def _evaluate(steps, groups, params, n_wires) -> torch.Tensor:
    """Run the plan; ``params[cls]`` is a (K, num_params) tensor for that class's gates."""
    mats = {cls: _as_tensor(cls.compute_matrix(*params[cls].T)).reshape(-1, 2, 2)
            for cls in groups}

    def matrix(gate: _Gate) -> torch.Tensor:
        return gate.matrix if gate.cls is None else mats[gate.cls][gate.slot]

    dim = 2 ** n_wires
    state = torch.eye(dim, dtype=DTYPE).reshape((2,) * n_wires + (dim,))
    for step in steps:
        kind = step[0]
        if kind == "diag":
            state = state * step[1][..., None]
        elif kind == "kron":
            _, wires, gates = step
            kron = matrix(gates[0])
            for gate in gates[1:]:
                kron = torch.kron(kron, matrix(gate))
            state = _apply(state, kron, wires)
        elif kind == "ctrl":
            _, controls, target, slices = step
            state = _apply_controlled(state, controls, target,
                                      [(index, matrix(gate)) for index, gate in slices])
        else:
            state = _apply(state, step[2], step[1])
    return state.reshape(dim, dim)


def _as_tensor(mat) -> torch.Tensor:
    # contiguous: qml.matrix can return a transposed (Fortran-order) array, which torch.kron
    # rejects
    out = mat.to(DTYPE) if torch.is_tensor(mat) else torch.as_tensor(np.asarray(mat), dtype=DTYPE)
    return out.contiguous()


def _constant_diagonal(op) -> np.ndarray | None:
    """The diagonal of a parameter-free gate whose matrix is diagonal, else None (cached by the
    op's hash, which covers its name, wires, control values and hyperparameters)."""
    key = op.hash
    if key not in _DIAGONALS:
        mat = np.asarray(qml.matrix(op, wire_order=op.wires))
        _DIAGONALS[key] = np.diag(mat).copy() if np.allclose(mat, np.diag(np.diag(mat)),
                                                             atol=0, rtol=0) else None
    return _DIAGONALS[key]


_DIAGONALS: dict[int, np.ndarray | None] = {}


def _run_diagonal(run, n_wires) -> torch.Tensor:
    """Product of a run of parameter-free diagonal gates as a (2,)*n tensor, cached."""
    key = (n_wires, tuple(op.hash for op in run))
    if key not in _RUN_DIAGONALS:
        diagonal = np.ones((2,) * n_wires, dtype=complex)
        for op in run:
            wires = [int(w) for w in op.wires]
            factor = np.transpose(_constant_diagonal(op).reshape((2,) * len(wires)),
                                  np.argsort(wires))
            shape = [2 if w in wires else 1 for w in range(n_wires)]
            diagonal = diagonal * factor.reshape(shape)
        _RUN_DIAGONALS[key] = torch.as_tensor(diagonal, dtype=DTYPE)
    return _RUN_DIAGONALS[key]


_RUN_DIAGONALS: dict[tuple, torch.Tensor] = {}


def _apply(state: torch.Tensor, mat: torch.Tensor, wires: list[int]) -> torch.Tensor:
    """Apply a k-qubit matrix on ``wires`` (first wire = most significant bit of ``mat``)."""
    k = len(wires)
    front = list(range(k))
    moved = torch.movedim(state, wires, front)
    shape = moved.shape
    out = (mat @ moved.reshape(2 ** k, -1)).reshape(shape)
    return torch.movedim(out, front, wires)


def _apply_controlled(state, controls, target, slices):
    """Apply each ``(index, 2×2 matrix)`` to ``target`` on the slice where the controls read
    ``index`` (binary, first control most significant); other slices are untouched."""
    wires = controls + [target]
    front = list(range(len(wires)))
    moved = torch.movedim(state, wires, front)
    shape = moved.shape
    n_slices = 2 ** len(controls)
    per_slice = [torch.eye(2, dtype=DTYPE)] * n_slices
    for index, mat in slices:
        per_slice[index] = mat
    out = torch.stack(per_slice) @ moved.reshape(n_slices, 2, -1)
    return torch.movedim(out.reshape(shape), front, wires)
