"""The rotationally equivariant quantum classifier of West et al., and two variants.

West, Heredge, Sevior, Usman, PRX Quantum 5, 030320 (2024), written by us from the paper; their
public code (no licence) was read to check details, never copied. On ``n = n_rad + n_ang`` qubits (wire 0 the most
significant bit, the angular register the last ``n_ang`` wires):

1. amplitude encoding of the normalised ring grid (``j = ring * N + angle``);
2. **transform** (equivariant variants): the adjoint of the textbook swap-free QFT ladder
   placed on the angular wires in reverse order. It maps ``|θ⟩`` to
   ``N^{-1/2} Σ_k e^{-2πikθ/N} |bitrev(k)⟩``, so the rotation becomes a diagonal phase;
3. ``n_layers`` layers of ``qml.Rot`` gates and a CZ chain over all qubits;
4. an invariant readout on the radial register.

Variants (``ModelConfig.variant``):

* ``"west"``: ``Rot`` on every radial qubit (the angular qubits get no non-diagonal gate);
* ``"sector"``: the sector-resolved variant: each radial ``Rot`` is controlled by the
  transformed angular register, one parameter set per Fourier mode k, so every sector k has
  its own operator M_k;
* ``"baseline"``: not equivariant: no transform, ``Rot`` on all qubits.

Readouts (``ModelConfig.readout``): ``"z"``: ⟨Z_i⟩ on radial qubits i < n_classes (West's;
n_classes ≤ n_rad); ``"probs"``: probabilities of the radial basis states r < n_classes (up to
2**n_rad classes). Logits are ``scale × readout``. Used by every chapter.

The PennyLane functions below (:func:`circuit` and its parts) define the circuit and give the
reference QNode (:meth:`QuantumClassifier.qnode`); every evaluation runs on the structured
state-vector simulator :mod:`equivar.core.simulator`, and the operators (:meth:`unitary`,
:meth:`observables`) are derived from it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import pennylane as qml
import torch

from equivar.core import rings, simulator
from equivar.core.simulator import DTYPE
from equivar.settings import VARIANTS

READOUTS = ("probs", "z")


MAX_WIRES = 24  # a batch of 256 states at 24 qubits is already 64 GiB of complex128


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a classifier. Sources are listed in the book's provenance table."""

    n_rad: int = 4          # 16 rings: a 28x28 image has ~14 px of radius (ours; West: 10)
    n_ang: int = 3          # 8 angles, so the symmetry group is C_8 (West et al.)
    n_layers: int = 4       # depth (ours; West et al. varied it)
    variant: str = "west"   # "west" | "sector" | "baseline", see module docstring
    readout: str = "probs"  # "probs": 10 classes need 2**n_rad >= 10 (ours); "z": West's
    n_classes: int = 10     # all classes of the 10-class datasets
    scale: float = 10.0     # logits = scale * readout (West: 50 with <Z>; ours for probs)

    def __post_init__(self):
        for name in ("n_rad", "n_ang", "n_layers", "n_classes"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_ang < 2:
            raise ValueError(f"n_ang must be at least 2 (C_4 or larger), got {self.n_ang}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        limit = self.n_rad if self.readout == "z" else 2 ** self.n_rad
        if self.n_classes > limit:
            raise ValueError(f"n_classes={self.n_classes} exceeds what readout {self.readout!r} "
                             f"holds with n_rad={self.n_rad} (at most {limit})")
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float, np.number)) \
                or not np.isfinite(self.scale) or self.scale <= 0:
            raise ValueError(f"scale must be a positive number, got {self.scale!r}")
        if self.n_rad + self.n_ang > MAX_WIRES:
            gib = 2 ** (self.n_rad + self.n_ang) * 16 / 2 ** 30
            raise ValueError(f"n_rad + n_ang = {self.n_rad + self.n_ang} qubits is too large to "
                             f"simulate: one complex128 state alone needs {gib:,.0f} GiB "
                             f"(at most {MAX_WIRES} qubits here)")

    @property
    def n_wires(self) -> int:
        return self.n_rad + self.n_ang

    @property
    def n_rings(self) -> int:
        return 2 ** self.n_rad

    @property
    def n_angles(self) -> int:
        return 2 ** self.n_ang

    @property
    def radial_wires(self) -> list[int]:
        return list(range(self.n_rad))

    @property
    def angular_wires(self) -> list[int]:
        return list(range(self.n_rad, self.n_wires))

    @property
    def equivariant(self) -> bool:
        return self.variant != "baseline"

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.variant == "west":
            return (self.n_layers, self.n_rad, 3)
        if self.variant == "sector":
            return (self.n_layers, self.n_angles, self.n_rad, 3)
        return (self.n_layers, self.n_wires, 3)

    def as_dict(self) -> dict:
        return asdict(self)


