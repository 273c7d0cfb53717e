"""Structured, batched state-vector simulation of the classifiers of :mod:`equivar.core.model`.

The one simulation path of the package: ``QuantumClassifier.forward``/``readout`` call
:func:`readout`, and ``unitary()``/``observables()`` are derived from :func:`simulate` applied to
the basis states. PennyLane is only the reference (``QuantumClassifier.qnode()``, the tests).

Conventions (the same as the PennyLane circuit): ``n = n_rad + n_ang`` qubits, wire 0 the most
significant bit, the angular register the last ``n_ang`` wires, so an amplitude vector of length
``D = 2**n`` has index ``j = ring * N + angle`` (``R = 2**n_rad`` rings, ``N = 2**n_ang`` angles).

The circuit is rewritten into operations that are cheap on a (rings × angles) grid:

* **transform** (equivariant variants): the swap-free inverse-QFT ladder maps ``|θ⟩`` to
  ``N^{-1/2} Σ_k e^{-2πikθ/N} |bitrev(k)⟩``: a unitary DFT over the angle axis (the sign and
  normalisation of ``torch.fft.fft(norm="ortho")``), done as one small real matrix product.
  The simulator keeps the angle axis in Fourier order k internally (column k is the angular
  basis state ``bitrev(k)``) and only reorders when it returns a state;
* ``Rot(φ, θ, ω) = RZ(ω) RY(θ) RZ(φ)``: all RZ gates, the CZ chain and the next layer's RZ gates
  between two RY layers are diagonal, so they fuse into **one unit-modulus diagonal** per layer;
  the RY gates of a layer are a real orthogonal Kronecker product, applied as a few real matrix
  products on chunks of ≤ 4 consecutive wires (``view_as_real``: real × complex in one GEMM);
* **sector** variant: the radial gates depend on the Fourier mode k (one parameter set per k):
  per-k matrices and diagonals over the same (k, ring) grid;
* **baseline**: no transform, gates on all n wires (the whole register is "radial", one column);
* the **readout** diagonal is applied to ``|ψ|²``; the last layer's RZ(ω) and CZ chain are
  diagonal and leave it unchanged, so :func:`readout` skips them (:func:`simulate` does not).

Two kernels. :func:`readout` of the equivariant variants usually **pulls the readout back to
rows** of the radial unitaries (:func:`row_kernel` decides): a readout diagonal in the radial
basis reads P(r) for a few rows r (the classes, for ``probs``), and after the transform every
Fourier mode k evolves under its own radial unitary U_k — for West's model one of only two,
U_even and U_odd (the CZ chain sees k only through its parity; the rest is a phase per mode).
The rows ⟨r|U_k are built from the weights (B-independent, ordinary autograd), then applied to
the states in one product; for West's model Parseval turns the transform into sums and
differences of opposite angles (real arithmetic). Per amplitude that costs n_rows operations
instead of L · Σ_chunks 2**size. Everything else (:func:`simulate`, the baseline, ``z``
readouts of large registers) runs the **layers** on the states as below.

Work is done in blocks of samples (about ``BLOCK_AMPLITUDES`` amplitudes each, batch index
innermost, so a block stays in cache), in work buffers reused between calls. Gradients come
from a hand-written reverse pass (``_Simulate``): when all intermediate states of the batch fit
``STORE_BYTES`` they are kept and only the cotangent λ goes backwards; otherwise only the final
state is kept and the circuit is un-computed backwards (every step is unitary), so memory stays
O(B·2**n) for forward and backward; time is O(B·2**n·n·L). Gradients flow to the weights and to
the input states (real or complex), exact to rounding (complex128); ``retain_graph`` works.
"""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

DTYPE = torch.complex128
BLOCK_AMPLITUDES = 1 << 17  # amplitudes per block of samples (2 MiB of complex128)
CHUNK = 4                   # at most this many wires per real RY matrix product
STORE_BYTES = 1 << 28       # keep every intermediate state for backward up to this size
POOL_BYTES = 1 << 31        # idle buffers kept for reuse between calls, at most this size
KERNEL = "auto"             # readout kernel: "auto" (see row_kernel), "rows" or "layers"

_VARIANTS = ("west", "sector", "baseline")
_READOUTS = ("probs", "z")


# ----------------------------------------------------------------------------- structure

