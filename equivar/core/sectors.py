"""The twirl over C_N and the symmetry sectors of ring-sampled states.

Conventions (chapter 1 derives them). A state ψ on ``n_rad + n_ang`` qubits is viewed as a
grid x of shape (R, N) = (n_rings, n_angles), ``x[r, θ] = ψ[r * N + θ]``. The rotation is
``R(m) = 1_R ⊗ S^m`` (S the cyclic shift of θ). The per-ring angular DFT is

    x̂[r, k] = N^{-1/2} Σ_θ x[r, θ] e^{-2πikθ/N}        (``angular_dft``)

and the Fourier vector of mode k is ``|f_k⟩ = N^{-1/2} Σ_θ e^{+2πikθ/N} |θ⟩``, so that
``⟨r, f_k|ψ⟩ = x̂[r, k]``. Sector k is the span of ``{|r⟩|f_k⟩}``; its block of ρ = |ψ⟩⟨ψ| is
``ρ_k[r, r'] = x̂[r, k] conj(x̂[r', k])``. The twirl keeps exactly these blocks:
``T(ρ) = Σ_k Π_k ρ Π_k``. Sector weights ``w_k = Tr ρ_k`` sum to 1. For real images
``ρ_{N-k} = conj(ρ_k)``, so k = 0..N/2 are the independent sectors. Functions accept numpy or
torch where noted. Used by chapters 1-4.
"""
from __future__ import annotations

import numpy as np
import torch

from equivar.core.rings import ring_means  # noqa: F401  (μ_r, used with the sectors)


def _double(x):
    """x in double precision (float64 or complex128): the identities hold to 1e-10 only there."""
    if torch.is_tensor(x):
        return x.to(torch.complex128 if torch.is_complex(x) else torch.float64)
    x = np.asarray(x)
    return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64, copy=False)


def _fft(x, inverse=False):
    x = _double(x)
    if torch.is_tensor(x):
        fn = torch.fft.ifft if inverse else torch.fft.fft
        return fn(x, dim=-1, norm="ortho")
    fn = np.fft.ifft if inverse else np.fft.fft
    return fn(x, axis=-1, norm="ortho")


def normalise(grids):
    """Grids scaled to unit L2 norm over (ring, angle), shape kept (..., R, N), in double
    precision."""
    grids = _double(grids)
    if torch.is_tensor(grids):
        norm = grids.abs().pow(2).sum(dim=(-2, -1), keepdim=True).sqrt()
    else:
        norm = np.sqrt((np.abs(grids) ** 2).sum(axis=(-2, -1), keepdims=True))
    if (norm == 0).any():
        raise ValueError("a grid is all zero and cannot be normalised")
    return grids / norm


def angular_dft(grids):
    """Per-ring angular DFT x̂[..., r, k] (unitary, e^{-2πikθ/N}); numpy or torch."""
    return _fft(grids)


def inverse_angular_dft(spectra):
    """Inverse of :func:`angular_dft`."""
    return _fft(spectra, inverse=True)


def sector_blocks(grids):
    """Sector blocks ρ_k of the normalised state, shape (..., N, R, R), complex."""
    xh = angular_dft(normalise(grids))
    if torch.is_tensor(xh):
        xk = xh.transpose(-1, -2)  # (..., N, R)
        return xk[..., :, None] * xk.conj()[..., None, :]
    xk = np.swapaxes(xh, -1, -2)
    return xk[..., :, None] * np.conj(xk)[..., None, :]


def sector_weights(grids):
    """Sector weights w_k = Tr ρ_k of the normalised state, shape (..., N); they sum to 1."""
    xh = angular_dft(normalise(grids))
    power = xh.real ** 2 + xh.imag ** 2
    return power.sum(-2)


