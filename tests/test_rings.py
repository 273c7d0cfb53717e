"""equivar.core.rings: the sampling grid, exact C_4 symmetry on pixels, the C_N action."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equivar import data
from equivar.core import rings


@pytest.fixture
def images():
    x, _ = data.load("fashion-mnist", "test", n=6, seed=3)
    return x


class TestRot90:
    @pytest.mark.parametrize("offset", [0.0, 0.1])
    def test_rot90_is_a_quarter_shift_of_the_angle_axis(self, images, offset):
        g = rings.sample(images, 16, 8, ring_offset=offset)
        for turns in range(1, 4):
            turned = np.rot90(images, k=turns, axes=(1, 2))
            g_turned = rings.sample(turned, 16, 8, ring_offset=offset)
            assert np.abs(g_turned - rings.rotate(g, 2 * turns)).max() < 1e-12

    def test_nearest_is_exact_on_odd_sized_images(self, images):
        odd = images[:, :27, :27]  # integer centre: no rounding ties
        g = rings.sample(odd, 16, 8, method="nearest")
        for turns in range(1, 4):
            g_turned = rings.sample(np.rot90(odd, k=turns, axes=(1, 2)), 16, 8, method="nearest")
            assert np.array_equal(g_turned, rings.rotate(g, 2 * turns))

    def test_small_images_and_more_angles(self, rng):
        x = rng.random((3, 8, 8))
        g = rings.sample(x, 4, 16)
        assert np.abs(rings.sample(np.rot90(x, axes=(1, 2)), 4, 16) - rings.rotate(g, 4)).max() < 1e-12

    def test_negative_control_transpose_is_not_a_rotation(self, images):
        g = rings.sample(images, 16, 8)
        moved = rings.sample(np.transpose(images, (0, 2, 1)), 16, 8)
        assert min(np.abs(moved - rings.rotate(g, m)).max() for m in range(8)) > 1e-2


def test_constant_image_gives_constant_grid():
    g = rings.sample(np.full((2, 28, 28), 0.3), 16, 8)
    assert np.allclose(g, 0.3, atol=1e-12)


def test_grid_geometry():
    rows, cols = rings.grid(16, 8, 28, 28)
    radius = np.hypot(rows - 13.5, cols - 13.5)
    assert np.allclose(radius, rings.radii(16, 28, 28)[:, None])
    # angle index a sits at 2*pi*a/8, counter-clockwise on screen (row axis points down)
    angles = np.mod(np.arctan2(13.5 - rows, cols - 13.5), 2 * np.pi)
    assert np.allclose(angles, 2 * np.pi * np.arange(8) / 8)
    assert rings.radii(16, 28, 28).max() < 13.5


def test_nearest_reads_pixels_exactly(images):
    g = rings.sample(images, 16, 8, method="nearest")
    rows, cols = rings.grid(16, 8, 28, 28)
    assert np.array_equal(g, images[:, np.rint(rows).astype(int), np.rint(cols).astype(int)])


def test_bilinear_is_exact_on_linear_ramps():
    rows, cols = np.mgrid[0:28, 0:28].astype(float)
    ramp = 0.01 * rows + 0.02 * cols
    r, c = rings.grid(16, 8, 28, 28)
    assert np.allclose(rings.sample(ramp, 16, 8), 0.01 * r + 0.02 * c, atol=1e-12)


def test_torch_matches_numpy_and_is_differentiable(images):
    x = torch.tensor(images, dtype=torch.float64, requires_grad=True)
    g = rings.sample(x, 16, 8)
    assert np.allclose(g.detach().numpy(), rings.sample(images, 16, 8), atol=1e-12)
    assert torch.autograd.gradcheck(lambda t: rings.sample(t, 4, 8), (x[:1, ::4, ::4].detach()
                                    .clone().requires_grad_(True),))
    (grad,) = torch.autograd.grad(g.sum(), x)
    # bilinear weights of every sample sum to 1 (all points lie inside the image)
    assert abs(float(grad.sum()) - g.numel()) < 1e-9


def test_integer_torch_images_are_sampled_in_float(images):
    ints = torch.as_tensor((images * 255).round().astype(np.int64))
    expected = rings.sample((images * 255).round(), 16, 8)
    assert np.abs(rings.sample(ints, 16, 8).numpy() - expected).max() < 1e-9


def test_rotate_moves_content_counter_clockwise():
    g = np.zeros((2, 8))
    g[:, 0] = 1
    assert rings.rotate(g, 3)[0].tolist() == [0, 0, 0, 1, 0, 0, 0, 0]
    assert torch.equal(rings.rotate(torch.tensor(g), 3), torch.tensor(rings.rotate(g, 3)))


def test_ring_means():
    g = np.arange(16.0).reshape(2, 8)
    assert rings.ring_means(g).tolist() == [3.5, 11.5]


class TestErrors:
    @pytest.mark.parametrize("n_rings,n_angles,match", [(12, 8, "n_rings must be a power of two"),
                                                         (16, 6, "n_angles must be a power of two"),
                                                         (16, 2, "multiple of 4")])
    def test_sizes(self, n_rings, n_angles, match):
        with pytest.raises(ValueError, match=match):
            rings.sample(np.zeros((1, 28, 28)), n_rings, n_angles)

    def test_shape(self):
        with pytest.raises(ValueError, match=r"shape \(n, H, W\) or \(H, W\), got \(28,\)"):
            rings.sample(np.zeros(28), 16, 8)

    def test_method(self):
        with pytest.raises(ValueError, match="method must be one of"):
            rings.sample(np.zeros((28, 28)), 16, 8, method="cubic")
