"""Compile a list of PennyLane operations into one dense unitary, fast and differentiably.

This is the fast batched path of :mod:`equivar.model`: the circuit is written once as
PennyLane operations; :func:`unitary` multiplies their matrices into the circuit's
(2**n, 2**n) unitary (complex128, torch autograd intact), which is then applied to a whole
batch of states with one matrix product. ``tests/test_unitary.py`` checks it against
``qml.matrix`` and ``tests/test_model.py`` against the QNode, both to 1e-10.

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

import numpy as np
import pennylane as qml
import torch
from pennylane.ops import Controlled

DTYPE = torch.complex128


def unitary(ops: Sequence[qml.operation.Operator], n_wires: int) -> torch.Tensor:
    """The product ``ops[-1] @ ... @ ops[0]`` on wires ``0..n_wires-1`` (wire 0 = most significant).

    Args:
        ops: PennyLane operations on integer wires in ``range(n_wires)``.
        n_wires: number of qubits n.

    Returns:
        complex128 tensor of shape (2**n, 2**n); differentiable in the ops' torch parameters.
    """
    dim = 2 ** n_wires
    mats = _batched_single_qubit_matrices(ops)
    state = torch.eye(dim, dtype=DTYPE).reshape((2,) * n_wires + (dim,))
    for op in ops:
        wires = [int(w) for w in op.wires]
        if any(w < 0 or w >= n_wires for w in wires):
            raise ValueError(f"{op} acts on wires {wires}, outside 0..{n_wires - 1}")
    i = 0
    while i < len(ops):
        op = ops[i]
        if _is_constant_diagonal(op, i, mats):
            j = i
            while j < len(ops) and _is_constant_diagonal(ops[j], j, mats):
                j += 1
            state = state * _run_diagonal(ops[i:j], n_wires)[..., None]
        elif isinstance(op, Controlled) and i in mats:
            run = _controlled_run(ops, i, mats)
            state = _apply_controlled_run(state, [mats[k] for k in run],
                                          [int(w) for w in op.control_wires],
                                          [ops[k].control_values for k in run],
                                          int(op.target_wires[0]))
            j = i + len(run)
        elif len(op.wires) == 1 and not isinstance(op, Controlled):
            j, seen = i, set()
            while (j < len(ops) and len(ops[j].wires) == 1 and not isinstance(ops[j], Controlled)
                   and not _is_constant_diagonal(ops[j], j, mats) and int(ops[j].wires[0]) not in seen):
                seen.add(int(ops[j].wires[0]))
                j += 1
            # gates on distinct wires commute: one Kronecker product in ascending wire order
            by_wire = sorted((int(ops[k].wires[0]), mats[k] if k in mats else
                              _as_tensor(ops[k].matrix())) for k in range(i, j))
            kron = by_wire[0][1]
            for _, mat in by_wire[1:]:
                kron = torch.kron(kron, mat)
            state = _apply(state, kron, [w for w, _ in by_wire])
        else:
            mat = mats[i] if i in mats else _as_tensor(op.matrix())
            state = _apply(state, mat, [int(w) for w in op.wires])
            j = i + 1
        i = j
    return state.reshape(dim, dim)


def _is_constant_diagonal(op, index, mats) -> bool:
    return index not in mats and op.num_params == 0 and _constant_diagonal(op) is not None


def _run_diagonal(run, n_wires) -> torch.Tensor:
    """Product of a run of parameter-free diagonal gates as a (2,)*n tensor, cached."""
    key = (n_wires, tuple((op.name, tuple(int(w) for w in op.wires)) for op in run))
    if key not in _RUN_DIAGONALS:
        diagonal = None
        for op in run:
            diagonal = _merge_diagonal(diagonal, _constant_diagonal(op),
                                       [int(w) for w in op.wires], n_wires)
        _RUN_DIAGONALS[key] = torch.as_tensor(diagonal, dtype=DTYPE)
    return _RUN_DIAGONALS[key]


_RUN_DIAGONALS: dict[tuple, torch.Tensor] = {}


def _as_tensor(mat) -> torch.Tensor:
    return mat.to(DTYPE) if torch.is_tensor(mat) else torch.as_tensor(np.asarray(mat), dtype=DTYPE)


def _batched_single_qubit_matrices(ops) -> dict[int, torch.Tensor]:
    """Matrices of parametrised one-qubit gates (or controlled-gate targets), one call per type."""
    groups: dict[type, list[int]] = defaultdict(list)
    for i, op in enumerate(ops):
        base = op.base if isinstance(op, Controlled) else op
        if base.num_params > 0 and len(base.wires) == 1 and type(base).compute_matrix \
                is not qml.operation.Operator.compute_matrix:
            groups[type(base)].append(i)
    mats = {}
    for cls, idx in groups.items():
        bases = [ops[i].base if isinstance(ops[i], Controlled) else ops[i] for i in idx]
        params = [torch.stack([torch.as_tensor(b.parameters[j], dtype=torch.float64)
                               for b in bases]) for j in range(cls.num_params)]
        batch = _as_tensor(cls.compute_matrix(*params))
        for k, i in enumerate(idx):
            mats[i] = batch[k]
    return mats


def _constant_diagonal(op) -> np.ndarray | None:
    """The diagonal of a parameter-free gate whose matrix is diagonal, else None."""
    key = (op.name, len(op.wires))
    if key not in _DIAGONALS:
        mat = np.asarray(qml.matrix(op, wire_order=op.wires))
        _DIAGONALS[key] = np.diag(mat).copy() if np.allclose(mat, np.diag(np.diag(mat)),
                                                             atol=0, rtol=0) else None
    return _DIAGONALS[key]


_DIAGONALS: dict[tuple[str, int], np.ndarray | None] = {}


def _merge_diagonal(current, diag, wires, n_wires):
    k = len(wires)
    factor = diag.reshape((2,) * k)
    # place the factor's axes at `wires` (in order) and broadcast over the others
    order = np.argsort(wires)
    factor = np.transpose(factor, order)
    shape = [1] * n_wires
    for w in wires:
        shape[w] = 2
    factor = factor.reshape(shape)
    return factor * (np.ones((2,) * n_wires, dtype=complex) if current is None else current)


def _apply(state: torch.Tensor, mat: torch.Tensor, wires: list[int]) -> torch.Tensor:
    """Apply a k-qubit matrix on ``wires`` (first wire = most significant bit of ``mat``)."""
    k = len(wires)
    front = list(range(k))
    moved = torch.movedim(state, wires, front)
    shape = moved.shape
    out = (mat @ moved.reshape(2 ** k, -1)).reshape(shape)
    return torch.movedim(out, front, wires)


def _controlled_run(ops, start, mats) -> list[int]:
    """Indices of the controlled gates from ``start`` on that share controls and target and
    have pairwise different control values (they act on disjoint slices, so they commute)."""
    first = ops[start]
    key = (tuple(first.control_wires), tuple(first.target_wires))
    seen, run = set(), []
    for j in range(start, len(ops)):
        op = ops[j]
        if not (isinstance(op, Controlled) and j in mats
                and (tuple(op.control_wires), tuple(op.target_wires)) == key):
            break
        values = tuple(bool(v) for v in op.control_values)
        if values in seen:
            break
        seen.add(values)
        run.append(j)
    return run


def _apply_controlled_run(state, base_mats, controls, values_list, target):
    """Apply ``base_mats[i]`` to ``target`` where ``controls`` hold ``values_list[i]``."""
    wires = controls + [target]
    front = list(range(len(wires)))
    moved = torch.movedim(state, wires, front)
    shape = moved.shape
    n_slices = 2 ** len(controls)
    eye = torch.eye(2, dtype=DTYPE)
    per_slice = [eye] * n_slices
    for mat, values in zip(base_mats, values_list):
        per_slice[int("".join("1" if v else "0" for v in values), 2)] = mat
    out = torch.stack(per_slice) @ moved.reshape(n_slices, 2, -1)
    return torch.movedim(out.reshape(shape), front, wires)
