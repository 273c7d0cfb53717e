"""Controls for the confounds (equivar.studies.controls): exact identities and behaviour."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from equivar.core import sectors
from equivar.core.model import ModelConfig, QuantumClassifier, amplitudes
from equivar.core.rings import ring_means
from equivar.learn.train import ModelSpec
from equivar.studies import controls


@pytest.fixture
def grids(rng):
    # positive, image-like grids: a strong ring-mean part plus angular structure
    return 0.5 + rng.random((12, 16, 8))


def test_fidelity_matched_keeps_ring_means_and_hits_the_fidelity(grids, rng, atol):
    f = rng.uniform(0.05, 0.9, len(grids))
    moved = controls.fidelity_matched(grids, f, rng, keep_ring_means=True)
    assert np.allclose(controls.fidelity(grids, moved), 1 - f, atol=atol)
    assert np.allclose(ring_means(moved), ring_means(grids), atol=atol)
    free = controls.fidelity_matched(grids, f, rng, keep_ring_means=False)
    assert np.allclose(controls.fidelity(grids, free), 1 - f, atol=atol)
    assert not np.allclose(ring_means(free), ring_means(grids), atol=1e-3)
    # the same move as removing the ring means, measured the same way
    removed = sectors.keep_sectors(grids, range(1, 8))
    w0 = controls.ring_mean_weight(grids)
    assert np.allclose(controls.fidelity(grids, removed), 1 - w0, atol=atol)
    with pytest.raises(ValueError, match=r"fraction must lie in \[0, 1\)"):
        controls.fidelity_matched(grids, 1.0, rng)


def test_random_subspace_removal_is_a_projection(grids, rng, atol):
    a = controls.random_subspace_removed(grids, 16, np.random.default_rng(3))
    b = controls.random_subspace_removed(a, 16, np.random.default_rng(3))
    assert np.allclose(a, b, atol=atol)                        # idempotent
    flat_a, flat_g = a.reshape(len(a), -1), grids.reshape(len(a), -1)
    assert np.allclose((flat_a * (flat_g - flat_a)).sum(-1), 0, atol=atol)   # orthogonal
    # a random 16-dimensional subspace of 128 takes about 1/8 of the norm, far from k = 0's
    share = 1 - (flat_a ** 2).sum(-1) / (flat_g ** 2).sum(-1)
    assert 0.03 < share.mean() < 0.3 < controls.ring_mean_weight(grids).mean()
    with pytest.raises(ValueError, match="dim must lie"):
        controls.random_subspace_removed(grids, 128, rng)


def _model(seed=0):
    return QuantumClassifier(ModelConfig(n_rad=4, n_ang=3, n_layers=2, variant="sector",
                                         readout="probs", n_classes=4, scale=30.0), seed=seed)


def test_reliance_controls_shapes_and_none_matches_predictions(grids, rng):
    model = _model()
    labels = rng.integers(0, 4, len(grids))
    out = controls.reliance_controls(model, grids, labels, seed=0)
    assert list(out["correct"]) == list(controls.RELIANCE_CONTROLS)
    pred = model.readout(torch.as_tensor(amplitudes(grids))).argmax(1).numpy()
    assert np.array_equal(out["correct"]["none"], pred == labels)
    assert out["moved"]["none"] == pytest.approx(0, abs=1e-12)
    # the fidelity-matched control moves the state exactly as far as the removal does; the
    # norm-matched one (the rule's) to fidelity 1 / (1 + w0) per image
    w0 = controls.ring_mean_weight(grids)
    assert out["moved"]["k ≥ 1 moved as far (ring means kept)"] == \
        pytest.approx(out["moved"]["ring means removed"], rel=1e-9)
    assert out["moved"][controls.REFERENCE_CONTROL] == pytest.approx(np.mean(w0 / (1 + w0)),
                                                                     rel=1e-9)
    again = controls.reliance_controls(model, grids, labels, seed=0)
    for name in controls.RELIANCE_CONTROLS:
        assert np.array_equal(out["correct"][name], again["correct"][name])


def test_split_parts_add_up_and_clipping_adds_k0(rng):
    images = np.zeros((6, 28, 28))
    images[:, 8:20, 10:18] = rng.uniform(0.3, 1.0, (6, 12, 8))   # an object on a dark background
    noisy = np.clip(images + 0.1 * rng.choice([-1, 1], images.shape), 0, 1)
    parts = controls.split(images, noisy, threshold=0.02)
    delta = noisy - images
    assert np.allclose((parts["background part"] - images) + (parts["object part"] - images),
                       delta, atol=1e-12)
    assert np.all(parts["background part"] - images >= 0)     # clipping: background only brightens
    assert np.array_equal(parts["full"], noisy)
    clipped = controls.k0_share(images, controls.sign_noise(images, 0.1, 0, clip=True))
    unclipped = controls.k0_share(images, controls.sign_noise(images, 0.1, 0, clip=False))
    assert clipped.mean() > unclipped.mean() + 0.05
    with pytest.raises(ValueError, match="differ in shape"):
        controls.split(images, noisy[:, :5], 0.02)


def test_preprocessing_identities(grids, rng, atol):
    centre = controls.Preprocess("global mean-centring")
    standard = controls.Preprocess("per-image standardisation")
    # standardisation is global centring up to a positive scale: the same encoded state
    assert np.allclose(standard.states(grids), centre.states(grids), atol=atol)
    # global centring only touches k = 0 (a constant is ring-constant)
    diff = centre.apply(grids) - grids
    assert np.allclose(sectors.keep_sectors(diff, range(1, 8)), 0, atol=atol)
    thresh = controls.Preprocess("background thresholding", threshold=0.8)
    out = thresh.apply(grids)
    assert np.all((out == 0) | (out >= 0.8)) and np.all(out[grids >= 0.8] == grids[grids >= 0.8])
    # torch in, torch out, differentiable; C_N invariance kept (acts the same on every angle)
    t = torch.as_tensor(grids, dtype=torch.float64).requires_grad_()
    centre.states(t).sum().backward()
    assert t.grad is not None and torch.isfinite(t.grad).all()
    rolled = np.roll(grids, 3, axis=-1)
    for p in (centre, thresh):
        assert np.allclose(np.roll(p.apply(grids), 3, axis=-1), p.apply(rolled), atol=atol)
    with pytest.raises(ValueError, match="preprocessing must be one of"):
        controls.Preprocess("whitening")


def test_equal_steps_takes_the_plain_models_realised_steps():
    spec = ModelSpec("digits", "sector", 0, 1000, 10, 64, 0.03, 2, 30.0, augment="gaussian",
                     augment_strength=0.1)
    per_epoch = 32   # ⌈2000 / 64⌉: the defended set is the 1000 images and a copy of each
    # the plain model's 16 steps per epoch: 10 epochs, 9 epochs, stopped early after 3, 1 step
    for plain_steps in (160, 144, 48, 1):
        equal = controls.equal_steps(spec, plain_steps, 1000)
        assert equal.max_steps == plain_steps                     # not floored to whole epochs
        assert equal.epochs == -(-plain_steps // per_epoch)       # just enough epochs
        assert (equal.epochs - 1) * per_epoch < plain_steps <= equal.epochs * per_epoch
        assert equal == replace(spec, epochs=equal.epochs, max_steps=plain_steps)
    with pytest.raises(ValueError, match="defended spec"):
        controls.equal_steps(replace(spec, augment="none"), 160, 1000)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="plain_steps must be a positive integer"):
            controls.equal_steps(spec, bad, 1000)
    with pytest.raises(ValueError, match="n_plain must be a positive integer"):
        controls.equal_steps(spec, 160, 0)


def test_realised_steps_from_a_training_record():
    assert controls.realised_steps({"steps": 37, "loss": [1.0] * 9, "n_train": 100}, 16) == 37
    # no step count (every epoch complete): epochs run × ⌈n / batch⌉
    assert controls.realised_steps({"loss": [1.0, 0.9, 0.8], "n_train": 100}, 16) == 3 * 7
    with pytest.raises(ValueError, match="neither 'steps' nor"):
        controls.realised_steps({"n_train": 100}, 16)


def test_equal_steps_model_trains_as_many_steps_as_the_plain_one(monkeypatch, tmp_path):
    """End to end on a tiny model: the plain model stops early (patience), the equal-steps
    defence takes exactly its realised steps on twice the images."""
    from equivar.adversary.defences import trained_defended

    monkeypatch.setenv("EQUIVAR_CACHE_DIR", str(tmp_path))
    plain = ModelSpec("digits", "sector", 0, 40, 6, 16, 0.3, 1, 30.0, patience=1, n_valid=30)
    _, record = trained_defended(plain, progress=False)
    plain_steps = controls.realised_steps(record, plain.batch_size)
    assert plain_steps == len(record["loss"]) * 3   # ⌈40 / 16⌉ steps per epoch
    assert len(record["loss"]) < plain.epochs   # it did stop early: fewer steps than planned
    # without early stopping of its own, the defence runs to the cap exactly: all the plain
    # model's steps, the last epoch cut short (2 × 40 images: 5 steps per epoch)
    defended = replace(plain, augment="gaussian", augment_strength=0.1, patience=0)
    equal = controls.equal_steps(defended, plain_steps, record["n_train"])
    _, got = trained_defended(equal, progress=False)
    assert got["n_train"] == 2 * record["n_train"]
    assert got["steps"] == plain_steps and len(got["loss"]) == equal.epochs


def test_trained_preprocessed_caches_and_refuses_filters(tmp_path):
    spec = ModelSpec("digits", "sector", 0, 60, 1, 32, 0.03, 1, 30.0)
    pre = controls.Preprocess("background thresholding", threshold=0.2)
    model, record = controls.trained_preprocessed(spec, pre)
    again, _ = controls.trained_preprocessed(spec, pre)
    assert torch.equal(model.weights, again.weights) and record["n_train"] == 60
    assert record["steps"] == 2 and len(record["loss"]) == 1   # 60 images, batches of 32
    other, _ = controls.trained_preprocessed(spec, controls.Preprocess("global mean-centring"))
    assert not torch.equal(model.weights, other.weights)
    with pytest.raises(ValueError, match="starts from the plain model"):
        controls.trained_preprocessed(replace(spec, suppress_alpha=0.0), pre)


def test_energy_removed_takes_exactly_the_fraction(grids, rng, atol):
    f = rng.uniform(0.0, 1.0, len(grids))
    out = controls.energy_removed(grids, f, np.random.default_rng(5))
    norm2 = lambda x: (x.reshape(len(x), -1) ** 2).sum(-1)
    assert np.allclose(norm2(out), (1 - f) * norm2(grids), atol=atol)
    # matched to the ring means' weight it takes the same energy as removing them
    w0 = controls.ring_mean_weight(grids)
    same = controls.energy_removed(grids, w0, np.random.default_rng(5))
    removed = sectors.keep_sectors(grids, range(1, 8))
    assert np.allclose(norm2(same), norm2(removed), atol=atol)
    # ... but not from the ring means alone: they keep most of their share
    assert np.all(controls.ring_mean_weight(same) > 0.1)
    assert np.allclose(controls.energy_removed(grids, 0.0, rng), grids, atol=atol)
    with pytest.raises(ValueError, match=r"fraction must lie in \[0, 1\]"):
        controls.energy_removed(grids, 1.5, rng)


def test_preprocessing_leaves_a_grid_it_would_empty_as_it_was(rng):
    from equivar.core.model import amplitudes

    grids = rng.random((3, 16, 8))
    grids[1] *= 0.1                        # every value below the threshold: a dim image
    grids[2] = 0.5                         # constant: centring would leave nothing
    thresh = controls.Preprocess("background thresholding", threshold=0.2)
    out = thresh.apply(grids)
    assert np.array_equal(out[1], grids[1])
    assert np.array_equal(out[0], grids[0] * (grids[0] >= 0.2))     # the rule where it can act
    for kind in ("global mean-centring", "per-image standardisation"):
        p = controls.Preprocess(kind)
        done = p.apply(grids)
        assert np.isfinite(done).all() and np.array_equal(done[2], grids[2])
        assert abs(done[0].mean()) < 1e-12
    states = thresh.states(grids)
    assert np.allclose(np.linalg.norm(states, axis=-1), 1)
    t = torch.as_tensor(grids).requires_grad_()
    thresh.states(t).sum().backward()
    assert torch.isfinite(t.grad).all()
    # still a choice a rotation cannot change
    rolled = np.roll(grids, 3, axis=-1)
    assert np.allclose(np.roll(thresh.apply(grids), 3, axis=-1), thresh.apply(rolled))