@dataclass(frozen=True, eq=False)
class Structure:
    """Everything about a circuit that does not depend on the weights (cached per config).

    The gated **register** has m wires (n_rad for the equivariant variants, all n for the
    baseline); the **columns** are the Fourier modes k (N of them; one for the baseline). A block
    of b samples is a complex tensor with the samples innermost:

    * (2**m, n_cols, b), register-major, when every column gets the same gates (west,
      baseline): a gate on the leading wires is then one matrix product;
    * (n_cols, 2**m, b), column-major, for the sector variant (per-column gates).
    """

    n_rad: int
    n_ang: int
    n_layers: int
    variant: str
    m: int                      # wires in the gated register
    n_cols: int                 # N Fourier modes, or 1 for the baseline
    per_column: bool            # gates differ per column (sector variant): column-major
    chunks: tuple               # (first wire, number of wires) of each RY matrix product
    signs: torch.Tensor         # (2**m, m) float64: 1 - 2·bit of each register wire
    cz: torch.Tensor            # the CZ chain's ±1 diagonal in the internal layout (2-D)
    to_basis: torch.Tensor      # (N,) long: internal column of each angular basis state

    @property
    def dim(self) -> int:
        return 2 ** (self.n_rad + self.n_ang)

    def shape(self, b: int) -> tuple[int, int, int]:
        """Internal shape of a block of ``b`` samples."""
        if self.per_column:
            return (self.n_cols, 2 ** self.m, b)
        return (2 ** self.m, self.n_cols, b)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        n, L = self.n_rad + self.n_ang, self.n_layers
        if self.variant == "west":
            return (L, self.n_rad, 3)
        if self.variant == "sector":
            return (L, 2 ** self.n_ang, self.n_rad, 3)
        return (L, n, 3)


def bit_reversal(bits: int) -> torch.Tensor:
    """(2**bits,) long: entry k is k with its ``bits``-bit binary representation reversed."""
    k = torch.arange(2 ** bits)
    out = torch.zeros_like(k)
    for b in range(bits):
        out |= ((k >> b) & 1) << (bits - 1 - b)
    return out


def structure(config) -> Structure:
    """The :class:`Structure` of a config (anything with n_rad, n_ang, n_layers, variant)."""
    return _structure(int(config.n_rad), int(config.n_ang), int(config.n_layers),
                      str(config.variant), CHUNK)


