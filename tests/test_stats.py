"""Statistics for verdicts: intervals, paired tests, Holm, rules (equivar.stats)."""
from __future__ import annotations

import itertools
from math import comb

import numpy as np
import pytest
from scipy import stats as st

from equivar import stats as S
from equivar.stats import Interval, Rule, Verdict


def _correct(accs, n_images: int, rng=None) -> np.ndarray:
    """A (n_seeds, n_images) 0/1 array whose row s has exactly round(accs[s] * n_images) ones."""
    rows = []
    for acc in accs:
        row = np.zeros(n_images, dtype=int)
        row[: round(acc * n_images)] = 1
        rows.append(row if rng is None else rng.permutation(row))
    return np.array(rows)


# ---- intervals ------------------------------------------------------------------------------


def test_bootstrap_coverage_two_level():
    """~95 % coverage of the true mean accuracy on a hierarchical simulation (seeded)."""
    rng = np.random.default_rng(1)
    mu, n_seeds, n_images, n_sims = 0.8, 8, 60, 200
    hits = 0
    for _ in range(n_sims):
        p_seed = rng.beta(mu * 40, (1 - mu) * 40, size=n_seeds)  # seed-to-seed spread, mean mu
        x = rng.random((n_seeds, n_images)) < p_seed[:, None]
        ci = S.bootstrap_accuracy(x, n_resamples=1000, rng=rng)
        hits += ci.low <= mu <= ci.high
    # Binomial(200, 0.95) has sd ≈ 0.015; the band allows the known small-n bias of
    # percentile intervals (under-cover) and of resampling both levels (over-cover).
    assert 0.88 <= hits / n_sims <= 0.995


def test_bootstrap_difference_coverage_paired():
    rng = np.random.default_rng(2)
    n_seeds, n_images, n_sims, delta = 6, 80, 200, 0.05
    hits = 0
    for _ in range(n_sims):
        pa = rng.beta(0.75 * 60, 0.25 * 60, size=n_seeds)
        u = rng.random((n_seeds, n_images))
        d_seed = rng.normal(delta, 0.04, size=n_seeds)  # seed-to-seed spread, mean delta
        a = u < pa[:, None]
        b = u < (pa - d_seed)[:, None]  # paired: same images, same uniforms
        ci = S.bootstrap_difference(a, b, n_resamples=1000, rng=rng)
        hits += ci.low <= delta <= ci.high
    # observed 0.90–0.95 over simulation seeds: 6 seeds make percentile intervals a bit short
    assert 0.85 <= hits / n_sims <= 0.99


def test_bootstrap_difference_covers_on_a_crossed_design():
    """Every seed scores the same images, whose susceptibility to the attack is shared: the
    interval must carry the image variance once, not divided by the number of seeds (an
    independent within-seed image resampling covered about 76 % here)."""
    rng = np.random.default_rng(3)
    n_seeds, n_images, n_sims = 10, 300, 150
    hits = 0
    for _ in range(n_sims):
        fragile = rng.random(n_images) < 1 / 3          # the images an attack can flip
        clean = np.ones((n_seeds, n_images), dtype=bool)
        flipped = fragile[None, :] & (rng.random((n_seeds, n_images)) < 0.9)
        ci = S.bootstrap_difference(clean, ~flipped, n_resamples=500, rng=rng)
        hits += ci.low <= 0.3 <= ci.high                # population drop: 1/3 × 0.9
    assert 0.88 <= hits / n_sims <= 0.995


def test_image_ids_draw_the_same_image_together():
    """Pooling one model's columns twice (the same images) must not narrow the interval."""
    rng = np.random.default_rng(4)
    a = rng.random((5, 200)) < 0.7
    b = rng.random((5, 200)) < 0.5
    single = S.bootstrap_difference(a, b, n_resamples=4000, rng=0)
    twice = S.bootstrap_difference(np.hstack([a, a]), np.hstack([b, b]), n_resamples=4000,
                                   rng=0, image_ids=np.tile(np.arange(200), 2))
    naive = S.bootstrap_difference(np.hstack([a, a]), np.hstack([b, b]), n_resamples=4000,
                                   rng=0)
    width = lambda ci: ci.high - ci.low
    assert twice.estimate == pytest.approx(single.estimate)
    assert width(twice) == pytest.approx(width(single), rel=0.1)
    assert width(naive) < 0.85 * width(single)  # treating copies as new images is too narrow
    with pytest.raises(ValueError, match="one id per column"):
        S.bootstrap_difference(a, b, image_ids=np.arange(3))


