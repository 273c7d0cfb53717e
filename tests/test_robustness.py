"""equivar.studies.robustness and equivar.studies.transfer: bookkeeping of the chapter studies."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from equivar import settings
from equivar.learn.train import ModelSpec
from equivar.studies import robustness, transfer
from equivar.studies.reliance import encode_classes


# the field values' full grid (every α, every control sector); the profiles use parts of it
FULL_GRID = dict(alphas=(1.0, 0.5, 0.25, 0.1, 0.0), control_sectors=(1, 2, 3, 4),
                 threat_alphas=(0.25, 0.0))


def test_model_grid_reuses_chapter_two_models():
    s = settings.SuppressionSettings.for_profile("default", **FULL_GRID)
    grid = robustness.model_grid(s, "fashion-mnist", "sector", 1, resolve=False)
    labels = [label for label, _, _ in grid]
    assert labels[0] == "none"
    assert grid[0][2] == ModelSpec.from_settings(s.model_settings(), "fashion-mnist", "sector", 1)
    # resolved: the selected model of chapters 2-3 (smoke-sized selection here)
    from equivar.studies import ladder

    smoke = settings.SuppressionSettings.for_profile("smoke")
    resolved = robustness.model_grid(smoke, "digits", "sector", 0)
    assert resolved[0][2] == ladder.model_spec(smoke.model_settings(), "digits", "sector", 0)
    assert [m[0] for m in resolved] == [m[0] for m in robustness.model_grid(
        smoke, "digits", "sector", 0, resolve=False)]
    assert {"k=0 × 0.5", "k=0 × 0", "project out k=3", "adversarial training"} <= set(labels)
    adv = dict((label, spec) for label, _, spec in grid)["adversarial training"]
    assert adv.augment == "pgd" and adv.augment_surrogate[0] == "cnn"


def test_settings_share_training_and_attacks():
    s = settings.SuppressionSettings.for_profile("paper", seed=2)
    assert s.n_seeds == 10   # the paper profile: ≥ 10 seeds (issue 13)
    assert s.model_settings() == settings.RelianceSettings.for_profile("paper", seed=2,
                                                                        n_seeds=s.n_seeds)
    t = s.transfer_settings()
    assert t.seed == 2 and t.n_seeds == s.n_seeds and t.datasets == s.datasets


FAKE_MODELS = [("none", "k=0 down-weighting", 0, 0.8, 0.4),
               ("k=0 × 0", "k=0 down-weighting", 0, 0.7, 0.6),
               ("project out k=1", "control sector", 1, 0.75, 0.41),
               ("Gaussian-noise training", "reference defence", 0, 0.8, 0.45),
               ("adversarial training", "reference defence", 0, 0.78, 0.5)]


def fake_results(models=FAKE_MODELS, seeds=(0, 1)):
    """Chapter 4 results of ``models`` (label, group, k, clean, robust; accuracies are numbers
    or functions of the seed), robust ± 0.02 for the two surrogates."""
    value = lambda v, seed: v(seed) if callable(v) else v
    rows_clean, rows_robust = [], []
    for seed in seeds:
        for model, group, k, clean, robust in models:
            clean, robust = value(clean, seed), value(robust, seed)
            tag = {"dataset": "d", "seed": seed, "variant": "sector", "model": model,
                   "group": group, "k": k, "alpha": 0.0 if "×" in model or "out" in model else 1.0}
            rows_clean.append({**tag, "accuracy": clean})
            for source in ("cnn", "mlp"):
                rows_robust.append({**tag, "source": source, "attack": "pgd", "eps": 0.1,
                                    "accuracy": robust + (0.02 if source == "cnn" else -0.02)})
    # per-image predictions with the same accuracies: the first round(100 acc) images right
    labels = np.arange(100) % 10
    preds = []
    for r in rows_clean:
        tag = {k: r[k] for k in ("dataset", "seed", "variant", "model")}
        for cond, acc in [("clean", r["accuracy"])] + [
                (f"pgd from {q['source']} at 0.1", q["accuracy"]) for q in rows_robust
                if all(q[k] == r[k] for k in tag)]:
            right = np.arange(100) < round(100 * acc)
            preds.append({**tag, "condition": cond, "labels": encode_classes(labels),
                          "predicted": encode_classes(np.where(right, labels, (labels + 1) % 10))})
    return {"clean": pd.DataFrame(rows_clean), "robust": pd.DataFrame(rows_robust),
            "predictions": pd.DataFrame(preds)}


def test_conclusion_table_arithmetic():
    table = robustness.conclusion_table(fake_results(), 0.1)
    row = table.iloc[0]
    g = "k=0 removed"
    assert row[g + ": robust change"] == pytest.approx(0.2)
    assert row[g + ": clean change"] == pytest.approx(-0.1)
    # drop: none 0.8 - 0.4 = 0.4; k=0 removed 0.7 - 0.6 = 0.1
    assert row["drop none"] == pytest.approx(0.4)
    assert row[g + ": drop change"] == pytest.approx(-0.3)
    assert row["project out k=1: drop change"] == pytest.approx((0.75 - 0.41) - 0.4)
    assert row["adversarial training: drop change"] == pytest.approx((0.78 - 0.5) - 0.4)
    tests = robustness.drop_tests(fake_results(), table, 0.1, n_resamples=500)
    k0 = tests.set_index("comparison").loc[g]
    # per image: the drop counts images fooled by *any* surrogate (robust 0.38 and 0.58)
    assert k0["drop change"] == pytest.approx((0.7 - 0.58) - (0.8 - 0.38))
    assert (tests["p (Holm)"] >= tests["p (seeds, raw)"]).all()
    text = robustness.conclusion_markdown(table, tests, 0.1,
                                          settings.SuppressionSettings.for_profile("smoke"))
    # two seeds: the sign-flip test cannot reach p < 0.05, so nothing counts as shrunk
    assert "in 0 of 1" in text and "+0.200" in text and "-0.300" in text


@pytest.mark.parametrize("k2_beaten", [False, True])
def test_k0_must_beat_every_control_sector(k2_beaten):
    """No control is picked on the test images: k = 0 counts as specific only if it beats each
    one. Control k=1 has the smaller mean drop (it would be 'the best control'), and k = 0
    beats it on every seed; control k=2 has a larger mean drop but, seed by seed, half the time
    a smaller one than k = 0, so k = 0 does not beat it: not specific. With k=2 beaten as well
    (constant drop), it is."""
    # drops (clean − worst surrogate): none 0.42, k=0 0.12, k=1 0.22 on every seed; k=2 0.00
    # and 0.47 on alternate seeds (mean over surrogates: −0.02 and 0.45, mean 0.215 > 0.2)
    k2 = (lambda seed: 0.72 if seed % 2 == 0 else 0.25) if not k2_beaten else 0.4
    models = [("none", "k=0 down-weighting", 0, 0.8, 0.4),
              ("k=0 × 0", "k=0 down-weighting", 0, 0.7, 0.6),
              ("project out k=1", "control sector", 1, 0.7, 0.5),
              ("project out k=2", "control sector", 2, 0.7, k2),
              ("Gaussian-noise training", "reference defence", 0, 0.8, 0.45),
              ("adversarial training", "reference defence", 0, 0.78, 0.5)]
    results = fake_results(models, seeds=range(10))
    table = robustness.conclusion_table(results, 0.1)
    row = table.iloc[0]
    changes = {c: row[f"project out k={c}: drop change"] for c in (1, 2)}
    assert changes[1] == pytest.approx(0.2 - 0.4)
    if not k2_beaten:
        assert changes[1] < changes[2]   # k=1 would have been picked as "the best control"
    assert not any("best" in column for column in table.columns)
    tests = robustness.drop_tests(results, table, 0.1, n_resamples=2000)
    by = tests.set_index("comparison")
    assert {"k=0 removed", "project out k=1", "project out k=2", "noise training",
            "adversarial training", "k=0 removed vs project out k=1",
            "k=0 removed vs project out k=2"} == set(by.index)
    assert by.loc["k=0 removed vs project out k=2", "against"] == "project out k=2"
    # one Holm family over every comparison, both controls included
    assert np.allclose(by["p (Holm)"], robustness.stats.holm(by["p (seeds, raw)"]))
    vs1, vs2 = by.loc["k=0 removed vs project out k=1"], by.loc["k=0 removed vs project out k=2"]
    assert vs1["drop change"] == pytest.approx(0.12 - 0.22)
    assert vs1["high"] < 0 and vs1["p (Holm)"] < 0.05          # k=1 beaten on every seed
    assert (vs2["high"] < 0 and vs2["p (Holm)"] < 0.05) == k2_beaten
    text = robustness.conclusion_markdown(table, tests, 0.1,
                                          settings.SuppressionSettings.for_profile("smoke"))
    assert "in 1 of 1" in text     # the drop shrank against the unsuppressed model
    assert f"in {int(k2_beaten)} of these" in text
    assert "project out k=1 -0.100" in text and "project out k=2" in text


def test_sector_effects():
    effects = robustness.sector_effects(fake_results(), 0.1)
    robust = effects[(effects["quantity"] == "robust")].set_index("k")["mean"]
    assert robust[0] == pytest.approx(0.2) and robust[1] == pytest.approx(0.01)


def test_success_rate():
    from equivar.adversary import attacks

    labels = np.array([0, 1, 2, 3])
    assert attacks.success_rate([0, 1, 2, 0], [0, 2, 2, 0], labels) == pytest.approx(1 / 3)
    assert np.isnan(attacks.success_rate([1, 0, 0, 0], [0, 0, 0, 0], labels))


# ----------------------------------------------------------------- chapter 4's threat models

from equivar.studies import threats  # noqa: E402


def test_threat_grid_attacks_plain_suppressed_and_defended_models():
    s = settings.SuppressionSettings.for_profile("default", **FULL_GRID)
    labels = [label for label, _, _ in robustness.threat_grid(s, "digits", "west", 0)]
    assert labels == ["none", "k=0 × 0.25", "k=0 × 0", "Gaussian-noise training",
                      "adversarial training"]
    conv = [label for label, _, _ in robustness.convergence_grid(s, "digits", "west", 0)]
    assert conv == ["none", "k=0 × 0"]


def test_threat_epsilons_extend_chapter_three():
    s = settings.SuppressionSettings.for_profile("default")
    eps = threats.epsilons(s)
    assert eps[0] == 0 and list(eps) == sorted(eps) and eps[-2:] == (0.5, 1.0)
    assert set(s.transfer_settings().epsilons) <= set(eps)


@pytest.mark.parametrize("kwargs,match", [
    (dict(threat_alphas=(0.3,)), r"threat_alphas may only contain \[0.0, 0.1, 0.25, 0.5\], got \[0.3\]"),
    (dict(threat_alphas=(1.0,)), "threat_alphas may only contain"),
    (dict(n_threat=10_000), "n_threat must be at most chapter 3's n_attack=400, got 10000"),
    (dict(white_box_steps=0), "white_box_steps must be at least 1"),
    (dict(square_queries=0), "square_queries must be at least 1"),
    (dict(large_epsilons=(2.0,)), r"large_epsilons must lie in \[0, 1\]"),
    (dict(convergence_steps=(10, 5)), "convergence_steps must be increasing positive"),
])
def test_threat_settings_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        settings.SuppressionSettings.for_profile("default", **{**FULL_GRID, **kwargs})


def test_units_list_the_threat_work_once_and_independently_of_the_seed_split():
    s = settings.SuppressionSettings.for_profile("smoke")
    units = robustness.units(s)
    fns = {u.fn for u in units}
    assert threats.transfer_sets in fns
    # models, attacks and step curves are resolved in the worker (selected settings)
    kinds = [u.args[4] for u in units if u.fn is robustness._grid_unit]
    assert {"models", "threats", "convergence"} <= set(kinds)
    assert kinds.count("threats") == len(robustness.threat_grid(s, "digits", "sector", 0,
                                                                resolve=False))
    whole = {u.key for u in robustness.units(
        settings.SuppressionSettings.for_profile("smoke", n_seeds=2))}
    split = {u.key for u in robustness.units(s)} | {u.key for u in robustness.units(
        settings.SuppressionSettings.for_profile("smoke", seed=1))}
    # the convergence curves are drawn on the first seed of a run only
    conv = lambda keys: {k for k in keys if "'convergence'" in k[2]}
    assert whole - conv(whole) == split - conv(split)


def test_envelope_is_the_worst_case_over_smaller_eps():
    clean = np.array([True, True, True, False])
    by_eps = {0.1: [np.array([True, False, True, True])],
              0.2: [np.array([True, True, False, True]), np.array([True, True, True, True])]}
    out = threats.envelope(by_eps, clean, [0.0, 0.1, 0.2])
    assert out.tolist() == [[True, True, True, False], [True, False, True, False],
                            [True, False, False, False]]


def fake_threat_results(n_seeds=6, n_images=40, gain=0.5):
    """Two datasets; the suppressed model is robust to transfer on ``gain`` more of the images,
    and as fragile as the plain model under every other threat model."""
    rng = np.random.default_rng(0)
    eps = (0.0, 0.1)
    correct, clean_rows = {}, []
    models = [("none", "k=0 down-weighting"), ("k=0 × 0", "k=0 down-weighting"),
              ("Gaussian-noise training", "reference defence")]
    for dataset in ("a", "b"):
        for model, group in models:
            clean_rows.extend({"dataset": dataset, "seed": s, "variant": "west", "model": model,
                               "group": group, "accuracy": 0.9} for s in range(n_seeds))
            for threat in threats.THREATS:
                arr = np.zeros((n_seeds, 2, n_images), dtype=bool)
                arr[:, 0] = rng.uniform(size=(n_seeds, n_images)) < 0.9
                robust = 0.1 + (gain if threat == "transfer" and model == "k=0 × 0" else 0)
                arr[:, 1] = arr[:, 0] & (rng.uniform(size=(n_seeds, n_images)) < robust / 0.9)
                correct[(dataset, "west", model, threat)] = arr
    return {"clean": pd.DataFrame(clean_rows), "epsilons": eps, "correct": correct}


def test_verdicts_per_threat_model():
    # 8 seeds: the smallest two-sided sign-flip p, 2/2^8, survives Holm over 5 threat models
    results = fake_threat_results(n_seeds=8)
    table = threats.verdicts(results, 0.1, n_resamples=2000).set_index("threat")
    assert list(table.index) == list(threats.THREATS)
    assert table.loc["transfer", "change"] > 0.3 and table.loc["transfer", "low"] > 0.1
    assert table.loc["transfer", "verdict"] == "reproduced"
    assert table.loc["transfer", "p (seeds)"] == pytest.approx(2 / 2 ** 8)
    for threat in ("white-box", "adaptive", "black-box"):
        assert table.loc[threat, "verdict"] == "not reproduced"
    comp = threats.comparison(results, 0.1, n_resamples=500)
    assert set(comp["model"]) == {"k=0 × 0", "Gaussian-noise training"}
    assert len(comp) == 2 * len(threats.THREATS) * 2
    text = threats.conclusion_markdown(table.reset_index(), comp, 0.1,
                                       settings.SuppressionSettings.for_profile("smoke"))
    assert "**Suppression helps only against transfer**" in text
    assert "Verdicts reproduced or partly reproduced: transfer" in text


def test_verdicts_with_one_seed_are_never_significant():
    table = threats.verdicts(fake_threat_results(n_seeds=1), 0.1, n_resamples=500)
    assert (table["p (seeds)"] == 1).all() and (table["verdict"] == "not reproduced").all()
    assert table.attrs["min p"] == 1


def test_correctness_lookup_errors():
    results = fake_threat_results(n_seeds=2)
    assert threats.correctness(results, "a", "west", "none", "white-box", 0.1).shape == (2, 40)
    with pytest.raises(ValueError, match=r"eps=0.3 is not one of the study's \[0.0, 0.1\]"):
        threats.correctness(results, "a", "west", "none", "white-box", 0.3)
    with pytest.raises(ValueError, match="no results for"):
        threats.correctness(results, "a", "west", "k=0 × 0.5", "white-box", 0.1)


def test_sanity_tables_on_a_fake_study():
    rows, attack_rows = [], []
    for model, floor in (("none", 0.0), ("k=0 × 0", 0.3)):
        for threat in threats.THREATS:
            for eps in (0.0, 0.1, 1.0):
                acc = 0.8 if eps == 0 else (0.2 if eps < 1 else floor)
                tag = {"dataset": "d", "seed": 0, "variant": "west", "model": model,
                       "group": "g", "threat": threat, "eps": eps}
                rows.append({**tag, "accuracy": acc})
                attack_rows.append({**tag, "attack": "one", "accuracy": acc})
    out = threats.sanity({"curves": pd.DataFrame(rows), "attacks": pd.DataFrame(attack_rows)})
    zero = out["zero"].set_index("model")
    assert zero.loc["none", "passed"].all() and not zero.loc["k=0 × 0", "passed"].any()
    assert len(out["zero per attack"]) == 2 * len(threats.THREATS)
    assert out["dominance"]["passed"].all()


def test_c4_scorecard_rows_round_trip(tmp_path):
    from equivar.studies import scorecard

    table = threats.verdicts(fake_threat_results(n_seeds=8), 0.1, n_resamples=500)
    rows = threats.scorecard_rows(table, 0.1)
    assert [r["claim"] for r in rows] == [threats.CLAIMS[t] for t in threats.THREATS]
    scorecard.write_verdicts(rows, "04", tmp_path)
    page = scorecard.markdown(tmp_path)
    line = [l for l in page.splitlines() if l.startswith("| C4-transfer |")][0]
    assert "**reproduced**" in line and "fig-suppression-verdicts" in line
    strong = [l for l in page.splitlines() if l.startswith("| C4-transfer-strong |")][0]
    assert scorecard.NOT_RUN not in strong


def _baseline_predictions(rng, n_seeds=8, n_images=100):
    """Per-ring centring robust at 0.6; global centring at 0.3; the plain model at 0.2."""
    rows, labels = [], rng.integers(0, 10, n_images)
    robust = {"none": 0.2, robustness.BASELINE_REFERENCE: 0.6, "global mean-centring": 0.3}
    for model, p in robust.items():
        for seed in range(n_seeds):
            for cond in ("clean", "pgd from cnn", "pgd from mlp"):
                q = 0.8 if cond == "clean" else p
                right = rng.random(n_images) < q
                rows.append({"dataset": "d", "variant": "sector", "seed": seed, "model": model,
                             "condition": cond, "labels": encode_classes(labels),
                             "predicted": encode_classes(np.where(right, labels,
                                                                  (labels + 1) % 10))})
    return {"predictions": pd.DataFrame(rows)}


def test_baseline_table_compares_with_per_ring_centring(rng):
    table = robustness.baseline_table(_baseline_predictions(rng), n_resamples=1000)
    table = table.set_index("model")
    ref = table.loc[robustness.BASELINE_REFERENCE]
    assert np.isnan(ref["robust − per-ring centring"])
    # robust means correct clean and under PGD from every surrogate: about 0.8 × 0.6² for
    # independent draws
    assert ref["robust"] == pytest.approx(0.8 * 0.36, abs=0.06)
    glob = table.loc["global mean-centring"]
    assert glob["diff high"] < 0 and glob["p (Holm)"] < 0.05
    assert glob["p (Holm)"] >= glob["p (seeds, raw)"]
    assert table.loc["none", "clean low"] < 0.8 < table.loc["none", "clean high"]


def test_baseline_grid_and_its_units():
    from equivar.studies import controls

    smoke = settings.SuppressionSettings.for_profile("smoke")
    grid = robustness.baseline_grid(smoke, "digits", "sector", 0)
    labels = [label for label, _, _ in grid]
    assert set(robustness.BASELINE_LABELS) <= set(labels)
    by = {label: (spec, pre) for label, spec, pre in grid}
    plain = by["none"][0]
    assert by["global mean-centring"][0] == plain and by["global mean-centring"][1].kind == \
        "global mean-centring"
    assert by["background thresholding"][1].threshold == smoke.threshold_baseline
    # the equal-steps defences are capped at the steps the plain model actually took
    from equivar.adversary.defences import trained_defended

    _, record = trained_defended(plain, progress=False)
    plain_steps = controls.realised_steps(record, plain.batch_size)
    assert plain_steps == record["steps"] == len(record["loss"]) * -(-record["n_train"]
                                                                     // plain.batch_size)
    for name in ("Gaussian-noise training", "adversarial training"):
        full, equal = by[name][0], by[f"{name}, equal steps"][0]
        assert full.max_steps == 0 and equal.max_steps == plain_steps
        assert equal == robustness.replace(full, epochs=equal.epochs, max_steps=plain_steps)
        assert controls.steps(2 * record["n_train"], equal.batch_size, equal.epochs) >= \
            plain_steps   # enough epochs to reach the cap
    names = [u.label for u in robustness.units(smoke)]
    assert sum(n.startswith("baseline digits/sector/seed 0") for n in names) == 4


def test_threat_correctness_table_round_trips():
    results = fake_threat_results(n_seeds=2)
    table = threats.correctness_table(results)
    key = next(iter(results["correct"]))
    arr = results["correct"][key]
    part = table[(table["dataset"] == key[0]) & (table["variant"] == key[1])
                 & (table["model"] == key[2]) & (table["threat"] == key[3])]
    assert len(part) == arr.shape[0] * arr.shape[1]
    row = part[(part["seed index"] == 1) & (part["eps"] == results["epsilons"][-1])].iloc[0]
    assert np.array_equal(np.array([c == "1" for c in row["correct"]]), arr[1, -1])