@lru_cache(maxsize=None)
def _structure(n_rad: int, n_ang: int, n_layers: int, variant: str, chunk: int) -> Structure:
    for name, value in (("n_rad", n_rad), ("n_ang", n_ang), ("n_layers", n_layers)):
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    if variant not in _VARIANTS:
        raise ValueError(f"variant must be one of {_VARIANTS}, got {variant!r}")
    n = n_rad + n_ang
    equivariant = variant != "baseline"
    m = n_rad if equivariant else n
    n_cols = 2 ** n_ang if equivariant else 1
    # balanced chunks of at most `chunk` wires, e.g. 10 -> 4, 3, 3
    count = -(-m // chunk)
    sizes = [m // count + (1 if i < m % count else 0) for i in range(count)]
    starts = np.cumsum([0] + sizes[:-1]).tolist()
    index = torch.arange(2 ** m)
    signs = (1 - 2 * ((index[:, None] >> (m - 1 - torch.arange(m))[None, :]) & 1)).double()
    # CZ chain over all n wires: (-1)^(number of neighbouring 1-1 pairs), in basis order
    basis = torch.arange(2 ** n)
    bits = (basis[:, None] >> (n - 1 - torch.arange(n))[None, :]) & 1
    cz_basis = (1 - 2 * ((bits[:, :-1] & bits[:, 1:]).sum(1) % 2)).double()
    rev = bit_reversal(n_ang)
    if equivariant:
        cz = cz_basis.reshape(2 ** n_rad, 2 ** n_ang)[:, rev]  # column k: basis angle bitrev(k)
    else:
        cz = cz_basis[:, None]
    per_column = variant == "sector"
    cz = (cz.T if per_column else cz).contiguous()
    return Structure(n_rad, n_ang, n_layers, variant, m, n_cols, per_column,
                     tuple(zip(starts, sizes)), signs, cz, rev)


def readout_matrix(config) -> torch.Tensor:
    """Readout on the radial register, (n_classes, 2**n_rad) float64.

    ``"probs"``: row c selects radial basis state c; ``"z"``: row c is ⟨Z_c⟩'s ±1 diagonal on
    radial wire c (wire 0 the most significant bit). ``readout = row · P(radial state)``.
    """
    if config.readout not in _READOUTS:
        raise ValueError(f"readout must be one of {_READOUTS}, got {config.readout!r}")
    radial = torch.arange(2 ** config.n_rad)
    classes = torch.arange(config.n_classes)
    if config.readout == "probs":
        return (radial[None, :] == classes[:, None]).double()
    bits = (radial[None, :] >> (config.n_rad - 1 - classes[:, None])) & 1
    return (1 - 2 * bits).double()


# ----------------------------------------------------------------------------- parameters

def _parameters(weights: torch.Tensor, st: Structure):
    """Weights → the per-layer phases (L+1, *internal 2-D layout) and the RY chunk matrices.

    Layer l's diagonal is ``cz_l · exp(i · phases[l])`` (cz_0 = 1, the CZ chain otherwise);
    the RY matrices are one real (L, A, C, C) tensor per chunk (A = n_cols for the sector
    variant, else 1). Differentiable in the weights (ordinary autograd, small real tensors).
    """
    if tuple(weights.shape) != st.weight_shape:
        raise ValueError(f"weights must have shape {st.weight_shape}, got {tuple(weights.shape)}")
    w = weights.to(torch.float64)
    if not st.per_column:
        w = w[:, None]                      # (L, 1, m, 3)
    phi, theta, omega = w.unbind(-1)        # (L, A, m) each
    zero = torch.zeros_like(phi[:1])
    # RZ(ω) of layer l-1 and RZ(φ) of layer l sit between RY layers: one phase per basis state
    angles = torch.cat([phi, zero]) + torch.cat([zero, omega])          # (L+1, A, m)
    phases = (angles @ st.signs.T) * -0.5                                 # (L+1, A, 2**m)
    if not st.per_column:
        phases = phases.transpose(1, 2)                                   # (L+1, 2**m, 1)
    half = theta * 0.5
    cos, sin = torch.cos(half), torch.sin(half)
    ry = torch.stack([cos, -sin, sin, cos], -1).unflatten(-1, (2, 2))     # (L, A, m, 2, 2)
    mats = []
    for start, size in st.chunks:
        kron = ry[:, :, start]              # first wire = most significant factor
        for wire in range(start + 1, start + size):
            g = ry[:, :, wire]
            c = kron.shape[-1]
            kron = (kron[..., :, None, :, None] * g[..., None, :, None, :]).reshape(
                *kron.shape[:-2], 2 * c, 2 * c)
        mats.append(kron)
    return phases, mats


def _diagonals(phases: torch.Tensor, st: Structure) -> torch.Tensor:
    """The layers' unit-modulus diagonals (L+1, *internal 2-D layout) complex, from the phases."""
    diags = torch.polar(torch.ones_like(phases), phases).expand(-1, *st.cz.shape).clone()
    diags[1:] *= st.cz
    return diags


# ----------------------------------------------------------------------------- kernels

def _block_size(st: Structure, batch: int) -> int:
    return max(1, min(batch, BLOCK_AMPLITUDES // st.dim))


def _take(buffer: torch.Tensor, shape) -> torch.Tensor:
    """A contiguous view of the first elements of a flat work buffer, with ``shape``."""
    return buffer[:int(np.prod(shape))].view(shape)


_WORKSPACE = threading.local()


def _workspace(name: str, rows: int, numel: int) -> torch.Tensor:
    """A (rows, numel) complex128 scratch buffer kept between calls (per thread): fresh large
    allocations cost page faults on every call, as much as a small circuit's arithmetic.
    Only used inside one forward or one backward, never returned."""
    buffers = _WORKSPACE.__dict__.setdefault("buffers", {})
    buf = buffers.get(name)
    if buf is None or buf.shape[0] < rows or buf.shape[1] < numel:
        buf = torch.empty(rows, numel, dtype=DTYPE)
        buffers[name] = buf
    return buf[:rows, :numel]


class _Pool:
    """Large complex128 buffers that outlive one call (the states kept for backward), reused
    between calls: a fresh allocation of that size costs page faults on every call (about
    0.4 ms per MiB here, comparable to the arithmetic). A buffer goes back to the pool when
    the autograd graph that holds it is freed. :func:`release_memory` empties the pool."""

    def __init__(self):
        self.lock = threading.Lock()
        self.idle: list[torch.Tensor] = []

    def take(self, numel: int) -> torch.Tensor:
        with self.lock:
            fits = [i for i, b in enumerate(self.idle) if numel <= b.numel() <= 2 * numel]
            if fits:
                buf = self.idle.pop(min(fits, key=lambda i: self.idle[i].numel()))
                return buf[:numel]
        return torch.empty(numel, dtype=DTYPE)

    def give(self, buf: torch.Tensor) -> None:
        base = buf._base if buf._base is not None else buf
        with self.lock:
            self.idle.append(base)
            while sum(b.numel() for b in self.idle) * 16 > POOL_BYTES:
                self.idle.pop(0)

    def clear(self) -> None:
        with self.lock:
            self.idle.clear()


_POOL = _Pool()


class _Lease:
    """Holds a pool buffer for an autograd graph; returns it to the pool when freed."""

    def __init__(self, numel: int):
        self.buffer = _POOL.take(numel)
        weakref.finalize(self, _POOL.give, self.buffer)


def release_memory() -> None:
    """Free the buffers the simulator keeps for reuse between calls."""
    _POOL.clear()
    _WORKSPACE.__dict__.pop("buffers", None)


@lru_cache(maxsize=None)
def _dft(n_ang: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The unitary DFT F[k, θ] = N^{-1/2} e^{-2πikθ/N} as (complex (N, N), real (N, 2N)); the
    real form has columns (Re F[k, ·], Im F[k, ·]) interleaved, so that a real grid times it is
    the ``view_as_real`` of the transformed grid (one real matrix product)."""
    n = 2 ** n_ang
    k = np.arange(n)
    F = np.exp(-2j * np.pi * np.outer(k, k) / n) / np.sqrt(n)
    real = np.stack([F.real.T, F.imag.T], axis=-1).reshape(n, 2 * n)
    return torch.as_tensor(F, dtype=DTYPE), torch.as_tensor(real, dtype=torch.float64)


def _to_grid_order(st: Structure) -> tuple[int, int, int]:
    """Permutation taking the internal layout to (b, rings, columns)."""
    return (2, 1, 0) if st.per_column else (2, 0, 1)


def _from_grid_order(st: Structure) -> tuple[int, int, int]:
    """Permutation taking (b, rings, columns) to the internal layout."""
    return (2, 1, 0) if st.per_column else (1, 2, 0)


def _prepare(x: torch.Tensor, st: Structure, out: torch.Tensor, tmp: torch.Tensor) -> None:
    """Amplitude vectors (b, D) → ``out`` (internal layout), transform applied.

    ``tmp``: a complex work buffer with as many elements as ``out``.
    """
    b = x.shape[0]
    if st.variant == "baseline":
        out.copy_(x.T.reshape(out.shape))
        return
    F, F_real = _dft(st.n_ang)
    grid = x.reshape(b * 2 ** st.n_rad, 2 ** st.n_ang)
    if x.is_complex():
        torch.mm(grid, F.T, out=tmp.view(grid.shape))
    else:
        torch.mm(grid, F_real, out=torch.view_as_real(tmp).view(grid.shape[0], -1))
    out.copy_(tmp.view(b, 2 ** st.n_rad, 2 ** st.n_ang).permute(_from_grid_order(st)))


def _unprepare(lam: torch.Tensor, st: Structure, out: torch.Tensor, tmp: torch.Tensor) -> None:
    """Adjoint of :func:`_prepare`: an internal cotangent → ``out`` (b, D), the real part for
    real input states. ``tmp``: a complex work buffer like ``lam``."""
    b = lam.shape[-1]
    if st.variant == "baseline":
        grid = lam.reshape(st.dim, b).T
        out.copy_(grid if out.is_complex() else grid.real)
        return
    F, F_real = _dft(st.n_ang)
    tmp = tmp.view(b, 2 ** st.n_rad, 2 ** st.n_ang)
    tmp.copy_(lam.permute(_to_grid_order(st)))
    rows = b * 2 ** st.n_rad
    if out.is_complex():
        torch.mm(tmp.view(rows, -1), F.conj(), out=out.view(rows, -1))
    else:
        torch.mm(torch.view_as_real(tmp).view(rows, -1), F_real.T, out=out.view(rows, -1))


def _to_basis(psi: torch.Tensor, st: Structure) -> torch.Tensor:
    """Internal layout → states (b, D) in basis order (a view or a new tensor)."""
    b = psi.shape[-1]
    grid = psi.permute(_to_grid_order(st))
    if st.variant == "baseline":
        return grid.reshape(b, st.dim)
    return grid[:, :, st.to_basis].reshape(b, st.dim)


def _from_basis(g: torch.Tensor, st: Structure) -> torch.Tensor:
    """Inverse of :func:`_to_basis`: (b, D) → internal layout (a view or a new tensor)."""
    b = g.shape[0]
    grid = g.reshape(b, 2 ** st.n_rad, 2 ** st.n_ang)
    if st.variant == "baseline":
        return g.T.reshape(st.shape(b))
    return grid[:, :, st.to_basis].permute(_from_grid_order(st))


def _matmul(mat: torch.Tensor, psi: torch.Tensor, start: int, size: int, st: Structure,
            out: torch.Tensor) -> torch.Tensor:
    """``out = mat`` applied to register wires ``start .. start+size-1`` of ``psi``.

    ``mat``: real (A, C, C), A = 1 (the same for every column) or n_cols (column-major layout);
    ``psi``, ``out``: contiguous complex (..., *internal layout) (a leading axis of 2 stacks
    ψ and λ in backward).
    """
    a, c = 2 ** start, 2 ** size
    inner = psi.shape[-1] * (1 if st.per_column else st.n_cols)   # elements after the register
    outer = psi.numel() // (2 ** st.m * inner)                    # and before it
    rest = 2 ** (st.m - start - size) * inner * 2
    x = torch.view_as_real(psi).view(outer * a, c, rest)
    y = torch.view_as_real(out).view(outer * a, c, rest)
    if mat.shape[0] == 1:
        if x.shape[0] == 1:
            torch.mm(mat[0], x[0], out=y[0])
        else:
            torch.matmul(mat[0], x, out=y)
    else:
        full = mat[None, :, None].expand(outer // mat.shape[0], mat.shape[0], a, c, c)
        torch.bmm(full.reshape(-1, c, c), x, out=y)
    return out


def _gram(lam: torch.Tensor, x: torch.Tensor, start: int, size: int,
          st: Structure) -> torch.Tensor:
    """Re Σ λ xᴴ over everything but the gate's row and column: real (A, C, C)."""
    a, c = 2 ** start, 2 ** size
    inner = lam.shape[-1] * (1 if st.per_column else st.n_cols)
    outer = lam.numel() // (2 ** st.m * inner)
    rest = 2 ** (st.m - start - size) * inner * 2
    lr = torch.view_as_real(lam).view(outer * a, c, rest)
    xr = torch.view_as_real(x).view(outer * a, c, rest)
    if outer * a == 1:
        return (lr[0] @ xr[0].T)[None]
    gram = torch.bmm(lr, xr.transpose(1, 2))
    return gram.view(outer, a, c, c).sum(1) if st.per_column else gram.sum(0, keepdim=True)


def _layers(psi: torch.Tensor, spare: torch.Tensor, diags: torch.Tensor, mats: list,
            st: Structure) -> torch.Tensor:
    """All layers except the final diagonal, on one block; ``psi`` and ``spare`` are
    overwritten, the result is one of them."""
    for layer in range(st.n_layers):
        psi.mul_(diags[layer, :, :, None])
        for (start, size), mat in zip(st.chunks, mats):
            psi, spare = _matmul(mat[layer], psi, start, size, st, spare), psi
    return psi


def _register_probs(psi: torch.Tensor, st: Structure, tmp: torch.Tensor) -> torch.Tensor:
    """P(radial basis state) per sample: (2**n_rad, b) float64. ``tmp``: a complex work buffer
    at least half the size of ``psi`` (no fresh full-size temporaries)."""
    part = torch.view_as_real(psi)
    square = torch.view_as_real(tmp).view(-1)[:psi.numel()].view(psi.shape)
    torch.mul(part[..., 0], part[..., 0], out=square)
    square.addcmul_(part[..., 1], part[..., 1])
    p = square.sum(0 if st.per_column else 1)
    if st.variant == "baseline":
        p = p.view(2 ** st.n_rad, 2 ** st.n_ang, -1).sum(1)
    return p


def _im_dot(psi: torch.Tensor, lam: torch.Tensor, st: Structure,
            tmp: torch.Tensor) -> torch.Tensor:
    """Im Σ conj(ψ) λ over the samples and, where the phases are the same for every column
    (west, baseline), over the columns too: the shape of one layer's phases.

    Written as ψ_re·λ_im - ψ_im·λ_re into ``tmp`` (a complex work buffer as large as ``psi``):
    no conjugated copy, no fresh full-size temporaries.
    """
    p, q = torch.view_as_real(psi), torch.view_as_real(lam)
    work = torch.view_as_real(tmp).view(-1)[:2 * psi.numel()].view(2, *psi.shape)
    torch.mul(p[..., 0], q[..., 1], out=work[0])
    torch.mul(p[..., 1], q[..., 0], out=work[1])
    dot = work[0].sub_(work[1]).sum(-1)
    return dot if st.per_column else dot.sum(1, keepdim=True)


class _Simulate(torch.autograd.Function):
    """Blocks of samples through the circuit, with a hand-written reverse pass.

    Inputs: states (B, D) real or complex, the phases (L+1, *2-D layout) and the RY chunk
    matrices; output: readout (B, n_classes) or states (B, D). Backward pulls the cotangent λ
    back through the circuit (λ_in = Mᵀ λ_out for an RY product, conj(d) λ for a diagonal) and
    either reads ψ at every step from the states kept in forward (``store``) or un-computes
    it, stacked with λ as (2, *internal layout) so one matrix product moves both. Parameter
    cotangents: Re Σ λ_out x_inᵀ = M · Re Σ λ_in x_inᵀ for an RY matrix M, and Im Σ conj(ψ) λ
    for a phase (the same on both sides of its unit-modulus diagonal).
    """

    @staticmethod
    def forward(ctx, st, mode, obs, keep, states, phases, *mats):
        diags = _diagonals(phases, st)
        batch, dim, steps = states.shape[0], st.dim, st.n_layers * len(mats)
        block = _block_size(st, batch)
        if mode == "readout":
            out = torch.empty(batch, obs.shape[0], dtype=torch.float64)
        else:
            out = torch.empty(batch, dim, dtype=DTYPE)
        # two state buffers reused by every block (fresh large allocations cost page faults)
        work = _workspace("forward", 2, dim * block)
        # for backward: every intermediate state when that fits STORE_BYTES (backward then
        # only pulls λ back), else only the final one (backward un-computes ψ as it goes)
        store = keep and (steps + 1) * batch * dim * 16 <= STORE_BYTES
        rows = steps + 1 if store else 1
        lease = _Lease(rows * batch * dim) if keep else None
        saved = lease.buffer.view(rows, batch * dim) if keep else None
        for lo in range(0, batch, block):
            x = states[lo:lo + block]
            hi = lo + x.shape[0]
            shape = st.shape(hi - lo)
            if store:
                slots = [saved[k, lo * dim:hi * dim].view(shape) for k in range(steps + 1)]
                psi, spare = slots[0], _take(work[0], shape)
                _prepare(x, st, psi, spare)
                for layer in range(st.n_layers):
                    slots[layer * len(mats)].mul_(diags[layer, :, :, None])
                    for j, ((start, size), mat) in enumerate(zip(st.chunks, mats)):
                        k = layer * len(mats) + j
                        _matmul(mat[layer], slots[k], start, size, st, slots[k + 1])
                psi = slots[-1]
            else:
                psi, spare = _take(work[0], shape), _take(work[1], shape)
                _prepare(x, st, psi, spare)
                psi = _layers(psi, spare, diags, mats, st)
                spare = work[1] if psi.data_ptr() == work[0].data_ptr() else work[0]
                if keep:
                    saved[0, lo * dim:hi * dim] = psi.view(-1)
            if mode == "readout":
                out[lo:hi] = (obs @ _register_probs(psi, st, spare)).T
            else:
                final = torch.mul(psi, diags[-1, :, :, None], out=_take(spare, shape))
                out[lo:hi] = _to_basis(final, st)
        ctx.st, ctx.mode, ctx.obs, ctx.diags, ctx.store = st, mode, obs, diags, store
        ctx.lease, ctx.phase_shape = lease, phases.shape
        ctx.save_for_backward(states, *mats)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        st, mode, obs, diags, store = ctx.st, ctx.mode, ctx.obs, ctx.diags, ctx.store
        states, *mats = ctx.saved_tensors
        batch, dim, steps = states.shape[0], st.dim, st.n_layers * len(mats)
        # left intact: backward may run again (retain_graph)
        saved = ctx.lease.buffer.view(steps + 1 if store else 1, batch * dim)
        need_states, need_params = ctx.needs_input_grad[4], any(ctx.needs_input_grad[5:])
        g_states = torch.empty(states.shape, dtype=states.dtype) if need_states else None
        dots = torch.zeros(ctx.phase_shape, dtype=torch.float64)  # Im Σ conj(ψ) λ per phase
        grams = [torch.zeros_like(mat) for mat in mats]  # Σ λ_in x_inᵀ at each RY chunk
        conj = diags.conj().resolve_conj()[..., None]
        block = _block_size(st, batch)
        work = _workspace("backward", 2, 2 * dim * block)
        for lo in range(0, batch, block):
            hi = min(lo + block, batch)
            shape = st.shape(hi - lo)
            if store:
                slots = [saved[k, lo * dim:hi * dim].view(shape) for k in range(steps + 1)]
                final = slots[-1]
                # ψ at every step is stored: only λ goes backwards
                z, spare = _take(work[0], (1,) + shape), _take(work[1], (1,) + shape)
                lam = z[0]
            else:
                z, spare = _take(work[0], (2,) + shape), _take(work[1], (2,) + shape)
                z[0].view(-1).copy_(saved[0, lo * dim:hi * dim])
                final, lam = z[0], z[1]
            if mode == "readout":
                h = (grad_out[lo:hi].to(torch.float64) @ obs).T     # (2**n_rad, b)
                if st.variant == "baseline":
                    h = h.repeat_interleave(2 ** st.n_ang, dim=0)
                torch.mul(final, 2 * (h[None] if st.per_column else h[:, None]), out=lam)
            else:
                lam.copy_(_from_basis(grad_out[lo:hi].to(DTYPE), st))
                lam.mul_(conj[-1])
                if need_params:
                    dots[-1] += _im_dot(final, lam, st, spare)
            for layer in reversed(range(st.n_layers)):
                for j in reversed(range(len(mats))):
                    start, width = st.chunks[j]
                    # real orthogonal: the inverse is the transpose
                    m = mats[j][layer].transpose(-1, -2)
                    z, spare = _matmul(m, z, start, width, st, spare), z
                    if need_params:
                        x = slots[layer * len(mats) + j] if store else z[0]
                        grams[j][layer] += _gram(z[-1], x, start, width, st)
                psi = slots[layer * len(mats)] if store else z[0]
                if need_params:
                    dots[layer] += _im_dot(psi, z[-1], st, spare)
                z.mul_(conj[layer])
            if need_states:
                _unprepare(z[-1], st, g_states[lo:hi], spare[0])
        if not need_params:
            return (None, None, None, None, g_states, None, *(None for _ in mats))
        g_mats = [mat @ gram for mat, gram in zip(mats, grams)]
        # d = cz·e^{iφ}: dL/dφ = Re(conj(λ)·i·ψ) summed = Im Σ conj(ψ) λ
        return (None, None, None, None, g_states, dots, *g_mats)


# ----------------------------------------------------------------------------- readout rows

def row_kernel(st: Structure, obs: torch.Tensor) -> bool:
    """Whether :func:`readout` pulls the readout back to rows of the radial unitaries
    (:func:`_readout_by_rows`) instead of running the layers on the states.

    Per amplitude, the rows kernel costs n_rows complex × real multiply-adds (2·n_rows for the
    sector variant, whose inputs must be Fourier transformed), the layers about
    L · Σ_chunks 2**size. A ``probs`` readout reads n_classes rows (cheaper than the layers at
    every size the book uses), a ``z`` readout every radial row (cheaper only while 2**n_rad is
    small). ``KERNEL`` forces a kernel ("rows", "layers"; the baseline always runs the layers).
    """
    if KERNEL != "auto":
        return KERNEL == "rows" and st.variant != "baseline"
    if st.variant == "baseline":
        return False
    n_rows = int((obs != 0).any(0).sum())
    cost = n_rows * (2 if st.per_column else 1)
    return cost <= st.n_layers * sum(2 ** size for _, size in st.chunks)


def _apply_chunk(mat: torch.Tensor, v: torch.Tensor, start: int, size: int) -> torch.Tensor:
    """``mat`` complex on register wires ``start .. start+size-1`` of the rows ``v``:
    (C, C) on (2**m, A, n) register-major rows, or (A, C, C) on (A, 2**m, n) column-major ones.
    Autograd-friendly (small tensors: the rows, not the states)."""
    a, c = 2 ** start, 2 ** size
    if mat.ndim == 2 and a == 1:
        return (mat @ v.reshape(c, -1)).reshape(v.shape)
    lead = v.shape[:-2] if mat.ndim == 3 else ()
    x = v.reshape(*lead, a, c, -1)
    return torch.matmul(mat[:, None] if mat.ndim == 3 else mat, x).reshape(v.shape)


def _radial_rows(phases: torch.Tensor, mats: list, st: Structure,
                 rows: torch.Tensor) -> torch.Tensor:
    """Rows ``rows`` of the radial unitaries without the final diagonal: complex (A, n, 2**m).

    West: A = 2, U_p for Fourier modes of parity p. The radial gates are the same in every
    column; the CZ chain couples the radial register to mode k only through k's parity (the
    angular MSB of column k is bit 0 of k), and its angular part is one phase per column,
    which the readout (|·|² summed over columns) does not see. Sector: A = N, one U_k per
    mode. Computed as ``Uᵀ e_r`` = D_0 K_0ᵀ D_1 K_1ᵀ … K_{L-1}ᵀ e_r (diagonals are symmetric).
    """
    L, n = st.n_layers, len(rows)
    diag = torch.polar(torch.ones_like(phases[:L]), phases[:L])
    if st.per_column:      # column-major rows (N, R, n); diagonals (L, N, R)
        cz, shape, mats = st.cz, (st.n_cols, 2 ** st.m, n), [m.transpose(-1, -2) for m in mats]
    else:                  # register-major rows (R, 2, n), parities 0, 1; diagonals (L, R, 2)
        cz, shape, mats = st.cz[:, :2], (2 ** st.m, 2, n), [m[:, 0].transpose(-1, -2) for m in mats]
    diag = torch.cat([diag[:1].expand(-1, *cz.shape), diag[1:] * cz])
    mats = [m.to(DTYPE) for m in mats]
    v = torch.zeros(shape, dtype=DTYPE)
    if st.per_column:
        v[:, rows, torch.arange(n)] = 1
    else:
        v[rows, :, torch.arange(n)] = 1
    for layer in reversed(range(L)):
        for (start, size), mat in zip(st.chunks, mats):
            v = _apply_chunk(mat[layer], v, start, size)
        v = v * diag[layer, :, :, None]
    return v.transpose(1, 2) if st.per_column else v.permute(1, 2, 0)


def _readout_by_rows(x: torch.Tensor, phases: torch.Tensor, mats: list, st: Structure,
                     obs: torch.Tensor) -> torch.Tensor:
    """The readout (B, C) float64 from the rows of the radial unitaries that it reads.

    West: the Fourier modes of parity p are the DFT over N/2 angles of x[θ] ± x[θ+N/2]
    (θ < N/2; an odd mode also carries the phase e^{-2πiθ/N}, which |·|² drops), so by
    Parseval P(r) = ½ Σ_p Σ_θ |(U_p (x_low ± x_high))[r, θ]|²: no transform, and one real
    product of the stacked rows with each sample's (rings × 2, N/2) grid, read in place.
    Sector: P(r) = Σ_k |(U_k x̂_k)[r]|² with x̂ the angular DFT. Plain autograd.
    """
    rows = (obs != 0).any(0).nonzero().flatten()
    u = _radial_rows(phases, mats, st, rows)                 # (A, n, R)
    n, b, R, N = len(rows), x.shape[0], 2 ** st.n_rad, 2 ** st.n_ang
    if st.per_column:
        F, F_real = _dft(st.n_ang)
        if x.is_complex():
            modes = x.reshape(b, R, N) @ F.T                 # (b, R, N), column k = mode k
        else:
            modes = torch.view_as_complex((x.reshape(b * R, N) @ F_real).view(b, R, N, 2))
        y = torch.einsum("kcr,brk->bck", u, modes)
        p = (y.real.square() + y.imag.square()).sum(-1)      # (b, n)
    else:
        half = N // 2
        # columns (ring, low/high half of the angles): + for even modes, - for odd ones
        w = torch.stack([torch.cat([u[0], u[1]]), torch.cat([u[0], -u[1]])], -1)
        w = w.reshape(2 * n, 2 * R)                         # rows (parity, class row)
        if not x.is_complex():
            w = torch.cat([w.real, w.imag])                  # rows (re/im, parity, row)
        y = torch.matmul(w, x.reshape(b, 2 * R, half))       # (b, rows, N/2)
        # rows (re/im, parity, row) of a real product, (parity, row) × re/im of a complex one
        groups, width = (2, 2 * half) if y.is_complex() else (4, half)
        if y.is_complex():
            y = torch.view_as_real(y)
        p = y.square().reshape(b, groups, n, width).sum((1, 3)) * 0.5
    return p @ obs[:, rows].T


# ----------------------------------------------------------------------------- public API

def _check(states, st: Structure) -> torch.Tensor:
    x = torch.as_tensor(states)
    if x.ndim != 2 or x.shape[1] != st.dim:
        raise ValueError(f"states must have shape (batch, {st.dim}), got {tuple(x.shape)}")
    if x.is_complex():
        return x.to(DTYPE)
    return x.to(torch.float64)


def _run(states, weights, config, mode, obs=None):
    st = structure(config)
    x = _check(states, st)
    phases, mats = _parameters(weights, st)
    keep = torch.is_grad_enabled() and (x.requires_grad or phases.requires_grad)
    return _Simulate.apply(st, mode, obs, keep, x, phases, *mats)


def readout(states, weights, config) -> torch.Tensor:
    """Readout values (B, n_classes) float64 of amplitude vectors ``states`` (B, 2**n).

    ``states`` real or complex (norm ≤ 1, not checked here); ``weights`` of the config's weight
    shape; ``config`` has n_rad, n_ang, n_layers, variant, readout, n_classes
    (a :class:`equivar.core.model.ModelConfig`). Differentiable in both.
    """
    obs = readout_matrix(config)
    st = structure(config)
    if row_kernel(st, obs):
        x = _check(states, st)
        phases, mats = _parameters(weights, st)
        return _readout_by_rows(x, phases, mats, st, obs)
    return _run(states, weights, config, "readout", obs)


def simulate(states, weights, config) -> torch.Tensor:
    """Output states U·x, (B, 2**n) complex128, basis order (wire 0 the most significant bit).

    The whole circuit after state preparation, including the final RZ(ω) and CZ chain.
    Differentiable in ``states`` and ``weights``.
    """
    return _run(states, weights, config, "state")


def circuit_unitary(weights, config) -> torch.Tensor:
    """The circuit's unitary U (2**n, 2**n) complex128: :func:`simulate` on the basis states."""
    st = structure(config)
    eye = torch.eye(st.dim, dtype=torch.float64)
    return simulate(eye, weights, config).T


def transform(states, config) -> torch.Tensor:
    """The fixed transform alone (identity for the baseline): (B, 2**n) complex128.

    Equivariant variants: ``|r, θ⟩ ↦ N^{-1/2} Σ_k e^{-2πikθ/N} |r, bitrev(k)⟩``.
    """
    st = structure(config)
    x = _check(states, st)
    shape = st.shape(x.shape[0])
    out = torch.empty(shape, dtype=DTYPE)
    _prepare(x, st, out, torch.empty(shape, dtype=DTYPE))
    return _to_basis(out, st).contiguous()