@pytest.mark.parametrize("paired", [False, True])
def test_one_level_bootstrap_matches_scipy(paired):
    """One seed: the two-level bootstrap reduces to scipy's percentile bootstrap over images."""
    rng = np.random.default_rng(3)
    a = (rng.random((1, 400)) < 0.7).astype(int)
    b = np.where(rng.random((1, 400)) < 0.8, a, 1 - a)
    n = 20_000
    if paired:
        ours = S.bootstrap_difference(a, b, n_resamples=n, rng=4)
        ref = st.bootstrap((a[0], b[0]), lambda u, v, axis: u.mean(axis) - v.mean(axis),
                           paired=True, method="percentile", n_resamples=n, rng=5)
    else:
        ours = S.bootstrap_accuracy(a, n_resamples=n, rng=4)
        ref = st.bootstrap((a[0],), np.mean, method="percentile", n_resamples=n, rng=5)
    lo, hi = ref.confidence_interval
    se = ref.standard_error
    # The bootstrap means live on a lattice of step 1/400 ≈ 0.11 se; the Monte-Carlo sd of the
    # difference of two 2.5 % quantiles (2e4 resamples each) is ≈ 0.03 se.
    assert abs(ours.low - lo) < 0.25 * se and abs(ours.high - hi) < 0.25 * se
    # and the level is right: half-width ≈ 1.96 se (a 90 % interval would give 1.64)
    assert abs((ours.high - ours.low) / (2 * se) - st.norm.ppf(0.975)) < 0.15
    assert ours.estimate == pytest.approx(a.mean() - (b.mean() if paired else 0))


def test_seed_level_bootstrap_matches_scipy():
    """images=False: a one-level bootstrap over per-seed accuracies, as scipy does it."""
    rng = np.random.default_rng(6)
    x = rng.random((12, 50)) < rng.uniform(0.6, 0.9, size=(12, 1))
    ours = S.bootstrap_accuracy(x, images=False, n_resamples=20_000, rng=7)
    ref = st.bootstrap((x.mean(axis=1),), np.mean, method="percentile", n_resamples=20_000, rng=8)
    tol = 0.1 * ref.standard_error  # Monte-Carlo error only (≈ 0.03 se): no lattice here
    assert abs(ours.low - ref.confidence_interval.low) < tol
    assert abs(ours.high - ref.confidence_interval.high) < tol
    assert ours.what == "95 % CI, bootstrap over 12 seeds"


def test_bootstrap_is_seeded_and_describes_itself():
    x = _correct([0.8, 0.7, 0.9], 100, np.random.default_rng(0))
    y = _correct([0.6, 0.7, 0.7], 100, np.random.default_rng(1))
    c1, c2 = S.bootstrap_difference(x, y, rng=11), S.bootstrap_difference(x, y, rng=11)
    assert c1 == c2
    assert c1.what == "95 % CI of a − b, paired two-level bootstrap over 3 seeds × 100 images"
    assert c1.n_resamples == 10_000 and c1.level == 0.95
    assert c1.low <= c1.estimate <= c1.high
    assert S.bootstrap_accuracy(x, level=0.9, rng=np.random.default_rng(0)).what.startswith("90 %")


def test_t_interval_by_hand():
    x = _correct([0.8, 0.7, 0.9, 0.75], 20)
    y = _correct([0.5, 0.6, 0.55, 0.65], 20)
    d = np.array([0.3, 0.1, 0.35, 0.1])
    half = st.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    ci = S.t_interval(x, y)
    assert (ci.estimate, ci.low, ci.high) == pytest.approx((d.mean(), d.mean() - half,
                                                            d.mean() + half))
    ref = st.ttest_1samp(x.mean(1), 0).confidence_interval(0.95)
    assert (S.t_interval(x).low, S.t_interval(x).high) == pytest.approx((ref.low, ref.high))
    assert ci.what == "95 % CI of a − b, t-interval over 4 per-seed values"


