"""Rotations at any angle: bilinear rotation of images, and the ``<name>+rot`` datasets.

Convention (the same as :mod:`equivar.core.rings`): rows point down, columns right, the
centre of an H×W image is ``((H-1)/2, (W-1)/2)``, and a positive angle turns the content
**counter-clockwise as displayed**. The rotated image is the bilinear interpolant of the
original evaluated at the inversely rotated pixel centres; points outside the image read zero
(each of the four corners separately, as ring sampling does). So ``rotate_images(x, π/2)``
equals ``np.rot90(x)`` on square images, to rounding.

``<name>+rot`` (``fashion-mnist+rot``, ``mnist+rot``, ``mnist-5k+rot``, ``digits+rot``):
every image of every split of ``<name>`` turned by its own angle drawn uniformly from
[0, 2π) with a seed fixed per dataset and split (:func:`split_angles`); the splits are those
of ``<name>`` (same images, same labels, same order). These are *not* Larochelle et al.'s
MNIST-rot (which is ``mnist-rot``). Used by chapter 5.
"""
from __future__ import annotations

import zlib

import numpy as np
import torch

SUFFIX = "+rot"
BASES = ("fashion-mnist", "mnist", "mnist-5k", "digits")
ROTATED = tuple(f"{name}{SUFFIX}" for name in BASES)
_ANGLE_SEED = 20260417  # fixed: the angles of a split are the same on every machine
_CHUNK = 4096           # images per vectorised block (bounded memory)


def base_name(name: str) -> str:
    """``"digits+rot"`` → ``"digits"``; ValueError for a name without the suffix."""
    if not name.endswith(SUFFIX) or name[:-len(SUFFIX)] not in BASES:
        raise ValueError(f"{name!r} is not a rotated dataset; rotated datasets: "
                         f"{', '.join(ROTATED)}")
    return name[:-len(SUFFIX)]


def split_angles(name: str, split: str, n: int) -> np.ndarray:
    """The rotation angle (radians, in [0, 2π)) of each of the ``n`` images of a split of the
    rotated dataset ``name``: uniform, seeded by the dataset and split names (reproducible)."""
    key = [_ANGLE_SEED, zlib.crc32(name.encode()), zlib.crc32(split.encode())]
    return np.random.default_rng(key).uniform(0.0, 2 * np.pi, size=int(n))


def bilinear_at(images: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of ``images`` (n, H, W) at the points ``rows``, ``cols`` (pixel
    units) of shape (n, ...): point set i is read from image i; zeros outside the image.
    Returns float64 of the points' shape."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"images must have shape (n, H, W), got {x.shape}")
    rows, cols = np.asarray(rows, dtype=np.float64), np.asarray(cols, dtype=np.float64)
    if rows.shape != cols.shape or rows.ndim < 1 or rows.shape[0] != len(x):
        raise ValueError(f"rows and cols must share a shape (n, ...) with n = {len(x)} images, "
                         f"got {rows.shape} and {cols.shape}")
    height, width = x.shape[1:]
    flat = x.reshape(-1)
    offset = (np.arange(len(x)) * height * width).reshape((-1,) + (1,) * (rows.ndim - 1))
    r0, c0 = np.floor(rows), np.floor(cols)
    fr, fc = rows - r0, cols - c0
    r0, c0 = r0.astype(np.int64), c0.astype(np.int64)
    out = np.zeros(rows.shape)
    for dr, dc, weight in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc),
                           (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        rr, cc = r0 + dr, c0 + dc
        inside = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
        where = offset + np.clip(rr, 0, height - 1) * width + np.clip(cc, 0, width - 1)
        out += np.where(inside, weight, 0.0) * flat.take(where)
    return out


def rotate_images(images, angles) -> np.ndarray:
    """Images (n, H, W) turned counter-clockwise (as displayed) about their centre by
    ``angles`` (radians; a scalar or one per image), bilinear, zero outside. float64.

    Computed with ``torch.nn.functional.grid_sample`` (``align_corners=True``: normalised
    coordinates ±1 are the outer pixel centres, so it is :func:`bilinear_at` at the turned
    pixel centres, about 10× faster than numpy gathers)."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"images must have shape (n, H, W), got {x.shape}")
    theta = np.broadcast_to(np.asarray(angles, dtype=np.float64), (len(x),))
    if not np.isfinite(theta).all():
        raise ValueError("rotation angles must be finite")
    height, width = x.shape[1:]
    cy, cx = (height - 1) / 2, (width - 1) / 2
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    dy, dx = cy - rows, cols - cx                           # dy points up on screen
    out = np.empty_like(x)
    for lo in range(0, len(x), _CHUNK):
        t = theta[lo:lo + _CHUNK, None, None]
        cos, sin = np.cos(t), np.sin(t)
        # the source of an output pixel is the pixel turned back by -theta
        src_rows = cy - (-sin * dx + cos * dy)
        src_cols = cx + (cos * dx + sin * dy)
        grid = np.stack([src_cols / max(width - 1, 1) * 2 - 1,
                         src_rows / max(height - 1, 1) * 2 - 1], axis=-1)
        block = torch.nn.functional.grid_sample(
            torch.from_numpy(x[lo:lo + _CHUNK, None]), torch.from_numpy(grid), mode="bilinear",
            padding_mode="zeros", align_corners=True)
        out[lo:lo + _CHUNK] = block[:, 0].numpy()
    return out


def rotated_split(name: str, split: str, images: np.ndarray) -> np.ndarray:
    """The images of ``split`` of the rotated dataset ``name``, from the upright ``images`` of
    its base dataset's split: each turned by :func:`split_angles`, clipped to [0, 1], float32."""
    base_name(name)
    angles = split_angles(name, split, len(images))
    return np.clip(rotate_images(images, angles), 0.0, 1.0).astype(np.float32)
