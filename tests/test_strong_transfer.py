"""equivar.studies.strong_transfer (chapter 3, stronger transfer attacks): the k = 0 / k ≥ 1
split, the strength of the attacks on their source, per-image alignment, the damage share and
its interval, the generated verdict sentence and the figure."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from equivar import data, stats
from equivar.adversary import attacks
from equivar.book.transfer_plots import plot_strong_transfer
from equivar.core import sectors
from equivar.core.rings import sample_grid
from equivar.learn import surrogates
from equivar.settings import TransferSettings
from equivar.studies import strong_transfer as st
from equivar.studies.reliance import encode_classes


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", "test", n=60, seed=0)


@pytest.fixture(scope="module")
def cnn():
    model, _ = surrogates.train_surrogate(surrogates.SurrogateSpec("digits", "cnn", 0, 1438, 30))
    return model


def _accuracy(model, x, y) -> float:
    return float((surrogates.predict_images(model, x) == y).mean())


class TestAttacksOnTheirSource:
    @pytest.mark.parametrize("attack", ["mifgsm", "vmifgsm"])
    def test_momentum_attacks_are_at_least_as_strong_as_fgsm(self, cnn, digits, attack):
        x, y = digits
        assert _accuracy(cnn, x, y) > 0.8   # a surrogate worth attacking
        for eps in (0.05, 0.1):
            fgsm = attacks.craft(cnn, x, y, "fgsm", eps)
            strong = attacks.craft(cnn, x, y, attack, eps, steps=10)
            assert np.abs(strong - x).max() <= eps + 1e-6
            # white-box on the source, ten momentum steps on the exact gradient fool it at
            # least as often as one step (one image of slack)
            assert _accuracy(cnn, strong, y) <= _accuracy(cnn, fgsm, y) + 1 / len(y)

    def test_input_diversity_hurts_its_source(self, cnn, digits):
        # DI-FGSM follows gradients of randomly resized inputs: it trades strength on its
        # source for transfer (on 8 × 8 digits it is weaker there than FGSM), but must still
        # hurt, and reach about 0 at a large budget
        x, y = digits
        clean = _accuracy(cnn, x, y)
        assert _accuracy(cnn, attacks.craft(cnn, x, y, "difgsm", 0.1, steps=10), y) < clean - 0.1
        assert _accuracy(cnn, attacks.craft(cnn, x, y, "difgsm", 0.3, steps=10), y) <= 0.05

    def test_split_parts_sum_to_the_perturbation_on_the_grid(self, cnn, digits, atol):
        x, y = digits
        adv = attacks.craft(cnn, x, y, "mifgsm", 0.1, steps=5)
        parts = st.split_grids(x, adv)
        g0 = sample_grid(x)
        k0, rest = parts["k=0 only"] - g0, parts["k>=1 only"] - g0
        assert np.abs(g0 + k0 + rest - sample_grid(adv)).max() < atol
        # the k = 0 part is constant on every ring, the rest keeps every ring mean
        assert np.abs(k0 - k0.mean(-1, keepdims=True)).max() < atol
        assert np.abs(sectors.ring_means(rest)).max() < atol
        assert np.abs(k0).max() > 1e-3 and np.abs(rest).max() > 1e-3


def _results(rng, n_seeds=3, n_images=50, datasets=("a", "b")):
    """Fake study results whose rows are shuffled, and the truth they encode."""
    rows, truth = [], {}
    for dataset in datasets:
        labels = rng.integers(0, 10, n_images)
        for target in ("west", "sector"):
            for seed in range(n_seeds):
                for attack, eps, part in [("clean", 0.0, "full"),
                                          ("pgd from ring", 0.1, "full"),
                                          ("pgd from ring", 0.1, "k=0 only"),
                                          ("pgd from ring", 0.1, "k>=1 only")]:
                    right = rng.random(n_images) < 0.5
                    truth[(dataset, target, attack, eps, part, seed)] = right
                    pred = np.where(right, labels, (labels + 3) % 10)
                    rows.append({"dataset": dataset, "seed": seed, "target": target,
                                 "attack": attack, "eps": eps, "part": part,
                                 "predicted": encode_classes(pred),
                                 "labels": encode_classes(labels)})
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=3)
    return {"predictions": frame}, truth


def test_correctness_is_aligned_to_seeds_and_images(rng):
    res, truth = _results(rng)
    got = st.correctness(res, "b", "sector", "pgd from ring", 0.1, "k=0 only")
    want = np.stack([truth[("b", "sector", "pgd from ring", 0.1, "k=0 only", s)]
                     for s in range(3)])
    assert np.array_equal(got, want)
    both = st.pooled(res, ["west", "sector"], "clean", 0.0)
    assert both.shape == (3, 4 * 50)
    assert np.array_equal(both[:, 150:], np.stack(
        [truth[("b", "sector", "clean", 0.0, "full", s)] for s in range(3)]))
    with pytest.raises(ValueError, match="no strong-transfer predictions for west on a under "
                                         "'mifgsm from cnn'"):
        st.correctness(res, "a", "west", "mifgsm from cnn", 0.1)


class TestShare:
    def test_extremes_and_interval(self, rng):
        clean = rng.random((4, 300)) < 0.9
        attacked = clean & (rng.random((4, 300)) < 0.4)
        one = st.share_interval(clean, attacked, attacked, n_resamples=500)
        zero = st.share_interval(clean, attacked, clean, n_resamples=500)
        assert one.estimate == pytest.approx(1.0) and one.low == pytest.approx(1.0)
        assert zero.estimate == pytest.approx(0.0) and zero.high == pytest.approx(0.0)
        half = np.where(rng.random((4, 300)) < 0.5, clean, attacked)
        ci = st.share_interval(clean, attacked, half, n_resamples=2000)
        direct = (clean.mean() - half.mean()) / (clean.mean() - attacked.mean())
        assert ci.estimate == pytest.approx(direct)
        assert ci.low < ci.estimate < ci.high and 0.3 < ci.estimate < 0.7

    def test_no_damage_gives_nan_and_bad_input_is_named(self, rng):
        clean = rng.random((2, 100)) < 0.8
        assert np.isnan(st.share_interval(clean, clean, clean, n_resamples=100).estimate)
        with pytest.raises(ValueError, match="attacked must be"):
            st.share_interval(clean, clean.astype(float) * 2, clean)
        with pytest.raises(ValueError, match="one shape"):
            st.share_interval(clean, clean[:, :50], clean)


def _table(effects, lows):
    rows = [{"attack": a, "label": st.LABELS[a], "strength": "strong", "eps": 0.1,
             "clean": 0.9, "attacked": 0.5, "k=0 only": 0.6, "k=0 removed": 0.5 + e,
             "k=0 share": 0.75, "share low": 0.6, "share high": 0.9, "ring-mean effect": e,
             "effect low": lo, "effect high": e + 0.1, "p (seeds, raw)": 0.5}
            for a, e, lo in zip(st.STRONG, effects, lows)]
    table = pd.DataFrame(rows)
    table.attrs.update({"CI": "95 % CI", "targets": ("west", "sector")})
    return table


def test_remains_needs_the_whole_ci_above_the_threshold():
    tau = stats.RULES["C3-ring-means"].threshold
    # estimate above τ but CI reaching below τ (though above 0): not shown, as in the rule
    table = _table([0.3, 0.3, tau / 2, 0.3, 0.3], [tau + 0.01, tau / 2, 0.001, 0.2, 0.2])
    assert list(st.remains(table)) == [True, False, False, True, True]
    text = st.conclusion_markdown(table, TransferSettings.for_profile("smoke"))
    assert text.startswith("Ring-mean vulnerability remains under MI-FGSM (CNN), PGD "
                           "(ensemble), PGD (ring surrogate), not under DI-FGSM (CNN), "
                           "VMI-FGSM (CNN)")
    every = st.conclusion_markdown(_table([0.3] * 5, [tau + 0.05] * 5),
                                   TransferSettings.for_profile("smoke"))
    assert "remains under every stronger transfer attack" in every
    assert "with the whole CI above that" in every      # the criterion remains() applies


def test_units_share_chapter_4s_keys():
    from dataclasses import replace

    from equivar.studies import robustness

    settings = TransferSettings.for_profile("smoke")
    units = st.units(settings)
    # the sets are chapter 4's units; only the scoring on them is this study's own
    mine = {u.key for u in units if u.fn is not st.score_unit}
    sup = st.threat_settings(settings)
    theirs = {u.key for u in robustness.units(replace(sup))}
    assert mine and mine <= theirs
    scoring = [u for u in units if u.fn is st.score_unit]
    assert len(scoring) == settings.n_seeds and all(u.stage == 4 for u in scoring)


def test_figure_has_a_panel_per_target_and_the_share_panel(rng):
    curves = pd.DataFrame([{"target": t, "attack": a, "eps": e, "accuracy": 0.5, "low": 0.4,
                            "high": 0.6} for t in ("west", "sector", "baseline")
                           for a in st.STRONG + st.WEAK for e in (0.0, 0.1, 0.3)])
    fig = plot_strong_transfer(curves, _table([0.3] * 5, [0.1] * 5), st.LABELS)
    assert len(fig.axes) == 4
    plt.close(fig)
    with pytest.raises(ValueError, match="curves lacks columns"):
        plot_strong_transfer(curves.drop(columns="low"), _table([0.3] * 5, [0.1] * 5),
                             st.LABELS)


def test_study_on_smoke_scores_every_set_on_the_threat_images():
    from equivar.core.pipeline import QuantumPipeline
    from equivar.learn.train import trained
    from equivar.studies import ladder, threats

    settings = TransferSettings.for_profile("smoke")
    res = st.study(settings, progress=False)
    sup = st.threat_settings(settings)
    images, labels = threats.threat_images(sup, "digits")
    assert set(res["predictions"]["target"]) == {"west", "sector", "baseline"}
    # clean correctness is the model's own prediction on the threat images, in order
    model, _ = trained(ladder.model_spec(settings.model_settings(), "digits", "sector", 0),
                       progress=False)
    want = surrogates.predict_images(QuantumPipeline(model), images) == labels
    assert np.array_equal(st.correctness(res, "digits", "sector", "clean", 0.0)[0], want)
    # every strong and weak attack at every ε > 0 of chapter 4, split only at chapter 3's ε
    acc = res["accuracy"]
    eps_all = {e for e in threats.epsilons(sup) if e > 0}
    for attack in st.STRONG + st.WEAK:
        rows = acc[(acc["attack"] == attack) & (acc["target"] == "west")]
        assert set(rows[rows["part"] == "full"]["eps"]) == eps_all
        assert set(rows[rows["part"] == "k=0 only"]["eps"]) == \
            {e for e in settings.epsilons if e > 0}
    # the accuracy table is the mean of the per-image correctness
    row = acc[(acc["attack"] == "mifgsm from cnn") & (acc["target"] == "baseline")
              & np.isclose(acc["eps"], 0.3) & (acc["part"] == "k>=1 only")]
    ok = st.correctness(res, "digits", "baseline", "mifgsm from cnn", 0.3, "k>=1 only")
    assert ok.shape == (1, len(labels)) and row["accuracy"].item() == pytest.approx(ok.mean())
