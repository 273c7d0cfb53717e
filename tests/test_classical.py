"""equivar.learn.classical: the classical baselines see what the quantum models see, are
invariant where they should be, differentiable to the pixels, seeded, and refuse bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equivar import data
from equivar.core import rings
from equivar.learn import classical, probes
from equivar.learn.surrogates import SmallCNN
from equivar.settings import BASELINES, SAMPLING


@pytest.fixture(scope="module")
def fashion():
    x, y = data.load("fashion-mnist", "train", n=12, seed=3)
    return torch.as_tensor(x, dtype=torch.float64), y


@pytest.fixture(scope="module")
def digits():
    x, y = data.load("digits", "train", n=40, seed=1)
    return x, y


def _ring_model(kind: str, dtype=torch.float64, seed: int = 0):
    torch.manual_seed(seed)
    hidden = 0 if kind == "sector-logistic" else 16
    model = classical.RingBaseline(kind, 10, hidden).to(dtype)
    with torch.no_grad():  # a non-trivial standardiser, so that it is part of what is tested
        model.standardiser.mean.normal_()
        model.standardiser.scale.uniform_(0.5, 2.0)
    return model


def test_kinds_agree_with_the_settings():
    assert tuple(classical.KINDS) == BASELINES


# ----------------------------------------------------------------- features

def test_sector_features_are_the_sector_block_probe_features(digits, atol):
    x, _ = digits
    grids = rings.sample_grid(x)
    ours = classical.sector_features(torch.as_tensor(grids)).numpy()
    assert ours.shape == (len(x), classical.n_features("sector-mlp"))
    assert np.abs(ours - probes.features(x, grids, "sector-blocks")).max() < atol


def test_k0_diagonal_is_n_times_ring_mean_squared(digits, atol):
    x, _ = digits
    grids = torch.as_tensor(rings.sample_grid(x))
    g = classical.normalised_grids(grids)
    diag0 = classical.sector_features(grids)[:, :SAMPLING.n_rings]
    assert (diag0 - SAMPLING.n_angles * g.mean(-1) ** 2).abs().max() < atol


def test_a_blank_image_gives_finite_logits():
    model = _ring_model("sector-mlp")
    assert torch.isfinite(model(torch.zeros(2, 28, 28, dtype=torch.float64))).all()


# ----------------------------------------------------------------- invariance

@pytest.mark.parametrize("kind", ["sector-logistic", "sector-mlp"])
def test_sector_models_are_exactly_c8_invariant_on_the_grid(fashion, kind, atol):
    x, _ = fashion
    model = _ring_model(kind)
    grids = model.grids(x)
    base = model.forward_grids(grids)
    for m in range(SAMPLING.n_angles):
        assert (model.forward_grids(rings.rotate(grids, m)) - base).abs().max() < atol


@pytest.mark.parametrize("kind", ["sector-logistic", "sector-mlp"])
def test_sector_models_are_invariant_to_rot90_of_the_pixels(fashion, kind, atol):
    x, _ = fashion
    model = _ring_model(kind)
    base = model(x)
    for r in range(4):
        assert (model(torch.rot90(x, r, dims=(-2, -1))) - base).abs().max() < atol


def test_ring_grid_model_is_not_invariant(fashion):
    # negative control: the same features machinery on the raw grid does see orientation
    x, _ = fashion
    model = _ring_model("ring-mlp")
    grids = model.grids(x)
    assert (model.forward_grids(rings.rotate(grids, 1)) - model.forward_grids(grids)).abs().max() \
        > 1e-3


def test_lifting_layer_is_equivariant(fashion, atol):
    # rotating the input rotates every map and shifts the rotation axis by one
    x, _ = fashion
    torch.manual_seed(0)
    lift = classical.LiftingConv(1, 3).double()
    y = lift(x[:, None])
    y_turned = lift(torch.rot90(x, 1, dims=(-2, -1))[:, None])
    expected = torch.roll(torch.rot90(y, 1, dims=(-2, -1)), 1, dims=2)
    assert (y_turned - expected).abs().max() < atol


def test_group_conv_is_equivariant(atol):
    torch.manual_seed(1)
    layer = classical.GroupConv(2, 3).double()
    y = torch.randn(4, 2, 4, 9, 9, dtype=torch.float64)
    turned = torch.roll(torch.rot90(y, 1, dims=(-2, -1)), 1, dims=2)
    expected = torch.roll(torch.rot90(layer(y), 1, dims=(-2, -1)), 1, dims=2)
    assert (layer(turned) - expected).abs().max() < atol


def test_group_conv_without_the_shift_is_not_equivariant():
    # negative control: rotating the filters without cycling the rotation axis breaks it
    torch.manual_seed(1)
    layer = classical.GroupConv(2, 3).double()
    broken = lambda w: torch.stack([torch.rot90(w, r, dims=(-2, -1)) for r in range(4)], 1) \
        .reshape(12, 8, 3, 3)
    y = torch.randn(4, 2, 4, 9, 9, dtype=torch.float64)
    turned = torch.roll(torch.rot90(y, 1, dims=(-2, -1)), 1, dims=2)

    def run(inp):
        out = torch.nn.functional.conv2d(inp.reshape(4, 8, 9, 9), broken(layer.weight),
                                         padding=1)
        return out.reshape(4, 3, 4, 9, 9)

    expected = torch.roll(torch.rot90(run(y), 1, dims=(-2, -1)), 1, dims=2)
    assert (run(turned) - expected).abs().max() > 1e-3


def test_p4_cnn_is_c4_invariant_in_float64(fashion, atol):
    x, _ = fashion
    torch.manual_seed(2)
    model = classical.P4CNN((28, 28), 10).double()
    base = model(x)
    for r in range(4):
        assert (model(torch.rot90(x, r, dims=(-2, -1))) - base).abs().max() < atol


def test_p4_cnn_is_c4_invariant_in_float32(fashion):
    x, _ = fashion
    torch.manual_seed(2)
    model = classical.P4CNN((28, 28), 10)
    x32 = x.float()
    base = model(x32)
    for r in range(4):
        assert (model(torch.rot90(x32, r, dims=(-2, -1))) - base).abs().max() < 1e-5


def test_p4_cnn_on_digits_shape_is_invariant(digits, atol):
    x, _ = digits
    torch.manual_seed(3)
    model = classical.P4CNN((8, 8), 10).double()
    xt = torch.as_tensor(x, dtype=torch.float64)
    assert (model(torch.rot90(xt, 1, dims=(-2, -1))) - model(xt)).abs().max() < atol


def test_ordinary_cnn_is_not_rotation_invariant(fashion):
    # negative control for the tests above
    x, _ = fashion
    torch.manual_seed(2)
    cnn = SmallCNN((28, 28), 10).double()
    assert (cnn(torch.rot90(x, 1, dims=(-2, -1))[:, None]) - cnn(x[:, None])).abs().max() > 1e-4


def test_p4_cnn_is_not_invariant_to_45_degree_turns(fashion):
    # 45° is not a symmetry of the pixel grid: the network does not claim it
    from equivar.learn.surrogates import rotate_images

    x, _ = fashion
    torch.manual_seed(2)
    model = classical.P4CNN((28, 28), 10).double()
    turned = rotate_images(x[:, None], torch.full((len(x),), np.pi / 4, dtype=torch.float64))
    assert (model(turned) - model(x)).abs().max() > 1e-4


# ----------------------------------------------------------------- shapes, gradients, seeds

@pytest.mark.parametrize("kind", BASELINES)
def test_shapes_and_input_layouts(kind, digits):
    x, _ = digits
    spec = classical.BaselineSpec("digits", kind, 0, 40, 20, 1, 0, 8, 0.01, 0.0,
                                  0 if kind == "sector-logistic" else 4)
    torch.manual_seed(0)
    model = spec.build()
    xt = torch.as_tensor(x)
    out3, out4 = model(xt), model(xt[:, None])
    assert out3.shape == (len(x), 10) and out3.dtype == torch.float32
    assert torch.equal(out3, out4)


@pytest.mark.parametrize("kind", BASELINES)
def test_gradients_flow_to_the_pixels(kind, digits):
    x, y = digits
    spec = classical.BaselineSpec("digits", kind, 0, 40, 20, 1, 0, 8, 0.01, 0.0,
                                  0 if kind == "sector-logistic" else 4)
    torch.manual_seed(0)
    model = spec.build()
    pixels = torch.as_tensor(x[:5]).requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(pixels), torch.as_tensor(y[:5]))
    (grad,) = torch.autograd.grad(loss, pixels)
    assert grad.shape == pixels.shape and torch.isfinite(grad).all()
    assert grad.abs().sum() > 0
    # the gradient is the loss's: a small step against it lowers the loss
    with torch.no_grad():
        lower = torch.nn.functional.cross_entropy(model(pixels - 1e-3 * grad / grad.norm()),
                                                  torch.as_tensor(y[:5]))
    assert lower < loss


def test_training_is_seeded_and_cached():
    spec = classical.BaselineSpec("digits", "sector-mlp", 0, 120, 60, 3, 1, 32, 0.01, 1e-4, 16)
    model, record = classical.trained_baseline(spec)
    again, record2 = classical.trained_baseline(spec)
    assert not record["cached"] and record2["cached"]
    x, _ = data.load("digits", "test", n=30, seed=0)
    assert torch.equal(model(torch.as_tensor(x)), again(torch.as_tensor(x)))
    # recomputed from scratch with the same seed: the same weights
    fresh_images, fresh_labels = data.load("digits", "train", n=120, seed=0)
    valid = data.load("digits", "valid", n=60, seed=0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        fresh = spec.build()
        classical.fit_baseline(fresh, fresh_images, fresh_labels, valid, spec)
    assert torch.allclose(fresh(torch.as_tensor(x)), model(torch.as_tensor(x)), atol=1e-6)
    other, _ = classical.trained_baseline(classical.BaselineSpec(
        "digits", "sector-mlp", 1, 120, 60, 3, 1, 32, 0.01, 1e-4, 16))
    assert not torch.allclose(other(torch.as_tensor(x)), model(torch.as_tensor(x)))


def test_training_learns_and_keeps_the_best_epoch():
    spec = classical.BaselineSpec("digits", "sector-logistic", 0, 400, 100, 8, 0, 32, 0.01,
                                  0.0, 0)
    _, record = classical.trained_baseline(spec)
    assert record["kept_valid_loss"] == min(record["valid_loss"])
    assert record["kept_valid_accuracy"] > 0.5  # 10 classes: chance is 0.1


# ----------------------------------------------------------------- bad input

def test_bad_images_are_refused():
    model = _ring_model("sector-mlp")
    with pytest.raises(ValueError, match=r"images must have shape .* got \(2, 3, 28, 28\)"):
        model(torch.zeros(2, 3, 28, 28, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"grids must have shape \(N, 16, 8\)"):
        model.forward_grids(torch.zeros(2, 16, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="square images only, got 28×20"):
        classical.P4CNN((28, 20), 10)


@pytest.mark.parametrize("change, message", [
    (dict(kind="resnet"), "baseline kind must be one of"),
    (dict(width=0), "width must be 0 for sector-logistic and positive otherwise"),
    (dict(kind="sector-logistic", width=4), "width must be 0 for sector-logistic"),
    (dict(n_train=0), "n_train must be a positive integer"),
    (dict(lr=-1.0), "lr must be a positive number"),
    (dict(weight_decay=float("nan")), "weight_decay must be a non-negative number"),
])
def test_bad_specs_are_refused(change, message):
    values = dict(dataset="digits", kind="sector-mlp", seed=0, n_train=10, n_valid=10,
                  epochs=1, patience=0, batch_size=8, lr=0.01, weight_decay=0.0, width=4)
    with pytest.raises(ValueError, match=message):
        classical.BaselineSpec(**{**values, **change})


def test_labels_outside_the_classes_are_refused(digits):
    x, y = digits
    spec = classical.BaselineSpec("digits", "sector-mlp", 0, 40, 20, 1, 0, 8, 0.01, 0.0, 4)
    model = spec.build()
    with pytest.raises(ValueError, match="labels must lie in 0..9"):
        classical.fit_baseline(model, x, y + 5, (x, y), spec)
