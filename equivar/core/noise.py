"""Hardware noise on the classifiers of :mod:`equivar.core.model`, by density-matrix simulation.

A :class:`NoiseModel` puts one single-qubit channel on chosen wires at one place in the
circuit, plus a readout error:

* ``channel``: ``"depolarizing"`` (ρ ↦ (1-p)ρ + p/3 (XρX + YρY + ZρZ)), ``"amplitude_damping"``
  (|1⟩ decays to |0⟩ with probability γ) or ``"bit_flip"`` (X with probability p), with the
  Kraus operators of PennyLane's ``DepolarizingChannel``, ``AmplitudeDamping``, ``BitFlip``;
* ``placement``: ``"layers"``: after every layer (Rot gates and CZ chain), on ``wires``;
  ``"input"``: once on the encoded state, *before* the angular transform (state-preparation
  noise, where the rotation is a cyclic shift of the angular basis, not a phase);
  ``"transform"``: after every gate of the angular transform (Hadamards and controlled phases
  of the inverse-QFT ladder), on the gate's wires among ``wires`` (the baseline has no
  transform, so no noise);
* ``wires``: ``"all"``, ``"radial"`` or ``"angular"``;
* ``readout_error``: each radial qubit's outcome flipped with probability q before it is read
  (a bit flip on the radial wires just before measurement).

Which noise keeps the model invariant. After the transform the rotation by 2πm/N is a product
of single-qubit phase gates on the angular wires (mode k gets e^{-2πikm/N}, k linear in the
bits): depolarizing and amplitude damping commute with phase gates, a bit flip does not
(:func:`rotation_commutator`). On the input, before the transform, the rotation is the cyclic
shift of the angular basis, which mixes the bits: none of the channels commutes with it there.
Whether the *model* stays invariant is a weaker question: after the transform every layer of
the equivariant variants is block-diagonal in the angular basis and the readout traces the
angular register out, so only the angular-diagonal blocks of ρ reach the readout, and those
are rotation-invariant; a channel whose Kraus operators are diagonal or permutations in that
basis (all three here) keeps them so. Chapter 5 shows both numerically.

The circuit is split into the transform T and one unitary per layer, each derived from the
state-vector simulator (:mod:`equivar.core.simulator`), so there is one definition of the
circuit; ρ of a batch is (B, D, D) complex128 and every step is a batched matrix product or
einsum: O(B·D³·L) time, fine up to about 8 qubits. For the equivariant variants only the N
diagonal blocks in the angular basis are evolved (O(B·N·R³·L), see
:func:`register_probabilities`), equal to the full path to rounding (tested). :func:`reference_readout` is the same on
PennyLane's ``default.mixed`` (the test compares them to 1e-10). Used by chapter 5.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import pennylane as qml
import torch

from equivar.core import model as qmodel
from equivar.core import simulator
from equivar.core.simulator import DTYPE

CHANNELS = ("depolarizing", "amplitude_damping", "bit_flip")
PLACEMENTS = ("layers", "input", "transform")
WIRES = ("all", "radial", "angular")
BLOCK = 64        # states per density-matrix block (64 × 128 × 128 complex128 = 16 MiB at 7 qubits)
MAX_WIRES = 10    # D³ per layer and state: beyond this, a density matrix is too slow here


@dataclass(frozen=True)
class NoiseModel:
    """One channel at one place in the circuit, and a readout error (see module docstring)."""

    channel: str = "depolarizing"
    rate: float = 0.0            # p (depolarizing, bit flip) or γ (amplitude damping)
    placement: str = "layers"    # "layers": after every layer; "input": before the transform;
                                 # "transform": after every gate of the transform
    wires: str = "all"           # "all" | "radial" | "angular"
    readout_error: float = 0.0   # probability that a radial qubit's outcome is flipped

    def __post_init__(self):
        if self.channel not in CHANNELS:
            raise ValueError(f"channel must be one of {CHANNELS}, got {self.channel!r}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {self.placement!r}")
        if self.wires not in WIRES:
            raise ValueError(f"wires must be one of {WIRES}, got {self.wires!r}")
        for name in ("rate", "readout_error"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
                    or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")

    def noisy_wires(self, config) -> list[int]:
        """The wires the channel acts on for ``config`` (wire 0 the most significant bit)."""
        return {"all": list(range(config.n_wires)), "radial": config.radial_wires,
                "angular": config.angular_wires}[self.wires]


NOISELESS = NoiseModel()


def kraus(channel: str, rate: float) -> torch.Tensor:
    """Kraus operators (K, 2, 2) complex128 of a single-qubit channel (PennyLane's)."""
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}")
    p = float(rate)
    eye = np.eye(2)
    x, y, z = np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.diag([1, -1])
    if channel == "depolarizing":
        ops = [np.sqrt(1 - p) * eye] + [np.sqrt(p / 3) * m for m in (x, y, z)]
    elif channel == "bit_flip":
        ops = [np.sqrt(1 - p) * eye, np.sqrt(p) * x]
    else:
        ops = [np.array([[1, 0], [0, np.sqrt(1 - p)]]), np.array([[0, np.sqrt(p)], [0, 0]])]
    return torch.as_tensor(np.stack(ops), dtype=DTYPE)


