"""Sampling images on concentric rings, and the cyclic group acting on the samples.

A grid of ``n_rings`` rings × ``n_angles`` angles (both powers of two) is laid over the
image, centred on the image centre. Ring ``r`` has radius ``(r + 1/2) R / n_rings`` with
``R = (min(H, W) - 1) / 2``, and its points sit at angles ``2π a / n_angles + offset_r``,
counter-clockwise as the image is displayed. The vector index used by the model is
``j = ring * n_angles + angle``.

Rotating the image by ``2π m / n_angles`` moves every sample to the next ``m`` angles of the
same ring, so the group C_N acts on sampled grids by :func:`rotate` (a cyclic shift of the
angle axis). For multiples of 90° this holds exactly on the pixel grid: ``np.rot90(image)``
samples to ``rotate(sample(image), n_angles // 4)``. Used by every chapter.
"""
from __future__ import annotations

import numpy as np
import torch

from equivar.settings import SAMPLING, Sampling

METHODS = ("bilinear", "nearest")


def radii(n_rings: int, height: int, width: int) -> np.ndarray:
    """Ring radii in pixels, shape (n_rings,): ``(r + 1/2) * R / n_rings``."""
    big_r = (min(height, width) - 1) / 2
    return (np.arange(n_rings) + 0.5) * big_r / n_rings


def grid(n_rings: int, n_angles: int, height: int, width: int,
         ring_offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Sample positions ``(rows, cols)`` in pixel units, each of shape (n_rings, n_angles).

    ``ring_offset`` (radians) turns ring ``r`` by ``r * ring_offset`` (West et al. offset each
    ring by an angle proportional to its index). The points of each ring are built from its
    first quarter by exact 90° turns ``(dx, dy) -> (-dy, dx)``, so the grid is symmetric under
    ``np.rot90`` to the last bit. (Nearest-pixel sampling inherits this only without rounding
    ties: on even-sized images, points on the image axes sit exactly between two pixels.)
    """
    _check_sizes(n_rings, n_angles)
    if n_angles % 4:
        raise ValueError(f"n_angles must be a multiple of 4, got {n_angles}")
    quarter = n_angles // 4
    rad = radii(n_rings, height, width)[:, None]
    angle = 2 * np.pi * np.arange(quarter)[None, :] / n_angles \
        + ring_offset * np.arange(n_rings)[:, None]
    dx, dy = rad * np.cos(angle), rad * np.sin(angle)  # dy points up on screen
    xs, ys = [dx], [dy]
    for _ in range(3):
        dx, dy = -dy, dx
        xs.append(dx)
        ys.append(dy)
    dx, dy = np.concatenate(xs, axis=1), np.concatenate(ys, axis=1)
    return (height - 1) / 2 - dy, (width - 1) / 2 + dx


def sample(images, n_rings: int, n_angles: int, method: str = "bilinear",
           ring_offset: float = 0.0):
    """Sample images on the ring grid.

    Args:
        images: (n, H, W) or (H, W), numpy or torch (torch stays differentiable).
        n_rings, n_angles: powers of two; ``n_angles`` a multiple of 4.
        method: ``"bilinear"`` (default) or ``"nearest"`` (West et al.'s choice).
        ring_offset: per-ring angular offset step in radians (see :func:`grid`).

    Returns:
        (n, n_rings, n_angles) (or (n_rings, n_angles)): float64 numpy for numpy input, the
        input's dtype for torch. Points outside the image read zero.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    is_torch = torch.is_tensor(images)
    if is_torch:
        x = images if images.is_floating_point() else images.to(torch.float64)
    else:
        x = np.asarray(images, dtype=np.float64)
    single = x.ndim == 2
    if single:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"images must have shape (n, H, W) or (H, W), got {tuple(x.shape)}")
    height, width = x.shape[-2:]
    if height < 1 or width < 1:
        raise ValueError(f"images must be at least 1×1 pixels, got {height}×{width}")
    rows, cols = grid(n_rings, n_angles, height, width, ring_offset)
    if method == "nearest":
        out = _gather(x, np.rint(rows).astype(int), np.rint(cols).astype(int), is_torch)
    else:
        r0, c0 = np.floor(rows), np.floor(cols)
        fr, fc = rows - r0, cols - c0
        r0, c0 = r0.astype(int), c0.astype(int)
        weights = [((1 - fr) * (1 - fc), 0, 0), ((1 - fr) * fc, 0, 1),
                   (fr * (1 - fc), 1, 0), (fr * fc, 1, 1)]
        out = 0
        for w, dr, dc in weights:
            w = torch.as_tensor(w, dtype=x.dtype) if is_torch else w.astype(x.dtype, copy=False)
            out = out + w * _gather(x, r0 + dr, c0 + dc, is_torch)
    return out[0] if single else out


def sample_grid(images, sampling: Sampling = SAMPLING):
    """Ring grids (n, n_rings, n_angles) of ``images`` with the settings of ``sampling``
    (the book's :data:`equivar.settings.SAMPLING` by default); see :func:`sample`."""
    return sample(images, sampling.n_rings, sampling.n_angles, method=sampling.method,
                  ring_offset=sampling.ring_offset)


def _gather(x, rows: np.ndarray, cols: np.ndarray, is_torch: bool):
    """x[:, rows, cols] with zeros outside the image."""
    height, width = x.shape[-2:]
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    rc, cc = np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1)
    if is_torch:
        vals = x[:, torch.as_tensor(rc), torch.as_tensor(cc)]
        return vals * torch.as_tensor(inside, dtype=x.dtype)
    return x[:, rc, cc] * inside.astype(x.dtype)


def rotate(grids, m: int):
    """Act with the rotation by ``2π m / n_angles``: cyclic shift of the angle axis by ``m``.

    ``grids``: (..., n_rings, n_angles), numpy or torch. ``rotate(g, m)[..., a] = g[..., a - m]``,
    i.e. content at angle a moves to angle a + m (counter-clockwise).
    """
    if torch.is_tensor(grids):
        return torch.roll(grids, shifts=int(m), dims=-1)
    return np.roll(grids, int(m), axis=-1)


def ring_means(grids):
    """Ring-averaged intensities μ_r, shape (..., n_rings): the mean over angles."""
    return grids.mean(-1) if torch.is_tensor(grids) else np.asarray(grids).mean(-1)


def _check_sizes(n_rings: int, n_angles: int) -> None:
    for label, value in (("n_rings", n_rings), ("n_angles", n_angles)):
        if not isinstance(value, (int, np.integer)) or value < 1 or value & (value - 1):
            raise ValueError(f"{label} must be a power of two, got {value!r}")
