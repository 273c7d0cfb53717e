"""equivar.learn.train: determinism, learning on planted data, label validation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equivar import data
from equivar.core import rings
from equivar.core.model import ModelConfig, QuantumClassifier, amplitudes
from equivar.learn.train import TrainConfig, accuracy, check_labels, fit, predict


@pytest.fixture(scope="module")
def planted():
    """Synthetic classes 0 vs 1 differ only in their ring-mean profile."""
    x, y = data.load("synthetic", "train", n=400, seed=1)
    keep = y < 2
    return amplitudes(rings.sample(x[keep], 16, 8)), y[keep]


def small_model(seed=0):
    return QuantumClassifier(ModelConfig(n_layers=2, n_classes=2, readout="z"), seed=seed)


def test_training_is_deterministic(planted):
    x, y = planted
    runs = []
    for _ in range(2):
        model = small_model()
        history = fit(model, x, y, TrainConfig(epochs=2, batch_size=32, lr=0.05), progress=False)
        runs.append((model.weights.detach().clone(), history.loss))
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]


def test_learns_a_ring_profile_task(planted):
    x, y = planted
    x_test, y_test = data.load("synthetic", "test", n=200, seed=1)
    keep = y_test < 2
    held_out = (amplitudes(rings.sample(x_test[keep], 16, 8)), y_test[keep])
    model = small_model()
    before = accuracy(model, *held_out)
    history = fit(model, x, y, TrainConfig(epochs=6, batch_size=32, lr=0.05), progress=False,
                  valid=held_out)
    assert history.loss[-1] < history.loss[0]
    assert history.valid_accuracy[-1] > 0.9 > before  # on held-out images
    assert len(history.train_accuracy) == 6


def test_trained_models_are_cached_and_keyed_by_every_setting(monkeypatch, tmp_path):
    from dataclasses import replace

    from equivar import cache
    from equivar.learn.train import ModelSpec, trained

    monkeypatch.setenv("EQUIVAR_CACHE_DIR", str(tmp_path))
    spec = ModelSpec("synthetic", "west", 0, 64, 1, 32, 0.03, 1, 30.0)
    a, rec_a = trained(spec, progress=False)
    b, rec_b = trained(spec, progress=False)
    assert not rec_a["cached"] and rec_b["cached"] and torch.equal(a.weights, b.weights)
    assert rec_a["steps"] == 2 and len(rec_a["loss"]) == 1   # 64 images, batches of 32
    for change in (dict(seed=1), dict(epochs=2), dict(suppress_alpha=0.5), dict(planted_k=3),
                   dict(augment="gaussian", augment_strength=0.1), dict(max_steps=1)):
        identity = (lambda x, y: (x, y)) if "augment" in change else None
        _, rec = trained(replace(spec, **change), progress=False, augmentation=identity)
        assert not rec["cached"], change
    assert rec["steps"] == 1   # the cap reaches the training record
    keys = [e["key"] for e in cache.entries()]
    assert len(keys) == len(set(keys)) == 7
    params = cache.entries()[0]["params"]
    assert "sampling" in params and "data" in params


def test_predict_and_accuracy_agree(planted):
    x, y = planted
    model = small_model(3)
    assert accuracy(model, x, y) == pytest.approx(float((predict(model, x) == y).mean()))


class TestErrors:
    def test_label_out_of_range(self, planted):
        x, y = planted
        with pytest.raises(ValueError, match=r"labels must lie in 0..1 .*found 0..2"):
            fit(small_model(), x, np.where(y == 1, 2, 0), TrainConfig(epochs=1), progress=False)

    def test_float_labels(self):
        with pytest.raises(ValueError, match="labels must be integers"):
            check_labels(np.array([0.0, 1.0]), 2)

    def test_length_mismatch(self, planted):
        x, y = planted
        with pytest.raises(ValueError, match="states but"):
            fit(small_model(), x, y[:-1], TrainConfig(epochs=1), progress=False)

    def test_empty_training_set(self):
        with pytest.raises(ValueError, match="no training states"):
            fit(small_model(), np.zeros((0, 128)), np.zeros(0, dtype=int), progress=False)

    @pytest.mark.parametrize("kwargs,match", [(dict(epochs=0), "epochs"),
                                              (dict(batch_size=1.5), "batch_size"),
                                              (dict(lr=-1.0), "lr must be a positive")])
    def test_config(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            TrainConfig(**kwargs)


def test_early_stopping_keeps_the_best_validation_epoch(planted):
    x, y = planted
    xv, yv = data.load("synthetic", "valid", n=120, seed=0)
    keep = yv < 2
    valid = (amplitudes(rings.sample(xv[keep], 16, 8)), yv[keep])
    model = small_model()
    config = TrainConfig(epochs=12, batch_size=32, lr=0.3, patience=2)
    history = fit(model, x, y, config, valid=valid, progress=False)
    best = int(np.argmin(history.valid_loss)) + 1
    assert history.best_epoch == best
    assert len(history.valid_loss) <= min(12, best + 2)
    # the kept weights are the best epoch's: their validation loss is the minimum
    with torch.no_grad():
        logits = model(torch.as_tensor(valid[0]))
    loss = float(torch.nn.functional.cross_entropy(logits, torch.as_tensor(valid[1])))
    assert abs(loss - min(history.valid_loss)) < 1e-9


def test_cosine_schedule_anneals_to_zero(planted):
    x, y = planted
    model = small_model()
    history = fit(model, x, y, TrainConfig(epochs=2, batch_size=64, lr=0.05, schedule="cosine"),
                  progress=False)
    assert len(history.loss) == 2


@pytest.mark.parametrize("kwargs,match", [
    (dict(schedule="step"), "schedule must be one of"),
    (dict(patience=-1), "patience must be a non-negative integer"),
    (dict(max_steps=-1), "max_steps must be a non-negative integer"),
    (dict(max_steps=2.5), "max_steps must be a non-negative integer"),
    (dict(max_steps=True), "max_steps must be a non-negative integer"),
    (dict(lr="0.1"), "lr must be a positive number"),
])
def test_train_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_early_stopping_needs_a_validation_set(planted):
    with pytest.raises(ValueError, match="needs a validation set"):
        fit(small_model(), *planted, TrainConfig(patience=2), progress=False)


@pytest.mark.parametrize("labels", [np.array(["a", "b"]), ["0", "1"], np.array([0.0, 1.0])])
def test_labels_must_be_class_indices(labels):
    # regression: string labels raised a raw TypeError from torch
    with pytest.raises(ValueError, match="labels must be integers"):
        check_labels(labels, 10)


def test_bootstrap_gives_each_seed_its_own_training_sample():
    """When n_train covers the split (digits), seeds without bootstrap see the same images;
    with it, each seed draws its own resample with replacement (seeded, reproducible)."""
    from equivar import data
    from equivar.learn.train import training_data

    n = data.split_size("digits", "train")
    plain = [training_data("digits", 10 * n, s) for s in (0, 1)]
    assert np.array_equal(np.sort(plain[0][0].reshape(n, -1), axis=0),
                          np.sort(plain[1][0].reshape(n, -1), axis=0))   # same set of images
    boot = [training_data("digits", 10 * n, s, bootstrap=True) for s in (0, 1)]
    again = training_data("digits", 10 * n, 0, bootstrap=True)
    assert np.array_equal(boot[0][0], again[0]) and np.array_equal(boot[0][1], again[1])
    for images, labels in boot:
        assert images.shape == plain[0][0].shape and labels.shape == (n,)
        unique = len(np.unique(images.reshape(n, -1), axis=0))
        assert 0.55 * n < unique < 0.72 * n      # ≈ 1 - 1/e of the split, with repeats
    assert not np.array_equal(boot[0][0], boot[1][0])
    # below the split size every seed already draws its own subset: bootstrap changes nothing
    small = training_data("digits", 100, 3, bootstrap=True)
    assert np.array_equal(small[0], training_data("digits", 100, 3)[0])


# ----------------------------------------------------------------- a cap on optimiser steps

def reference_fit(model, states, labels, config, n_steps=None):
    """The training loop written out by hand (Adam, cross-entropy, the seeded shuffling of
    :func:`fit`), stopped after ``n_steps`` optimiser steps if given: what fit must match."""
    x = torch.as_tensor(states)
    y = torch.as_tensor(labels, dtype=torch.int64)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    done = 0
    for _ in range(config.epochs):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), config.batch_size):
            if done == n_steps:
                return done
            idx = order[start:start + config.batch_size]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
    return done


@pytest.fixture
def step_counter(monkeypatch):
    """Counts Adam's optimiser steps, whoever takes them."""
    calls = []
    step = torch.optim.Adam.step

    def counted(self, *args, **kwargs):
        calls.append(1)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counted)
    return calls