def superoperator(ops: torch.Tensor) -> torch.Tensor:
    """The channel of Kraus operators ``ops`` (K, 2, 2) as a (2, 2, 2, 2) tensor S with
    ρ'[a, d] = Σ_{b,c} S[a, d, b, c] ρ[b, c] (one contraction instead of K products)."""
    return torch.einsum("kab,kdc->adbc", ops, ops.conj())


def apply_channel(rho: torch.Tensor, ops: torch.Tensor, wire: int, n_wires: int) -> torch.Tensor:
    """ρ ↦ Σ_K K ρ K† with K acting on ``wire`` of ``n_wires`` (wire 0 the most significant
    bit); ``rho`` (B, D, D), ``ops`` (K, 2, 2) Kraus operators or a (2, 2, 2, 2)
    :func:`superoperator`. Returns a new (B, D, D) tensor."""
    sup = ops if ops.ndim == 4 else superoperator(ops)
    b, d = rho.shape[0], rho.shape[-1]
    left, right = 2 ** wire, 2 ** (n_wires - wire - 1)
    view = rho.reshape(b, left, 2, right, left, 2, right)
    return torch.einsum("adbc,xpbqrcs->xpaqrds", sup, view).reshape(b, d, d)


def rotation_commutator(channel: str, rate: float, placement: str, n_ang: int,
                        seed: int = 0) -> float:
    """How far a channel on every angular wire is from commuting with the rotations:
    max over m and a random density matrix ρ of the angular register of
    ‖E(R ρ R†) − R E(ρ) R†‖_max, where R is the rotation by 2πm/N as it acts where the
    channel sits: the cyclic shift S^m on the input (``"input"``), the diagonal phases
    e^{-2πikm/N} on |bitrev(k)⟩ after the transform (``"layers"``)."""
    n = 2 ** n_ang
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, dtype=DTYPE, generator=gen)
    rho = (a @ a.conj().T)[None]
    rho = rho / torch.diagonal(rho, dim1=-2, dim2=-1).sum().real
    sup = superoperator(kraus(channel, rate))

    def noisy(r):
        for wire in range(n_ang):
            r = apply_channel(r, sup, wire, n_ang)
        return r

    worst = 0.0
    for m in range(1, n):
        if placement == "input":
            rot = torch.roll(torch.eye(n, dtype=DTYPE), m, dims=0)  # |θ⟩ ↦ |θ + m⟩
        elif placement == "layers":
            k = simulator.bit_reversal(n_ang).argsort().double()    # mode held by basis state
            rot = torch.diag(torch.exp(-2j * np.pi * k * m / n).to(DTYPE))
        else:
            raise ValueError(f"placement must be 'layers' or 'input' (the rotation has no single "
                             f"form inside the transform), got {placement!r}")
        diff = noisy(rot @ rho @ rot.conj().T) - rot @ noisy(rho) @ rot.conj().T
        worst = max(worst, float(diff.abs().max()))
    return worst


