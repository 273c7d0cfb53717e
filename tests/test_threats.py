"""equivar.adversary.threats and equivar.adversary.checks: white-box, ring-mean-preserving and
black-box attacks, and the checks against fooling ourselves (Carlini et al. 2019)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from equivar import data
from equivar.adversary import attacks, checks, threats
from equivar.core.filters import SectorFilter
from equivar.core.model import ModelConfig, QuantumClassifier
from equivar.core.pipeline import QuantumPipeline
from equivar.core.rings import ring_means, sample_grid
from equivar.learn import surrogates

SMALL = threats.Budget(steps=5, restarts=2, square_queries=30, projection_iterations=30)


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", "test", n=24, seed=1)


@pytest.fixture(scope="module")
def mlp():
    model, _ = surrogates.train_surrogate(surrogates.SurrogateSpec("digits", "mlp", 0, 600, 8))
    return model


@pytest.fixture(scope="module")
def pipe():
    """A quantum pipeline with the k = 0 filter (random weights: the attacks only need a
    differentiable model)."""
    return QuantumPipeline(QuantumClassifier(ModelConfig(variant="sector", n_layers=2), seed=3),
                           SectorFilter(0, 0.0))


class TestRingMeanMap:
    @pytest.mark.parametrize("shape", [(8, 8), (28, 28), (9, 12)])
    def test_equals_ring_means_of_the_samples(self, rng, shape, atol):
        x = rng.uniform(size=(5, *shape))
        a = threats.ring_mean_map(*shape)
        assert a.shape == (16, shape[0] * shape[1])
        assert np.abs(x.reshape(5, -1) @ a.T - ring_means(sample_grid(x))).max() < atol

    def test_null_space_projection_keeps_ring_means(self, rng, atol):
        null = threats.RingMeanNullSpace(8, 8)
        delta = torch.as_tensor(rng.normal(size=(6, 8, 8)))
        projected = null.project(delta)
        assert np.abs(null.change(projected.numpy())).max() < atol
        # idempotent, and a negative control: the raw perturbation changes the ring means
        assert (null.project(projected) - projected).abs().max() < atol
        assert np.abs(null.change(delta.numpy())).max() > 0.1


@pytest.fixture(scope="module")
def mnist_like():
    """Fashion-MNIST images: dark backgrounds, where pixels may only grow."""
    return data.load("fashion-mnist", "test", n=30, seed=2)[0]


class TestProjectionOntoTheRingMeanConstraintAndTheBox:
    @pytest.mark.parametrize("eps", [0.05, 1.0])
    def test_feasible_and_nearest(self, mnist_like, eps):
        x0 = torch.as_tensor(mnist_like, dtype=torch.float64)
        null = threats.RingMeanNullSpace(*x0.shape[1:])
        low, high = torch.clamp(-x0, min=-eps), torch.clamp(1 - x0, max=eps)
        gen = torch.Generator().manual_seed(0)
        start = eps * torch.sign(torch.rand(x0.shape, generator=gen, dtype=torch.float64) - 0.5)
        delta, lam = null.project_box(start, low, high)
        assert ((delta >= low) & (delta <= high)).all()
        assert np.abs(null.change(delta.numpy())).max() < 1e-9
        # the KKT conditions of the nearest point: δ = clip(start - Aᵀλ, low, high)
        flat = (start.reshape(len(x0), -1) - lam @ torch.as_tensor(null.matrix))
        assert torch.allclose(delta.reshape(len(x0), -1), torch.clamp(
            flat, low.reshape(len(x0), -1), high.reshape(len(x0), -1)), atol=1e-12)
        # negative control: clipping alone breaks the constraint
        assert np.abs(null.change(torch.clamp(null.project(start), low, high).numpy())).max() > 1e-3
        # a feasible point is its own projection
        again, _ = null.project_box(delta, low, high)
        assert (again - delta).abs().max() < 1e-9


class TestRingMeanPreservingPGD:
    def test_budget_box_and_ring_means(self, pipe, digits):
        x, y = digits
        eps = 0.1
        adv, residual = threats.ring_mean_preserving_pgd(pipe, x, y, eps, steps=5, seed=2)
        assert np.abs(adv - x).max() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
        assert np.abs(adv - x).max() > 0.5 * eps        # it moved
        assert residual.max() < 1e-6                     # float32 rounding, not the constraint
        change = threats.RingMeanNullSpace(8, 8).change(adv.astype(np.float64) - x)
        assert np.abs(change).max() < 1e-6

    def test_plain_pgd_changes_the_ring_means(self, pipe, digits):
        # negative control: unrestricted PGD moves the ring means by a fair share of ε
        x, y = digits
        adv = attacks.craft(pipe, x, y, "pgd", 0.1, steps=5)
        change = threats.RingMeanNullSpace(8, 8).change(adv.astype(np.float64) - x)
        assert np.abs(change).max() > 0.01

    def test_deterministic_and_leaves_global_rng(self, pipe, digits):
        x, y = digits
        state = torch.get_rng_state()
        a, _ = threats.ring_mean_preserving_pgd(pipe, x, y, 0.1, steps=3, seed=5)
        assert torch.equal(state, torch.get_rng_state())
        b, _ = threats.ring_mean_preserving_pgd(pipe, x, y, 0.1, steps=3, seed=5)
        c, _ = threats.ring_mean_preserving_pgd(pipe, x, y, 0.1, steps=3, seed=6)
        assert np.array_equal(a, b) and not np.array_equal(a, c)

    def test_eps_zero_returns_the_images(self, pipe, digits):
        x, y = digits
        adv, residual = threats.ring_mean_preserving_pgd(pipe, x, y, 0.0, steps=3)
        assert np.array_equal(adv, x) and residual.max() == 0


class TestWhiteAndBlackBox:
    def test_white_box_cascade_fools_the_mlp(self, mlp, digits):
        x, y = digits
        clean = threats.still_correct(mlp, *threats.tensors(x, y))
        alive, stages = threats.white_box(mlp, x, y, 0.3, SMALL, n_classes=10)
        names = [n for n, _ in stages]
        assert names == ["APGD-CE restart 1", "APGD-CE restart 2", "APGD-DLR restart 1",
                         "APGD-DLR restart 2", "AutoAttack (standard)"]
        accuracies = [a for _, a in stages]
        assert accuracies == sorted(accuracies, reverse=True)   # a cascade only removes
        assert clean.mean() > 0.7 and alive.mean() == accuracies[-1] < 0.1
        assert not (alive & ~clean).any()

    def test_black_box_hurts(self, mlp, digits):
        x, y = digits
        state = torch.get_rng_state()
        alive = threats.black_box(mlp, x, y, 0.3, threats.Budget(square_queries=200))
        assert torch.equal(state, torch.get_rng_state())
        clean = threats.still_correct(mlp, *threats.tensors(x, y))
        assert alive.mean() < clean.mean() - 0.3 and not (alive & ~clean).any()

    def test_white_box_through_the_filter_runs_on_the_quantum_pipeline(self, pipe, digits):
        x, y = digits
        alive, stages = threats.white_box(pipe, x, y, 0.05, SMALL, n_classes=10)
        assert alive.dtype == bool and len(stages) == 5

    def test_same_dtype_casts_logits(self, pipe):
        out = threats.SameDtype(pipe)(torch.rand(3, 1, 8, 8))
        assert out.dtype == torch.float32

    def test_too_few_classes(self, mlp, digits):
        x, y = digits
        with pytest.raises(ValueError, match="need at least 4 classes.*got n_classes=3"):
            threats.white_box(mlp, x, y, 0.1, SMALL, n_classes=3)

    @pytest.mark.parametrize("kwargs,match", [
        (dict(steps=0), "steps must be a positive integer, got 0"),
        (dict(restarts=0), "restarts must be a positive integer, got 0"),
        (dict(square_queries=2.5), "square_queries must be a positive integer, got 2.5"),
        (dict(projection_iterations=True), "projection_iterations must be a positive integer, "
                                           "got True"),
        (dict(step_factor=-1.0), "step_factor must be a positive number"),
    ])
    def test_budget_is_checked(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            threats.Budget(**kwargs)


@pytest.fixture(scope="module")
def record(mlp, digits):
    x, y = digits
    return threats.evaluate(mlp, x, y, [0.0, 0.05, 0.3], SMALL, n_classes=10)


class TestEvaluate:
    def test_worst_case_over_eps(self, record):
        assert np.array_equal(record["white-box"][0], record["clean"])
        for family in threats.FAMILIES:
            rows = record[family]
            # an image fooled at ε stays fooled at every larger ε
            assert not (rows[1:] & ~rows[:-1]).any()
        assert record["stages"].shape == (3, 5) and record["seconds"].shape == (3,)
        assert np.allclose(record["stages"][:, -1], record["white-box"].mean(1))
        assert record["white-box"][-1].mean() < 0.1
        assert record["residual"].max() < 1e-6

    def test_cached_once(self, mlp, digits):
        from equivar import cache

        x, y = digits
        before = len(cache.entries())
        a = threats.cached_evaluation(mlp, {"id": "mlp"}, x, y, [0.0, 0.1], SMALL, 10)
        b = threats.cached_evaluation(mlp, {"id": "mlp"}, x, y, [0.0, 0.1], SMALL, 10)
        assert len(cache.entries()) == before + 1
        assert all(np.array_equal(a[k], b[k]) for k in a if k != "seconds")

    @pytest.mark.parametrize("kwargs,match", [
        (dict(epsilons=[0.1, 0.05]), "epsilons must be a non-empty increasing sequence"),
        (dict(epsilons=[]), "epsilons must be a non-empty increasing sequence"),
        (dict(epsilons=[0.0, 2.0]), r"eps must be a number in \[0, 1\]"),
        (dict(families=("grey-box",)), "unknown attack family 'grey-box'"),
    ])
    def test_bad_arguments(self, mlp, digits, kwargs, match):
        x, y = digits
        args = dict(epsilons=[0.0, 0.1]) | kwargs
        with pytest.raises(ValueError, match=match):
            threats.evaluate(mlp, x[:4], y[:4], budget=SMALL, n_classes=10, **args)


class TestStrongerTransfer:
    @pytest.mark.parametrize("attack", ["mifgsm", "difgsm", "vmifgsm"])
    def test_budget_clipping_and_seed(self, mlp, digits, attack):
        x, y = digits
        state = torch.get_rng_state()
        adv = attacks.craft(mlp, x, y, attack, 0.2, steps=5, seed=1)
        assert torch.equal(state, torch.get_rng_state())
        assert np.abs(adv - x).max() <= 0.2 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
        assert np.array_equal(adv, attacks.craft(mlp, x, y, attack, 0.2, steps=5, seed=1))
        acc = lambda imgs: (surrogates.predict_images(mlp, imgs) == y).mean()
        assert acc(adv) < acc(x) - 0.3

    def test_unknown_attack(self, mlp, digits):
        x, y = digits
        with pytest.raises(ValueError, match="attack must be one of .*'vmifgsm'"):
            attacks.craft(mlp, x, y, "nifgsm", 0.1)


class TestSurrogates:
    def test_ring_net_ignores_ring_means(self, digits):
        x, _ = digits
        net = surrogates.SurrogateSpec("digits", "ring", 0, 10, 1).build()
        features = net.features(torch.as_tensor(x))
        assert features.shape == (len(x), 128)
        grids = features.reshape(len(x), 16, 8)
        assert grids.mean(-1).abs().max() < 1e-5                  # mean-centred per ring
        # every sample point lies inside the 8×8 image: a uniform shift moves only ring means
        shifted = net.features(torch.as_tensor(np.clip(x, 0, 0.8) + 0.2))
        assert (shifted - net.features(torch.as_tensor(np.clip(x, 0, 0.8)))).abs().max() < 1e-4

    def test_ring_net_trains_and_is_differentiable_from_pixels(self):
        spec = surrogates.SurrogateSpec("digits", "ring", 0, 600, 10)
        model, record = surrogates.train_surrogate(spec)
        x, y = data.load("digits", "test", n=100, seed=0)
        assert (surrogates.predict_images(model, x) == y).mean() > 0.5
        img = torch.as_tensor(x[:2]).requires_grad_(True)
        model(img).sum().backward()
        assert img.grad.abs().sum() > 0

    def test_ensemble_averages_logits(self, mlp, digits):
        x, _ = digits
        other, _ = surrogates.train_surrogate(surrogates.SurrogateSpec("digits", "cnn", 0, 300, 2))
        ens = surrogates.Ensemble([mlp, other])
        t = torch.as_tensor(x)
        with torch.no_grad():
            assert torch.allclose(ens(t), (mlp(t) + other(t)) / 2)
        with pytest.raises(ValueError, match="at least 2 models, got 1"):
            surrogates.Ensemble([mlp])


class TestChecks:
    def curves(self):
        rows = []
        for model, slope in (("a", 1.0), ("b", 0.1)):
            for threat, factor in (("white-box", 1.0), ("transfer", 0.5),
                                   ("transfer (strong)", 0.6), ("black-box", 0.8)):
                for eps in (0.0, 0.1, 0.5, 1.0):
                    rows.append({"model": model, "threat": threat, "eps": eps,
                                 "accuracy": max(0.0, 0.9 - 9 * slope * factor * eps)})
        return pd.DataFrame(rows)

    def test_reaches_zero(self):
        table = checks.reaches_zero(self.curves(), ["model", "threat"], tol=0.02)
        a = table[table["model"] == "a"].set_index("threat")
        assert a["passed"].all() and a.loc["white-box", "first eps with accuracy <= tol"] == 0.1
        b = table[table["model"] == "b"].set_index("threat")
        assert b.loc["white-box", "passed"] and not b.loc["transfer", "passed"]
        assert b.loc["transfer", "accuracy there"] == pytest.approx(0.45)

    def test_dominance(self):
        table = checks.dominance(self.curves(), ["model"])
        assert table["passed"].all() and (table["excess"] <= 0).all()
        broken = self.curves()
        broken.loc[broken["threat"] == "white-box", "accuracy"] = 0.9  # masked gradients
        table = checks.dominance(broken, ["model"])
        failed = table[~table["passed"]]
        assert set(failed["eps"]) == {0.1, 0.5, 1.0}
        assert set(failed["lowest other"]) <= {"black-box", "transfer", "transfer (strong)"}

    def test_flattening(self):
        curve = pd.DataFrame({"attack": ["PGD"] * 3 + ["PGD"] * 2, "curve": ["steps"] * 3
                              + ["restarts"] * 2, "steps": [5, 10, 20, 20, 20],
                              "restarts": [1, 1, 1, 1, 2], "accuracy": [0.5, 0.3, 0.29, 0.29,
                                                                        0.2]})
        table = checks.flattening(curve, tol=0.02).set_index("curve")
        assert table.loc["steps", "passed"] and table.loc["steps", "from"] == 10
        assert not table.loc["restarts", "passed"]
        assert table.loc["restarts", "last change"] == pytest.approx(-0.09)

    def test_convergence_on_the_mlp(self, mlp, digits):
        x, y = digits
        curve = checks.convergence(mlp, x, y, 0.1, steps=(2, 4), restarts=2, seed=0)
        assert list(curve["attack"].unique()) == ["PGD", "APGD-CE"]
        assert len(curve) == 8
        restarts = curve[curve["curve"] == "restarts"]
        for _, part in restarts.groupby("attack"):
            assert part["accuracy"].is_monotonic_decreasing

    def test_reference_agreement_on_a_quantum_pipeline(self, pipe, digits):
        x, y = digits
        out = checks.reference_agreement(pipe, x, y, 0.1, steps=4, seed=3)
        assert out["max |PGD - reference|"] < 1e-6
        assert out["accuracy PGD (torchattacks)"] == out["accuracy PGD (reference)"]

    @pytest.mark.parametrize("call,match", [
        (lambda c: checks.reaches_zero(c, ["model", "threat"], tol=2.0),
         r"tol must be a number in \[0, 1\]"),
        (lambda c: checks.reaches_zero(c.drop(columns="eps"), ["model"]),
         r"curves lacks column\(s\) \['eps'\]"),
        (lambda c: checks.dominance(c[c["threat"] != "black-box"], ["model"]),
         r"no threat model\(s\) \['black-box'\]"),
    ])
    def test_bad_arguments(self, call, match):
        with pytest.raises(ValueError, match=match):
            call(self.curves())

    def test_convergence_arguments(self, mlp, digits):
        x, y = digits
        with pytest.raises(ValueError, match="restarts must be a positive integer, got 0"):
            checks.convergence(mlp, x, y, 0.1, steps=(2,), restarts=0)
        with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
            checks.convergence(mlp, x, y, 0.1, steps=(0, 2))


def test_scoring_one_model_under_every_threat_model(mlp, digits, record):
    """equivar.studies.threats.score: every family's worst case, robust ⊆ clean, strong ⊆ weak."""
    from equivar.studies import threats as study

    x, y = digits
    eps_list = [0.0, 0.05, 0.3]
    sets = {("transfer", "noise", "sign", e): attacks.noise(x, e, "sign", seed=1)
            for e in eps_list[1:]}
    sets |= {("transfer (strong)", "mlp", "pgd", e): attacks.craft(mlp, x, y, "pgd", e, 5)
             for e in eps_list[1:]}
    correct, rows = study.score(mlp, x, y, sets, record, eps_list)
    assert set(correct) == set(study.THREATS)
    for threat, array in correct.items():
        assert array.shape == (3, len(y)) and np.array_equal(array[0], record["clean"])
        assert not (array[1:] & ~array[:-1]).any(), threat
    assert not (correct["transfer (strong)"] & ~correct["transfer"]).any()
    assert np.array_equal(correct["adaptive"], record["white-box"] & record["restricted"])
    table = pd.DataFrame(rows)
    assert {"white-box", "adaptive", "black-box", "transfer"} <= set(table["threat"])
    with pytest.raises(ValueError, match="the threat record holds 24 images, not 3"):
        study.score(mlp, x[:3], y[:3], {}, record, eps_list)