def test_no_step_cap_trains_as_before(planted, step_counter):
    """max_steps = 0, or a cap the epochs never reach, leaves training untouched: the same
    weights, bit for bit, as the hand-written loop over every epoch."""
    x, y = planted
    per_epoch = -(-len(y) // 32)
    config = TrainConfig(epochs=3, batch_size=32, lr=0.05, seed=4)
    reference = small_model()
    assert reference_fit(reference, x, y, config) == 3 * per_epoch
    for cap in (0, 3 * per_epoch, 3 * per_epoch + 5):
        model = small_model()
        step_counter.clear()
        history = fit(model, x, y, TrainConfig(**{**config.as_dict(), "max_steps": cap}),
                      progress=False)
        assert torch.equal(model.weights, reference.weights), cap
        assert history.steps == len(step_counter) == 3 * per_epoch and len(history.loss) == 3


@pytest.mark.parametrize("extra", [1, 5, 0])
def test_step_cap_stops_after_exactly_that_many_steps(planted, step_counter, extra):
    """A cap inside the second epoch (or at its end) stops there: exactly max_steps optimiser
    steps, the weights of the hand-written loop stopped at the same step, the partial epoch
    recorded and scored on the validation set."""
    x, y = planted
    per_epoch = -(-len(y) // 32)
    assert per_epoch > 5   # the caps below fall inside an epoch
    cap = per_epoch + (extra or per_epoch)
    config = TrainConfig(epochs=6, batch_size=32, lr=0.05, seed=2, max_steps=cap)
    valid = (x[:40], y[:40])
    model = small_model()
    history = fit(model, x, y, config, valid=valid, progress=False)
    assert history.steps == len(step_counter) == cap
    assert len(history.loss) == len(history.valid_loss) == 2 and history.best_epoch == 2
    assert np.isfinite(history.loss[-1]) and 0 <= history.train_accuracy[-1] <= 1
    reference = small_model()
    assert reference_fit(reference, x, y, config, n_steps=cap) == cap
    assert torch.equal(model.weights, reference.weights)


def test_step_cap_with_early_stopping(planted, step_counter):
    """Early stopping still applies under a cap: whichever comes first ends training."""
    x, y = planted
    per_epoch = -(-len(y) // 32)
    for cap in (per_epoch + 3, 7 * per_epoch + 3):
        step_counter.clear()
        config = TrainConfig(epochs=8, batch_size=32, lr=0.3, patience=1, max_steps=cap)
        history = fit(small_model(), x, y, config, valid=(x[:40], y[:40]), progress=False)
        epochs_run = len(history.valid_loss)
        assert history.steps == len(step_counter) == min(cap, epochs_run * per_epoch)
        assert len(history.loss) == epochs_run and 1 <= history.best_epoch <= epochs_run


def test_cosine_schedule_anneals_over_the_capped_run(planted, monkeypatch):
    x, y = planted
    cap = -(-len(y) // 32) + 3
    lrs = []
    original = torch.optim.lr_scheduler.CosineAnnealingLR.step

    def record(self, *args, **kwargs):
        original(self, *args, **kwargs)
        lrs.append(self.get_last_lr()[0])

    monkeypatch.setattr(torch.optim.lr_scheduler.CosineAnnealingLR, "step", record)
    fit(small_model(), x, y, TrainConfig(epochs=8, batch_size=32, lr=0.05, max_steps=cap,
                                         schedule="cosine"), progress=False)
    # the constructor steps once (lr 0.05), then one step per optimiser step: 0 at the cap
    assert len(lrs) == cap + 1 and lrs[0] == pytest.approx(0.05) and lrs[-1] == pytest.approx(0)