def layer_unitaries(weights, config) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The circuit as T (the transform; identity for the baseline) and one unitary per layer,
    each (D, D) complex128, with ``U = U_L ⋯ U_1 T`` the simulator's unitary.

    Layer l's unitary is the simulator's one-layer circuit on ``weights[l]`` with T undone.
    """
    one = replace(config, n_layers=1)
    transform = _transform(config)
    layers = []
    for layer in range(config.n_layers):
        u = simulator.circuit_unitary(weights[layer:layer + 1], one)
        layers.append(u @ transform.conj().T)
    return transform, layers


@lru_cache(maxsize=None)
def transform_gates(config) -> tuple[tuple[torch.Tensor, tuple[int, ...]], ...]:
    """The transform's gates in order, each as its (N, N) complex128 action on the angular
    register (every gate acts on angular wires only) and the wires it acts on; empty for the
    baseline. ``1_rad ⊗ G_last ⋯ G_first`` is the transform (tested)."""
    if not config.equivariant:
        return ()
    ops = qml.tape.make_qscript(qmodel.fourier_transform)(config).operations
    wire_order = list(range(config.n_rad, config.n_wires))
    return tuple((torch.as_tensor(qml.matrix(op, wire_order=wire_order), dtype=DTYPE)
                  .contiguous(), tuple(int(w) for w in op.wires)) for op in ops)


@lru_cache(maxsize=None)
def _transform(config) -> torch.Tensor:
    eye = torch.eye(2 ** config.n_wires, dtype=torch.float64)
    return simulator.transform(eye, config).T.contiguous()


def readout_error_matrix(n_rad: int, q: float) -> torch.Tensor:
    """(2**n_rad, 2**n_rad) float64 stochastic matrix: P(read r | true r') with each radial bit
    flipped independently with probability q."""
    flip = torch.tensor([[1 - q, q], [q, 1 - q]], dtype=torch.float64)
    out = torch.ones(1, 1, dtype=torch.float64)
    for _ in range(n_rad):
        out = torch.kron(out, flip)
    return out


def density_matrices(states) -> torch.Tensor:
    """ρ = |x⟩⟨x| for amplitude vectors (B, D): (B, D, D) complex128."""
    x = torch.as_tensor(states).to(DTYPE)
    return x[:, :, None] * x[:, None, :].conj()


def angular_transition(channel: str, rate: float) -> torch.Tensor:
    """(2, 2) float64 stochastic matrix T[a, b] = Σ_K |K[a, b]|²: how a channel with monomial
    Kraus operators (one non-zero per row: all of :data:`CHANNELS`) moves weight between the
    diagonal blocks of one angular wire's basis states."""
    return (kraus(channel, rate).abs() ** 2).sum(0).real.to(torch.float64)


def register_probabilities(states, weights, config, noise: NoiseModel = NOISELESS,
                           method: str = "auto") -> torch.Tensor:
    """P(radial basis state) after the noisy circuit and readout error: (B, 2**n_rad) float64.

    ``states`` (B, D) amplitude vectors; ``weights`` of ``config.weight_shape``; no gradients.
    ``method``: ``"full"`` evolves the whole (B, D, D) density matrix; ``"blocks"`` (the
    equivariant variants only; ``"auto"`` picks it for them) only its N diagonal blocks in
    the angular basis after the transform, (B, N, R, R): every layer is block-diagonal there
    and every channel here has monomial Kraus operators, so the diagonal blocks evolve on
    their own (the off-diagonal ones never reach the readout) at N²× less cost per layer.
    """
    _check(config)
    if method not in ("auto", "full", "blocks"):
        raise ValueError(f"method must be 'auto', 'full' or 'blocks', got {method!r}")
    if method == "blocks" and not config.equivariant:
        raise ValueError("the block method needs an equivariant variant (west or sector): the "
                         "baseline's layers are not block-diagonal in the angular basis")
    blocks = method == "blocks" or (method == "auto" and config.equivariant)
    x = torch.as_tensor(states)
    if x.ndim != 2 or x.shape[1] != 2 ** config.n_wires:
        raise ValueError(f"states must have shape (batch, {2 ** config.n_wires}), got "
                         f"{tuple(x.shape)}")
    with torch.no_grad():
        w = torch.as_tensor(weights, dtype=torch.float64).detach()
        transform, layers = layer_unitaries(w, config)
        sup = superoperator(kraus(noise.channel, noise.rate))
        wires = noise.noisy_wires(config) if noise.rate > 0 else []
        n, r, a = config.n_wires, config.n_rings, config.n_angles
        confusion = readout_error_matrix(config.n_rad, noise.readout_error)
        if blocks:
            # V_l[a] = the (R, R) block of layer l on angular basis state a
            per_block = [torch.diagonal(u.reshape(r, a, r, a), dim1=1, dim2=3).permute(2, 0, 1)
                         .contiguous() for u in layers]
            move = angular_transition(noise.channel, noise.rate)
        # full density matrices are built only for the baseline and for noise on the input or
        # inside the transform
        inside = noise.placement == "transform" and bool(wires) and config.equivariant
        full_rho = not blocks or (noise.placement == "input" and wires) or inside
        step = BLOCK if full_rho else BLOCK * a
        out = []
        for lo in range(0, len(x), step):
            chunk = x[lo:lo + step]
            if inside:
                rho = density_matrices(chunk)
                for gate, gate_wires in transform_gates(config):
                    rho = torch.einsum("ab,xrbsc,dc->xrasd", gate, rho.reshape(-1, r, a, r, a),
                                       gate.conj()).reshape(-1, r * a, r * a)
                    for wire in gate_wires:
                        if wire in wires:
                            rho = apply_channel(rho, sup, wire, n)
                if blocks:
                    rho = torch.diagonal(rho.reshape(-1, r, a, r, a), dim1=2, dim2=4) \
                        .permute(0, 3, 1, 2)
            elif noise.placement == "input" and wires:
                rho = density_matrices(chunk)
                for wire in wires:
                    rho = apply_channel(rho, sup, wire, n)
                if blocks:   # only the diagonal blocks of T ρ T†, T = 1_rad ⊗ F
                    f = transform.reshape(r, a, r, a)[0, :, 0, :]
                    rho = torch.einsum("ab,xrbsc,ac->xars", f, rho.reshape(-1, r, a, r, a),
                                       f.conj())
                else:
                    rho = transform @ rho @ transform.conj().T
            elif not blocks:
                rho = density_matrices(chunk)
                rho = transform @ rho @ transform.conj().T
            else:
                rho = None
            if blocks:
                if rho is None:
                    psi = (chunk.to(DTYPE) @ transform.T).reshape(-1, r, a).transpose(1, 2)
                    rho = psi[..., :, None] * psi[..., None, :].conj()        # (b, a, R, R)
                probs = _evolve_blocks(rho, per_block, sup, move, wires, noise, config)
            else:
                for u in layers:
                    rho = u @ rho @ u.conj().T
                    if noise.placement == "layers":
                        for wire in wires:
                            rho = apply_channel(rho, sup, wire, n)
                probs = torch.diagonal(rho, dim1=-2, dim2=-1).real.reshape(-1, r, a).sum(-1)
            out.append(probs @ confusion.T)
        if not out:
            return torch.zeros(0, r, dtype=torch.float64)
        return torch.cat(out)


def _evolve_blocks(rho, per_block, sup, move, wires, noise, config) -> torch.Tensor:
    """The diagonal blocks (b, N, R, R) through the layers and their noise; P(radial) (b, R)."""
    n_rad, n_ang = config.n_rad, config.n_ang
    b, a, r = rho.shape[0], config.n_angles, config.n_rings
    for v in per_block:
        rho = v @ rho @ v.conj().transpose(-1, -2)
        if noise.placement != "layers":
            continue
        for wire in wires:
            if wire < n_rad:      # a radial wire: the channel inside every block
                rho = apply_channel(rho.reshape(b * a, r, r), sup, wire, n_rad).reshape(
                    b, a, r, r)
            else:                 # an angular wire: weight moves between blocks
                j = wire - n_rad
                view = rho.reshape(b, 2 ** j, 2, 2 ** (n_ang - j - 1), r, r)
                rho = torch.einsum("st,xptqik->xpsqik", move.to(rho.dtype), view).reshape(
                    b, a, r, r)
    return torch.diagonal(rho, dim1=-2, dim2=-1).real.sum(1)


def noisy_readout(states, weights, config, noise: NoiseModel = NOISELESS,
                  method: str = "auto") -> torch.Tensor:
    """The model's readout (B, n_classes) under ``noise`` (logits are ``config.scale`` × it);
    ``method`` as in :func:`register_probabilities`."""
    probs = register_probabilities(states, weights, config, noise, method)
    return probs @ simulator.readout_matrix(config).T


def reference_readout(state, weights, config, noise: NoiseModel = NOISELESS) -> torch.Tensor:
    """The same readout for one state (D,) on PennyLane's ``default.mixed`` (the reference)."""
    _check(config)
    w = torch.as_tensor(weights, dtype=torch.float64).detach().numpy()
    dev = qml.device("default.mixed", wires=config.n_wires)
    one = replace(config, n_layers=1)
    wires = noise.noisy_wires(config) if noise.rate > 0 else []
    channel = {"depolarizing": qml.DepolarizingChannel, "bit_flip": qml.BitFlip,
               "amplitude_damping": qml.AmplitudeDamping}[noise.channel]

    @qml.qnode(dev)
    def circuit(x):
        qml.StatePrep(x, wires=range(config.n_wires))
        if noise.placement == "input":
            for wire in wires:
                channel(noise.rate, wires=wire)
        if config.equivariant and noise.placement == "transform":
            for op in qml.tape.make_qscript(qmodel.fourier_transform)(config).operations:
                qml.apply(op)
                for wire in op.wires:
                    if wire in wires:
                        channel(noise.rate, wires=wire)
        elif config.equivariant:
            qmodel.fourier_transform(config)
        for layer in range(config.n_layers):
            qmodel.layers(w[layer:layer + 1], one)
            if noise.placement == "layers":
                for wire in wires:
                    channel(noise.rate, wires=wire)
        if noise.readout_error > 0:
            for wire in config.radial_wires:
                qml.BitFlip(noise.readout_error, wires=wire)
        return qml.probs(wires=config.radial_wires)

    probs = torch.as_tensor(np.asarray(circuit(np.asarray(state, dtype=np.complex128))),
                            dtype=torch.float64)
    return simulator.readout_matrix(config) @ probs


def _check(config) -> None:
    if config.n_wires > MAX_WIRES:
        raise ValueError(f"density-matrix simulation is limited to {MAX_WIRES} qubits here, got "
                         f"{config.n_wires} (n_rad={config.n_rad}, n_ang={config.n_ang})")
