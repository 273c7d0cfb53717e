"""equivar.adversary.attacks: ε bound, clipping, determinism, torchattacks vs a hand-written PGD,
the differentiable quantum pipeline, surrogates and the sector view of perturbations."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equivar.adversary import attacks
from equivar import data
from equivar.core import sectors
from equivar.core.model import ModelConfig, QuantumClassifier, amplitudes
from equivar.core.rings import sample_grid
from equivar.learn import surrogates
from equivar.core.pipeline import QuantumPipeline


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", "test", n=40, seed=0)


@pytest.fixture(scope="module")
def cnn():
    model, _ = surrogates.train_surrogate(surrogates.SurrogateSpec("digits", "cnn", 0, 1438, 30))
    return model


class TestCrafting:
    @pytest.mark.parametrize("attack", attacks.ATTACKS)
    @pytest.mark.parametrize("eps", [0.05, 0.3])
    def test_budget_and_clipping(self, cnn, digits, attack, eps):
        x, y = digits
        adv = attacks.craft(cnn, x, y, attack, eps, steps=10)
        assert np.abs(adv - x).max() <= eps + 1e-6
        assert adv.min() >= 0 and adv.max() <= 1
        assert np.abs(adv - x).max() > 0.5 * eps  # negative control: it did move

    def test_eps_zero_returns_the_images(self, cnn, digits):
        x, y = digits
        assert np.array_equal(attacks.craft(cnn, x, y, "pgd", 0.0), x)

    def test_deterministic_for_a_seed_and_leaves_global_rng(self, cnn, digits):
        x, y = digits
        state = torch.get_rng_state()
        a = attacks.craft(cnn, x, y, "pgd", 0.1, seed=3)
        assert torch.equal(state, torch.get_rng_state())
        assert np.array_equal(a, attacks.craft(cnn, x, y, "pgd", 0.1, seed=3))
        assert not np.array_equal(a, attacks.craft(cnn, x, y, "pgd", 0.1, seed=4))

    def test_pgd_matches_a_hand_written_pgd(self, cnn, digits):
        """torchattacks' PGD from the same random start equals the reference loop."""
        x, y = digits
        eps, steps, factor, seed = 0.1, 10, 2.5, 7
        adv = attacks.craft(cnn, x, y, "pgd", eps, steps=steps, step_factor=factor, seed=seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            start = torch.as_tensor(x)[:, None]
            start = torch.clamp(start + torch.empty_like(start).uniform_(-eps, eps), 0, 1)
        ref = attacks.pgd_reference(cnn, x, y, eps, steps, factor * eps / steps,
                                    start[:, 0].numpy())
        assert np.abs(adv - ref).max() < 1e-6

    def test_white_box_pgd_hurts_more_than_noise(self, cnn, digits):
        x, y = digits
        adv = attacks.craft(cnn, x, y, "pgd", 0.2)
        noisy = attacks.noise(x, 0.2, "sign")
        acc = lambda imgs: (surrogates.predict_images(cnn, imgs) == y).mean()
        assert acc(adv) < acc(noisy) - 0.2

    @pytest.mark.parametrize("kwargs,match", [(dict(attack="cw"), "attack must be one of"),
                                              (dict(eps=1.5), r"eps must be a number in \[0, 1\]")])
    def test_bad_arguments(self, cnn, digits, kwargs, match):
        x, y = digits
        args = {"attack": "pgd", "eps": 0.1, **kwargs}
        with pytest.raises(ValueError, match=match):
            attacks.craft(cnn, x, y, args["attack"], args["eps"])


def test_noise_controls(digits):
    x, _ = digits
    sign = attacks.noise(x, 0.1, "sign", seed=1)
    uniform = attacks.noise(x, 0.1, "uniform", seed=1)
    assert np.abs(sign - x).max() <= 0.1 + 1e-6 and np.abs(uniform - x).max() <= 0.1 + 1e-6
    inside = (x > 0.1) & (x < 0.9)
    assert np.allclose(np.abs(sign - x)[inside], 0.1, atol=1e-6)
    assert np.array_equal(sign, attacks.noise(x, 0.1, "sign", seed=1))
    with pytest.raises(ValueError, match="noise kind must be one of"):
        attacks.noise(x, 0.1, "gaussian")


class TestQuantumPipeline:
    def test_equals_sampling_then_model(self, digits, atol):
        x, _ = digits
        model = QuantumClassifier(ModelConfig(variant="sector", n_layers=2), seed=0)
        pipe = QuantumPipeline(model)
        direct = model(amplitudes(sample_grid(x)))
        assert (pipe(torch.as_tensor(x)[:, None]) - direct).abs().max() < atol

    def test_pixel_gradients_are_exact(self, digits):
        x, y = digits
        model = QuantumClassifier(ModelConfig(variant="west", n_layers=2), seed=0)
        pipe = QuantumPipeline(model)
        img = torch.tensor(x[:2], dtype=torch.float64, requires_grad=True)
        f = lambda t: torch.nn.functional.cross_entropy(pipe(t), torch.as_tensor(y[:2]))
        assert torch.autograd.gradcheck(f, (img,), eps=1e-6, atol=1e-7)

    def test_bad_image_shape(self, digits):
        pipe = QuantumPipeline(QuantumClassifier(ModelConfig(n_layers=1), seed=0))
        with pytest.raises(ValueError, match=r"images must have shape \(N, H, W\)"):
            pipe(torch.zeros(2, 3, 8, 8))

    def test_invariant_to_rot90_of_pixels(self, digits, atol):
        x, _ = digits
        pipe = QuantumPipeline(QuantumClassifier(ModelConfig(n_layers=2), seed=1))
        a = pipe(torch.as_tensor(x))
        b = pipe(torch.as_tensor(np.rot90(x, axes=(1, 2)).copy()))
        assert (a - b).abs().max() < atol


class TestSurrogates:
    def test_cnn_learns(self, cnn):
        x, y = data.load("digits", "test")
        assert (surrogates.predict_images(cnn, x) == y).mean() > 0.8

    def test_training_is_cached_and_deterministic(self):
        spec = surrogates.SurrogateSpec("digits", "mlp", 1, 300, 2)
        a, rec_a = surrogates.train_surrogate(spec)
        b, rec_b = surrogates.train_surrogate(spec)
        assert rec_b["cached"] and rec_a["loss"] == rec_b["loss"]
        for (_, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(pa, pb)

    def test_rotation_matches_rot90(self, digits):
        x, _ = digits
        turned = surrogates.rotate_images(torch.as_tensor(x)[:, None],
                                       torch.full((len(x),), np.pi / 2))[:, 0].numpy()
        assert np.abs(turned - np.rot90(x, axes=(1, 2))).max() < 1e-5

    def test_unknown_kind(self):
        with pytest.raises(ValueError, match="surrogate kind must be one of"):
            surrogates.SurrogateSpec("digits", "resnet", 0, 10, 1)


class TestAdversarialSets:
    def test_stored_once_and_reused_unchanged(self, cnn, digits):
        from equivar import cache

        x, y = digits
        before = len(cache.entries())
        a = attacks.adversarial_set(cnn, {"id": "cnn"}, x, y, "pgd", 0.1, 5, 2.5, 0)
        b = attacks.adversarial_set(cnn, {"id": "cnn"}, x, y, "pgd", 0.1, 5, 2.5, 0)
        assert np.array_equal(a, b) and len(cache.entries()) == before + 1
        entry = [e for e in cache.entries() if e["kind"] == "adversarial"][-1]
        assert entry["format"] == "npz" and len(entry["sha256"]) == 64


class TestSectorView:
    def test_energy_shares(self, digits, atol):
        x, _ = digits
        noisy = attacks.noise(x, 0.1, "sign")
        shares = attacks.sector_energy_share(x, noisy)
        assert np.allclose(shares.sum(1), 1)
        # encoded: the DFT power of the change of the normalised state, folded
        a, b = (sectors.normalise(sample_grid(v)) for v in (x, noisy))
        power = (np.abs(sectors.angular_dft(b - a)) ** 2).sum(-2)
        assert np.abs(shares - sectors.fold_weights(power) / power.sum(-1, keepdims=True)).max() < atol
        # grid level: adding a constant to every pixel is a pure ring-mean change
        shifted = attacks.sector_energy_share(x, x + 0.05, encoded=False)
        assert np.abs(shifted[:, 0] - 1).max() < atol
        # a pure rescaling leaves the normalised state unchanged: no energy at all
        assert attacks.sector_energy_share(x, 0.5 * x).max() == 0

    def test_restricted_parts_add_up(self, digits, atol):
        x, _ = digits
        adv = attacks.noise(x, 0.1, "uniform", seed=2)
        g0 = sample_grid(x)
        full = attacks.restricted(x, adv, range(5))
        k0 = attacks.restricted(x, adv, [0])
        rest = attacks.restricted(x, adv, range(1, 5))
        assert np.abs(full - sample_grid(adv)).max() < atol
        assert np.abs((k0 - g0) + (rest - g0) - (full - g0)).max() < atol
        assert np.abs(sectors.ring_means(rest - g0)).max() < atol

    def test_logit_change_sums_to_the_true_class_logit_change(self, digits, atol):
        x, y = digits
        model = QuantumClassifier(ModelConfig(variant="sector", n_layers=2), seed=0)
        adv = attacks.noise(x, 0.1, "sign")
        change = attacks.logit_change_by_sector(model, x, adv, y)
        with torch.no_grad():
            direct = (model(amplitudes(sample_grid(adv))) -
                      model(amplitudes(sample_grid(x))))[np.arange(len(y)), y].numpy()
        assert np.abs(change.sum(1) - direct).max() < atol


class TestBadInputs:
    """Regressions: inputs outside [0, 1] were clipped silently, PGD parameters unchecked."""

    @pytest.mark.parametrize("make", [
        lambda x: (x * 255).astype(np.uint8),      # uint8 images came out with 3 grey levels
        lambda x: x * 2 - 1,                        # [-1, 1] normalised images
        lambda x: np.where(x > 0.5, np.nan, x),
    ])
    def test_images_outside_the_unit_interval_are_refused(self, cnn, digits, make):
        x, y = digits
        bad = make(x[:4])
        with pytest.raises(ValueError, match=r"images (must lie in \[0, 1\]|contain NaN)"):
            attacks.craft(cnn, bad, y[:4], "pgd", 0.1)
        with pytest.raises(ValueError, match=r"images (must lie in \[0, 1\]|contain NaN)"):
            attacks.noise(bad, 0.1, "sign")

    @pytest.mark.parametrize("kwargs,match", [
        (dict(steps=0), "steps must be a positive integer, got 0"),
        (dict(steps=-3), "steps must be a positive integer, got -3"),
        (dict(steps=2.5), "steps must be a positive integer"),
        (dict(step_factor=float("nan")), "step_factor must be a positive number, got nan"),
        (dict(step_factor=0.0), "step_factor must be a positive number"),
        (dict(eps=5.0), r"eps must be a number in \[0, 1\]"),
        (dict(eps=float("nan")), r"eps must be a number in \[0, 1\]"),
    ])
    def test_pgd_parameters(self, cnn, digits, kwargs, match):
        x, y = digits
        args = dict(eps=0.1) | kwargs
        with pytest.raises(ValueError, match=match):
            attacks.craft(cnn, x[:4], y[:4], "pgd", **args)

    @pytest.mark.parametrize("eps", [5.0, -0.1, float("inf")])
    def test_noise_budget_is_checked_like_craft(self, digits, eps):
        with pytest.raises(ValueError, match=r"eps must be a number in \[0, 1\]"):
            attacks.noise(digits[0][:4], eps, "uniform")

    def test_labels_must_match_images(self, cnn, digits):
        x, y = digits
        with pytest.raises(ValueError, match="4 images but 3 labels"):
            attacks.craft(cnn, x[:4], y[:3], "fgsm", 0.1)