def bit_reverse(k: int, bits: int) -> int:
    """Reverse the ``bits``-bit binary representation of ``k``."""
    return int(format(k, f"0{bits}b")[::-1], 2)


def _textbook_qft_ladder(wires: Sequence[int]) -> None:
    """Hadamard + controlled-phase ladder of the textbook QFT, without the final swaps."""
    for i, wire in enumerate(wires):
        qml.Hadamard(wire)
        for j in range(i + 1, len(wires)):
            qml.ControlledPhaseShift(np.pi / 2 ** (j - i), wires=[wires[j], wire])


def fourier_transform(config: ModelConfig) -> None:
    """Queue West's transform: adjoint ladder on the angular wires in reverse order."""
    qml.adjoint(_textbook_qft_ladder)(config.angular_wires[::-1])


def cz_chain(n_wires: int) -> None:
    for i in range(n_wires - 1):
        qml.CZ(wires=[i, i + 1])


def layers(weights, config: ModelConfig) -> None:
    """Queue the trainable layers for ``weights`` of shape ``config.weight_shape``."""
    for layer in range(config.n_layers):
        w = weights[layer]
        if config.variant == "west":
            for i in config.radial_wires:
                qml.Rot(w[i, 0], w[i, 1], w[i, 2], wires=i)
        elif config.variant == "baseline":
            for i in range(config.n_wires):
                qml.Rot(w[i, 0], w[i, 1], w[i, 2], wires=i)
        else:
            # all gates of this layer commute (disjoint control values or different targets)
            for i in config.radial_wires:
                for k in range(config.n_angles):
                    # after the transform, mode k sits in angular basis state bitrev(k)
                    state = bit_reverse(k, config.n_ang)
                    values = [int(b) for b in format(state, f"0{config.n_ang}b")]
                    qml.ctrl(qml.Rot(w[k, i, 0], w[k, i, 1], w[k, i, 2], wires=i),
                             control=config.angular_wires, control_values=values)
        cz_chain(config.n_wires)


def circuit(weights, config: ModelConfig) -> None:
    """The whole circuit after state preparation (transform, then layers)."""
    if config.equivariant:
        fourier_transform(config)
    layers(weights, config)


def amplitudes(grids):
    """Amplitude-encoding vectors from ring grids.

    Args:
        grids: (n, n_rings, n_angles) or (n_rings, n_angles), numpy or torch.

    Returns:
        float64 (n, n_rings * n_angles) (or 1-D), unit L2 norm, index ``ring * N + angle``.
        Raises ValueError on NaN/inf or on an all-zero grid (it cannot be normalised).
    """
    is_torch = torch.is_tensor(grids)
    x = grids.to(torch.float64) if is_torch else np.asarray(grids, dtype=np.float64)
    single = x.ndim == 2
    if single:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"grids must have shape (n, n_rings, n_angles), got {tuple(x.shape)}")
    flat = x.reshape(x.shape[0], x.shape[1] * x.shape[2])  # -1 is ambiguous for n = 0
    finite = torch.isfinite(flat).all() if is_torch else np.isfinite(flat).all()
    if not bool(finite):
        raise ValueError("grids contain NaN or infinite values")
    norms = flat.norm(dim=1, keepdim=True) if is_torch else np.linalg.norm(flat, axis=1,
                                                                          keepdims=True)
    zero = np.flatnonzero(np.asarray(norms.detach() if is_torch else norms).ravel() == 0)
    if zero.size:
        raise ValueError(f"grid(s) {zero[:5].tolist()} are all zero: amplitude encoding cannot "
                         "normalise them (the image is blank on the sampled rings)")
    out = flat / norms
    return out[0] if single else out