def independent_sectors(n_angles: int) -> list[int]:
    """The independent sectors of real images: k = 0..N/2."""
    return list(range(n_angles // 2 + 1))


def fold_weights(weights):
    """Combine w_k and w_{N-k} into the independent sectors k = 0..N/2, shape (..., N/2 + 1)."""
    w = np.asarray(weights)
    n = w.shape[-1]
    out = [w[..., k] + (w[..., n - k] if 0 < k < n - k else 0) for k in independent_sectors(n)]
    return np.stack(out, axis=-1)


def sector_partners(k: int, n_angles: int) -> list[int]:
    """The modes tied to sector k for real images: {k, N-k}."""
    if not 0 <= k < n_angles:
        raise ValueError(f"sector k must be in 0..{n_angles - 1}, got {k}")
    return sorted({k, (n_angles - k) % n_angles})


def scale_modes(grids, factors):
    """Grids with angular mode k of every ring multiplied by ``factors[k]`` (not
    renormalised); real when the input is real and the factors respect k ↔ N-k."""
    xh = angular_dft(grids)
    factors = np.asarray(factors, dtype=np.float64)
    if torch.is_tensor(xh):
        out = inverse_angular_dft(xh * torch.as_tensor(factors))
        return out.real if not torch.is_complex(grids) else out
    out = inverse_angular_dft(xh * factors)
    return out.real if not np.iscomplexobj(grids) else out


def keep_sectors(grids, keep):
    """Grids with every angular mode outside ``keep`` set to zero (not renormalised).

    ``keep``: iterable of k. For real grids pass both k and N-k (see :func:`sector_partners`)
    to stay real; the result is returned real when the input is real.
    """
    n = grids.shape[-1]
    mask = np.zeros(n)
    for k in keep:
        if not 0 <= int(k) < n:
            raise ValueError(f"sector k must be in 0..{n - 1}, got {k}")
        mask[int(k)] = 1.0
    return scale_modes(grids, mask)


# ---------------------------------------------------------------- operator side (numpy, D×D)

def rotation_matrix(m: int, n_rad: int, n_ang: int) -> np.ndarray:
    """R(m) = 1_R ⊗ S^m as a (D, D) permutation matrix, S|θ⟩ = |θ+1 mod N⟩."""
    n = 2 ** n_ang
    shift = np.roll(np.eye(n), m, axis=0)
    return np.kron(np.eye(2 ** n_rad), shift)


def twirl(rho: np.ndarray, n_rad: int, n_ang: int) -> np.ndarray:
    """T(ρ) = (1/N) Σ_m R(m) ρ R(m)† by the explicit group sum; ρ is (D, D) or (B, D, D)."""
    n = 2 ** n_ang
    rho = np.asarray(rho)
    out = np.zeros_like(rho, dtype=complex)
    for m in range(n):
        r = rotation_matrix(m, n_rad, n_ang)
        out = out + r @ rho @ r.T
    return out / n


def block_diagonal_part(rho: np.ndarray, n_rad: int, n_ang: int) -> np.ndarray:
    """Σ_k Π_k ρ Π_k for ρ of shape (D, D) or (B, D, D): the sector blocks of ρ.

    Equal to :func:`twirl` (chapter 1, eq. eq-blocks); computed here through the projectors.
    """
    out = 0
    for proj in sector_projectors(n_rad, n_ang):
        out = out + proj @ np.asarray(rho) @ proj
    return out


def fourier_vectors(n_ang: int) -> np.ndarray:
    """Columns |f_k⟩ = N^{-1/2} Σ_θ e^{2πikθ/N}|θ⟩, shape (N, N) (column k)."""
    n = 2 ** n_ang
    theta, k = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return np.exp(2j * np.pi * k * theta / n) / np.sqrt(n)


def sector_projectors(n_rad: int, n_ang: int) -> np.ndarray:
    """Π_k = 1_R ⊗ |f_k⟩⟨f_k|, shape (N, D, D)."""
    f = fourier_vectors(n_ang)
    eye = np.eye(2 ** n_rad)
    return np.stack([np.kron(eye, np.outer(f[:, k], f[:, k].conj())) for k in range(f.shape[1])])


def operator_blocks(M, n_rad: int, n_ang: int):
    """Sector blocks M_k[r, r'] = ⟨r, f_k|M|r', f_k⟩ of (…, D, D) operators → (…, N, R, R)."""
    f = fourier_vectors(n_ang)
    R, n = 2 ** n_rad, 2 ** n_ang
    if torch.is_tensor(M):
        f = torch.as_tensor(f, dtype=M.dtype if torch.is_complex(M) else torch.complex128)
        m4 = M.reshape(M.shape[:-2] + (R, n, R, n)).to(f.dtype)
        return torch.einsum("ak,...rasb,bk->...krs", f.conj(), m4, f)
    m4 = np.asarray(M).reshape(np.shape(M)[:-2] + (R, n, R, n))
    return np.einsum("ak,...rasb,bk->...krs", f.conj(), m4, f)


def sector_contributions(grids, M_blocks):
    """Tr[ρ_k M_k] per sector, for grids (B, R, N) and blocks (..., N, R, R) → (B, ..., N).

    For an invariant M, ``sector_contributions(x, operator_blocks(M)).sum(-1)`` is
    ``<x|M|x>`` of the normalised state.
    """
    xh = angular_dft(normalise(grids))  # (B, R, N)
    if torch.is_tensor(xh):
        M_blocks = torch.as_tensor(M_blocks).to(xh.dtype)
        val = torch.einsum("brk,...krs,bsk->b...k", xh.conj(), M_blocks, xh)
        return val.real
    val = np.einsum("brk,...krs,bsk->b...k", np.conj(xh), M_blocks, xh)
    return val.real


def commutant_dimension(n_rad: int, n_ang: int) -> dict[str, int]:
    """Complex dimensions of operator space: all, invariant (block-diagonal), cross-sector."""
    R, n = 2 ** n_rad, 2 ** n_ang
    total, accessible = (R * n) ** 2, n * R ** 2
    return {"all operators": total, "invariant (accessible)": accessible,
            "cross-sector (uninformative)": total - accessible}


def block_distances(blocks) -> np.ndarray:
    """Largest entry-wise difference between sector blocks, (N, N): max |M_k - M_k'|.

    ``blocks``: (..., N, R, R) from :func:`operator_blocks` (leading axes, e.g. classes, are
    maximised over).
    """
    b = np.asarray(blocks.detach() if torch.is_tensor(blocks) else blocks)
    b = b.reshape((-1,) + b.shape[-3:])
    diff = np.abs(b[:, :, None] - b[:, None, :])  # (C, N, N, R, R)
    return diff.max(axis=(0, 3, 4))


def exchange_modes(grids, k1: int, k2: int):
    """Grids (complex) with the angular modes k1 and k2 of every ring exchanged.

    The sector weights w_k1 and w_k2 swap; the sum of all blocks Σ_k ρ_k is unchanged, and so
    are the sums over even and over odd k when k1 and k2 have the same parity.
    """
    xh = angular_dft(grids)
    n = xh.shape[-1]
    for k in (k1, k2):
        if not 0 <= k < n:
            raise ValueError(f"mode k must be in 0..{n - 1}, got {k}")
    order = list(range(n))
    order[k1], order[k2] = k2, k1
    return inverse_angular_dft(xh[..., order])


def weight_table(dataset: str, grids, labels, class_names) -> "pd.DataFrame":
    """Mean and std of the folded sector weights per class: columns dataset, class, k,
    weight_mean, weight_std (k = 0..N/2)."""
    import pandas as pd

    folded = fold_weights(sector_weights(np.asarray(grids)))
    labels = np.asarray(labels)
    rows = []
    for c in np.unique(labels):
        part = folded[labels == c]
        for k in range(folded.shape[1]):
            rows.append({"dataset": dataset, "class": class_names[c], "k": k,
                         "weight_mean": part[:, k].mean(), "weight_std": part[:, k].std()})
    return pd.DataFrame(rows)