def test_format_interval():
    ci = Interval(0.8123, 0.79, 0.834, 0.95, 1000, "95 % CI, over 10 seeds × 800 images")
    assert S.format_interval(ci) == "0.812 [0.790, 0.834] (95 % CI, over 10 seeds × 800 images)"
    assert S.format_interval(ci, digits=1, scale=100, unit=" %", what=False) == \
        "81.2 % [79.0, 83.4]"
    assert str(Interval.exact(3e-13, "max over 500 images")) == "3e-13 (max over 500 images)"


# ---- paired tests ---------------------------------------------------------------------------


def _discordant(only_a: int, only_b: int, both: int = 5, neither: int = 3):
    a = [1] * only_a + [0] * only_b + [1] * both + [0] * neither
    b = [0] * only_a + [1] * only_b + [1] * both + [0] * neither
    return np.array(a), np.array(b)


def test_mcnemar_exact_by_hand():
    a, b = _discordant(8, 2)
    # P(X ≤ 2) + P(X ≥ 8), X ~ Bin(10, ½): 2 (1 + 10 + 45) / 1024
    assert S.mcnemar_exact(a, b).pvalue == pytest.approx(112 / 1024, rel=1e-12)
    assert S.mcnemar_exact(a, b, alternative="greater").pvalue == pytest.approx(56 / 1024)
    assert S.mcnemar_exact(a, b, alternative="less").pvalue == pytest.approx(1013 / 1024)
    assert S.mcnemar_exact(a, b).statistic == 8
    assert S.mcnemar_exact(*_discordant(5, 0)).pvalue == pytest.approx(2 / 32)
    assert S.mcnemar_exact(*_discordant(0, 0)).pvalue == 1.0


def test_mcnemar_per_seed_and_stratified():
    (a1, b1), (a2, b2) = _discordant(8, 2), _discordant(5, 0, both=10, neither=3)
    a, b = np.stack([a1, a2]), np.stack([b1, b2])
    per_seed = S.mcnemar_per_seed(a, b)
    assert [r.pvalue for r in per_seed] == pytest.approx([112 / 1024, 2 / 32])
    # pooled discordant pairs: 13 vs 2 of 15 → 2 P(X ≤ 2), X ~ Bin(15, ½)
    expected = 2 * (comb(15, 0) + comb(15, 1) + comb(15, 2)) / 2**15
    assert S.mcnemar_stratified(a, b).pvalue == pytest.approx(expected, rel=1e-12)


def test_permutation_test_exact_tiny_case():
    """Three seeds, per-seed differences (0.1, 0.2, −0.05): the 8 sign patterns by hand."""
    a = _correct([0.6, 0.7, 0.5], 20)
    b = _correct([0.5, 0.5, 0.55], 20)
    # sums over sign patterns: ±0.25, ±0.35, ±0.15, ±0.05; observed 0.25
    res = S.permutation_test_seeds(a, b)
    assert res.statistic == pytest.approx(0.25 / 3)
    assert res.pvalue == pytest.approx(4 / 8)  # |sum| ≥ 0.25: 0.25, 0.35, −0.35, −0.25
    assert S.permutation_test_seeds(a, b, alternative="greater").pvalue == pytest.approx(2 / 8)
    assert S.permutation_test_seeds(a, b, alternative="less").pvalue == pytest.approx(7 / 8)
    assert "all 8 sign patterns" in res.what


def test_permutation_test_limits_and_monte_carlo():
    a = _correct([0.9] * 6, 10)
    b = _correct([0.5] * 6, 10)
    assert S.permutation_test_seeds(a, b).pvalue == pytest.approx(S.min_pvalue(6)) == 2 / 64
    assert S.min_pvalue(6, "greater") == 1 / 64
    mc = S.permutation_test_seeds(a, b, max_exact=16, n_resamples=999, rng=0)
    assert "999 random sign patterns" in mc.what and 0 < mc.pvalue < 0.1


def test_paired_t_test_matches_formula():
    a = _correct([0.8, 0.7, 0.9, 0.75], 20)
    b = _correct([0.5, 0.6, 0.55, 0.65], 20)
    d = np.array([0.3, 0.1, 0.35, 0.1])
    t = d.mean() / (d.std(ddof=1) / 2)
    res = S.paired_t_test(a, b)
    assert res.statistic == pytest.approx(t)
    assert res.pvalue == pytest.approx(2 * st.t.sf(t, 3))


# ---- multiplicity ---------------------------------------------------------------------------


