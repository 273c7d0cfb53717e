"""equivar.core.transforms: each transformation keeps exactly what it says it keeps."""
from __future__ import annotations

import numpy as np
import pytest

from equivar import data
from equivar.core import sectors, transforms
from equivar.core.rings import sample_grid


@pytest.fixture(scope="module")
def grids():
    x, _ = data.load("fashion-mnist", "test", n=8, seed=4)
    return sample_grid(x)


def power(g):
    xh = sectors.angular_dft(g)
    return np.abs(xh) ** 2


def test_global_rotation_keeps_every_block(grids, rng, atol):
    out = transforms.global_rotation(grids, rng)
    assert np.abs(sectors.sector_blocks(out) - sectors.sector_blocks(grids)).max() < atol
    assert np.abs(out - grids).max() > 0.01  # negative control: the pixels did move


def test_ring_means_only_and_removed_split_the_grid(grids, atol):
    only, removed = transforms.ring_means_only(grids), transforms.ring_means_removed(grids)
    assert np.abs(only + removed - grids).max() < atol
    assert np.abs(sectors.ring_means(removed)).max() < atol
    assert np.abs(power(only)[..., 1:]).max() < atol


def test_rings_turned_independently(grids, rng, atol):
    out = transforms.rotate_rings_independently(grids, rng)
    assert np.abs(sectors.ring_means(out) - sectors.ring_means(grids)).max() < atol
    assert np.abs(power(out) - power(grids)).max() < atol  # per-ring spectra kept
    off = lambda g: sectors.sector_blocks(g)[:, 1:]
    assert np.abs(off(out) - off(grids)).max() > 1e-3  # cross-ring phases changed


def test_angles_shuffled_within_rings(grids, rng, atol):
    out = transforms.shuffle_within_rings(grids, rng)
    assert np.abs(np.sort(out, -1) - np.sort(grids, -1)).max() < atol  # same values per ring
    assert np.abs(power(out) - power(grids)).max() > 1e-3


def test_rings_shuffled(grids, rng, atol):
    out = transforms.shuffle_rings(grids, rng)
    key = lambda g: np.sort(g.reshape(len(g), g.shape[1], -1).sum(-1), -1)
    assert np.abs(key(out) - key(grids)).max() < atol
    assert np.abs(out - grids).max() > 1e-3


@pytest.mark.parametrize("k", [0, 1, 3, 4])
def test_swap_sectors(grids, k, atol):
    a, b = grids[:4], grids[4:]
    out = transforms.swap_sectors(a, b, k)
    assert np.isrealobj(out)
    modes = sectors.sector_partners(k, 8)
    # the swapped modes carry B's normalised content; the others keep A's
    ha, hb = (sectors.angular_dft(sectors.normalise(g)) for g in (a, b))
    assert np.abs(sectors.angular_dft(out)[..., modes] - hb[..., modes]).max() < atol
    others = [m for m in range(8) if m not in modes]
    assert np.abs(sectors.angular_dft(out)[..., others] - ha[..., others]).max() < atol


def test_by_name():
    assert transforms.by_name("rings shuffled").apply is transforms.shuffle_rings
    with pytest.raises(ValueError, match="unknown transformation 'flip'"):
        transforms.by_name("flip")


def test_seeded(grids):
    a = transforms.shuffle_within_rings(grids, np.random.default_rng(3))
    b = transforms.shuffle_within_rings(grids, np.random.default_rng(3))
    assert np.array_equal(a, b)