class QuantumClassifier(torch.nn.Module):
    """A classifier of :class:`ModelConfig`; ``forward(states) -> logits``.

    Weights start from a standard normal (as West et al.) drawn with ``seed``.
    ``forward`` runs the structured simulator (:mod:`equivar.core.simulator`: O(B·2**n·n·L)
    time, O(B·2**n) memory, differentiable in the weights and the states);
    :meth:`qnode` gives the same function as a PennyLane QNode on ``default.qubit``.
    """

    def __init__(self, config: ModelConfig, seed: int = 0):
        super().__init__()
        self.config = config
        gen = torch.Generator().manual_seed(int(seed))
        self.weights = torch.nn.Parameter(
            torch.randn(config.weight_shape, generator=gen, dtype=torch.float64))

    # ----- the circuit as PennyLane operations
    def operations(self, weights=None) -> list:
        """The circuit's operations after state preparation, as a list."""
        w = self.weights if weights is None else weights
        return qml.tape.make_qscript(circuit)(w, self.config).operations

    def transform_unitary(self) -> torch.Tensor:
        """The fixed transform's unitary (identity for the baseline), (2**n, 2**n) complex128,
        from the simulator's transform; cached per config."""
        return _transform_unitary(self.config)

    def unitary(self) -> torch.Tensor:
        """The circuit's unitary U (complex128, (2**n, 2**n)), differentiable in the weights:
        the simulator applied to the 2**n basis states (column j = U e_j)."""
        return simulator.circuit_unitary(self.weights, self.config)

    # ----- evaluation
    def readout(self, states) -> torch.Tensor:
        """Readout values (B, n_classes) float64 for amplitude vectors ``states`` (B, 2**n),
        real or complex; differentiable in the weights and in ``states``."""
        return simulator.readout(self._check_states(states), self.weights, self.config)

    def output_states(self, states) -> torch.Tensor:
        """The circuit's output states U·x, (B, 2**n) complex128 (basis order)."""
        return simulator.simulate(self._check_states(states), self.weights, self.config)

    def forward(self, states) -> torch.Tensor:
        """Logits (B, n_classes) = scale × readout."""
        return self.config.scale * self.readout(states)

    def qnode(self):
        """A PennyLane QNode ``f(state) -> readout`` (torch, backprop) for the current weights."""
        cfg = self.config
        dev = qml.device("default.qubit", wires=cfg.n_wires)

        @qml.qnode(dev, interface="torch", diff_method="backprop")
        def model(state):
            qml.StatePrep(state, wires=range(cfg.n_wires))
            circuit(self.weights, cfg)
            if cfg.readout == "probs":
                return qml.probs(wires=cfg.radial_wires)
            return [qml.expval(qml.Z(i)) for i in range(cfg.n_classes)]

        def run(state):
            out = model(torch.as_tensor(state))
            if cfg.readout == "probs":
                return out[..., : cfg.n_classes]
            return torch.stack(list(out), dim=-1)

        return run

    def observables(self) -> torch.Tensor:
        """Heisenberg-picture readout operators M_c = U† O_c U, shape (n_classes, D, D).

        ``readout(x)[c] = <x|M_c|x>``; for equivariant variants every M_c commutes with the
        rotation.
        """
        U = self.unitary()
        diag = readout_diagonals(self.config)
        return torch.einsum("ji,cj,jk->cik", U.conj(), diag.to(DTYPE), U)

    def _check_states(self, states) -> torch.Tensor:
        """States (batch, D) as float64 (real input) or complex128 (complex input); ValueError
        unless finite with norm ≤ 1 (amplitude vectors have norm 1; the readout projection of
        chapter 4 leaves it below 1). Real states stay real: the simulator transforms them with
        a real matrix product."""
        x = torch.as_tensor(states)
        dim = 2 ** self.config.n_wires
        if x.ndim != 2 or x.shape[1] != dim:
            raise ValueError(f"states must have shape (batch, {dim}), got {tuple(x.shape)}")
        # checked before promotion to complex: on the hot path the states are real
        parts = (x.real, x.imag) if x.is_complex() else (x,)
        squares = sum(p.detach().double() ** 2 for p in parts)
        norms = squares.sum(1)
        if not bool(torch.isfinite(norms).all()):
            raise ValueError("states contain NaN or infinite amplitudes")
        # a unit vector stored in single precision has a norm off by a few float32 ulps
        real_dtype = x.real.dtype if x.is_complex() else x.dtype
        slack = 1e-9 if real_dtype == torch.float64 else 64 * torch.finfo(torch.float32).eps
        x = x.to(DTYPE if x.is_complex() else torch.float64)
        if len(norms) and float(norms.max()) > 1 + slack:
            raise ValueError(f"states must have norm at most 1 (amplitude vectors), found "
                             f"{float(norms.max()):.4g}; encode grids with equivar.core.model.amplitudes")
        return x