def test_holm_textbook_example():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 × 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 → running max
    np.testing.assert_allclose(S.holm(p), [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
    assert list(S.holm(p) < 0.05) == [True, False, False, True]
    np.testing.assert_allclose(S.holm([0.5, 0.6, 0.01]), [1.0, 1.0, 0.03])
    assert S.holm([0.2]) == pytest.approx([0.2])


def test_holm_equals_closed_testing_with_bonferroni():
    """Holm = closed testing with Bonferroni local tests: max over subsets J ∋ i of |J| min p_J."""
    rng = np.random.default_rng(9)
    for _ in range(20):
        p = rng.uniform(0, 0.3, size=5) ** 2
        brute = [min(1.0, max(len(J) * min(p[j] for j in J)
                              for r in range(1, 6) for J in itertools.combinations(range(5), r)
                              if i in J)) for i in range(5)]
        np.testing.assert_allclose(S.holm(p), brute, rtol=1e-12)
        assert np.all(S.bh(p) <= S.holm(p) + 1e-15)  # BH is never more conservative


def test_bh_is_scipy():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted × 4/rank: 0.02, 0.02, 0.04, 0.04 → running min from the top
    np.testing.assert_allclose(S.bh(p), [0.02, 0.04, 0.04, 0.02])


# ---- rules and verdicts ---------------------------------------------------------------------


RULE = Rule("T", "a test claim", "a − b", threshold=0.1)


@pytest.mark.parametrize("ci, p, verdict", [
    ((0.2, 0.15, 0.25), 0.01, Verdict.REPRODUCED),
    ((0.12, 0.05, 0.2), 0.01, Verdict.PARTLY),        # CI > 0 but reaches below 0.1
    ((0.05, 0.02, 0.08), 0.01, Verdict.NOT),          # effect shown, and shown smaller than τ
    ((0.2, 0.15, 0.25), 0.2, Verdict.NOT),            # CI fine, corrected p not significant
    ((0.02, -0.05, 0.1), 0.3, Verdict.NOT),           # CI covers 0
    ((-0.2, -0.25, -0.15), 0.01, Verdict.REFUTED),    # opposite effect
    ((-0.2, -0.25, -0.15), 0.2, Verdict.NOT),         # opposite but not significant
    ((float("nan"),) * 3, 0.01, Verdict.NOT),
])
def test_every_verdict_reachable(ci, p, verdict):
    interval = Interval(*ci, 0.95, 1000, "test")
    assert S.judge(RULE, interval, p) == verdict
    assert S.explain(RULE, interval, p).startswith(f"T: {verdict}")


def test_direction_less_mirrors_greater():
    rule = Rule("L", "a drop", "a − b", threshold=0.1, direction="less")
    assert S.judge(rule, Interval(-0.2, -0.25, -0.15, 0.95, 1, "t"), 0.01) == "reproduced"
    assert S.judge(rule, Interval(0.2, 0.15, 0.25, 0.95, 1, "t"), 0.01) == "refuted"


def test_identity_rules():
    rule = S.RULES["C1-twirl"]
    assert S.judge(rule, Interval.exact(3e-14, "max")) == Verdict.REPRODUCED
    assert S.judge(rule, Interval.exact(2e-8, "max")) == Verdict.NOT
    assert S.judge(rule, Interval.exact(0.3, "max")) == Verdict.REFUTED
    assert S.judge(rule, Interval.exact(float("nan"), "max")) == Verdict.NOT


def test_registry_covers_the_claims():
    ids = set(S.RULES)
    assert {"C1-twirl", "C2-sectors", "C3-reliance", "C3-transfer", "C3-ring-means",
            "C4-transfer", "C4-white-box", "C4-adaptive", "C4-black-box", "headline"} <= ids
    for claim, rule in S.RULES.items():
        assert rule.claim == claim and "our choice" in rule.source and rule.description
        if claim.startswith(("C1", "C2")):
            assert rule.kind == "identity" and rule.threshold == 1e-10


def test_judge_family_applies_holm():
    good = Interval(0.2, 0.15, 0.25, 0.95, 1000, "t")
    results = {"C4-transfer": (good, 0.01), "C4-adaptive": (good, 0.03),
               "C1-twirl": (Interval.exact(1e-12, "max"), None)}
    verdicts = S.judge_family(results)
    # Holm over the two effect claims: 0.02 and 0.03 < 0.05
    assert verdicts == {"C4-transfer": "reproduced", "C4-adaptive": "reproduced",
                        "C1-twirl": "reproduced"}
    results["C3-transfer"] = (good, 0.04)  # now 0.03, 0.06, 0.06
    assert S.judge_family(results)["C4-adaptive"] == "not reproduced"
    with pytest.raises(ValueError, match="no rule for claim.*'C9'"):
        S.judge_family({"C9": (good, 0.01)})


def test_sensitivity_grid():
    ci = Interval(0.12, 0.06, 0.18, 0.95, 1000, "t")
    grid = S.sensitivity(S.RULES["C4-transfer"], ci, 0.01, [0.0, 0.05, 0.1, 0.2])
    # at τ = 0.2 the whole CI lies below the claimed size: not reproduced
    assert grid == [(0.0, "reproduced"), (0.05, "reproduced"), (0.1, "partly reproduced"),
                    (0.2, "not reproduced")]
    ident = S.sensitivity(S.RULES["C2-sectors"], Interval.exact(1e-9, "m"), None, [1e-10, 1e-8])
    assert [v for _, v in ident] == ["not reproduced", "reproduced"]


# ---- bad input ------------------------------------------------------------------------------


def test_bad_input_messages():
    x = np.ones((3, 10), dtype=int)
    with pytest.raises(ValueError, match=r"same shape, got a \(3, 10\) and b \(3, 11\)"):
        S.bootstrap_difference(x, np.ones((3, 11)))
    with pytest.raises(ValueError, match=r"empty \(shape \(0, 10\)\)"):
        S.bootstrap_accuracy(np.ones((0, 10)))
    with pytest.raises(ValueError, match=r"shape \(n_seeds, n_images\), got shape \(10,\)"):
        S.bootstrap_accuracy(np.ones(10))
    with pytest.raises(ValueError, match=r"level must lie in \(0, 1\), got 95"):
        S.bootstrap_accuracy(x, level=95)
    with pytest.raises(ValueError, match=r"level must lie in \(0, 1\), got 1.0"):
        S.t_interval(x, level=1.0)
    with pytest.raises(ValueError, match=r"binary .* got value 0.5 at index \(1, 2\)"):
        S.permutation_test_seeds(x, np.where(np.arange(30).reshape(3, 10) == 12, 0.5, 1))
    with pytest.raises(ValueError, match="got value nan"):
        S.mcnemar_exact(np.array([1.0, np.nan]), np.array([1, 0]))
    with pytest.raises(ValueError, match="needs ≥ 2 seeds, got n_seeds=1"):
        S.t_interval(x[:1])
    with pytest.raises(ValueError, match="n_resamples must be ≥ 1, got 0"):
        S.bootstrap_difference(x, x, n_resamples=0)
    with pytest.raises(ValueError, match="alternative must be .* got 'bigger'"):
        S.paired_t_test(x, x, alternative="bigger")
    with pytest.raises(ValueError, match=r"p-values must lie in \[0, 1\], got 1.5"):
        S.holm([0.1, 1.5])
    with pytest.raises(ValueError, match="non-empty"):
        S.holm([])
    with pytest.raises(ValueError, match="T: threshold must be finite and ≥ 0, got -0.1"):
        Rule("T", "d", "s", threshold=-0.1)
    with pytest.raises(ValueError, match="T: alpha must lie in"):
        Rule("T", "d", "s", threshold=0.1, alpha=5)
    with pytest.raises(ValueError, match=r"T: an effect rule needs a corrected p in \[0, 1\], "
                                         r"got None"):
        S.judge(RULE, Interval(0.1, 0, 0.2, 0.95, 1, "t"))


def test_floor_note_accounts_for_holm():
    assert S.floor_note(10, 1) == "with 10 seed(s) the sign-flip test cannot go below p = 0.00195"
    # 2/2^5 = 0.0625: even alone, not significant
    assert S.floor_note(5, 1).endswith("so no verdict of this family can be significant")
    # 2/2^6 = 0.031 alone, but 0.125 after Holm over 4 tests: the raw floor would mislead
    four = S.floor_note(6, 4)
    assert "(0.125 after Holm over 4 tests)" in four and four.endswith("can be significant")
    assert not S.floor_note(6, 1).endswith("can be significant")