@lru_cache(maxsize=None)
def _transform_unitary(config: ModelConfig) -> torch.Tensor:
    eye = torch.eye(2 ** config.n_wires, dtype=torch.float64)
    return simulator.transform(eye, config).T.contiguous()


def readout_diagonals(config: ModelConfig) -> torch.Tensor:
    """Diagonals of the readout observables O_c in the computational basis, (n_classes, D):
    the simulator's readout on the radial register, repeated over the angular basis states."""
    return simulator.readout_matrix(config).repeat_interleave(config.n_angles, dim=1)


def readout_from_states(psi: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """Readout values (B, n_classes) from output states ``psi`` (B, D) (e.g. from
    :meth:`QuantumClassifier.output_states`)."""
    prob = psi.real ** 2 + psi.imag ** 2
    return prob @ readout_diagonals(config).T


def rotate_states(states, m: int, config: ModelConfig):
    """Apply the rotation by ``2π m / N`` to amplitude vectors (B, D): 1_rad ⊗ S^m."""
    x = torch.as_tensor(states)
    grids = x.reshape(x.shape[0], config.n_rings, config.n_angles)
    return rings.rotate(grids, m).reshape(x.shape)


def invariance_deviation(model: QuantumClassifier, states,
                         elements: Sequence[int] | None = None) -> float:
    """Largest |f(R(m) x) - f(x)| over the states and the rotations m in ``elements``
    (default: all of C_N), for the model's readout."""
    cfg = model.config
    elements = range(cfg.n_angles) if elements is None else elements
    with torch.no_grad():
        base = model.readout(states)
        return max(float((model.readout(rotate_states(states, m, cfg)) - base).abs().max())
                   for m in elements)


def assert_invariant(model: QuantumClassifier, states, elements: Sequence[int] | None = None,
                     atol: float = 1e-10) -> float:
    """Check ``f(R(m) x) == f(x)`` for every m in ``elements`` (default: all of C_N).

    Returns the largest deviation; raises AssertionError above ``atol``.
    """
    worst = invariance_deviation(model, states, elements)
    if worst > atol:
        shown = list(range(model.config.n_angles) if elements is None else elements)
        raise AssertionError(f"{model.config.variant} model is not invariant: max deviation "
                             f"{worst:.3e} > {atol:g} over rotations {shown}")
    return worst
