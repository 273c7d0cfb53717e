"""equivar.studies.baselines: selection on validation, per-image predictions that agree with the
models, worst-case envelopes, white-box at least as strong as transfer, chapter 3's k = 0 split."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from equivar.learn import classical
from equivar.learn.surrogates import predict_images
from equivar.settings import BaselineSettings
from equivar.studies import baselines, transfer


@pytest.fixture(scope="module")
def settings():
    return BaselineSettings.for_profile("smoke", baselines=("sector-logistic", "ring-mlp",
                                                           "p4-cnn"))


@pytest.fixture(scope="module")
def results(settings):
    return baselines.study(settings, progress=False)


# ----------------------------------------------------------------- selection

def test_configurations_are_a_seeded_sample_of_the_grid(settings):
    for kind in ("sector-logistic", "sector-mlp", "p4-cnn"):
        configs = baselines.configurations(settings, kind)
        assert len(configs) == (settings.cnn_budget if kind == "p4-cnn" else settings.budget)
        assert configs == baselines.configurations(settings, kind)
        for c in configs:
            assert c["lr"] in settings.lrs and c["weight_decay"] in settings.weight_decays
    assert {c["width"] for c in baselines.configurations(settings, "sector-logistic")} == {0}
    assert {c["width"] for c in baselines.configurations(settings, "p4-cnn")} \
        <= set(settings.cnn_widths)
    big = BaselineSettings.for_profile("smoke", budget=100)
    assert len(baselines.configurations(big, "sector-mlp")) == \
        len(big.lrs) * len(big.weight_decays) * len(big.mlp_widths)


def test_selection_chooses_the_best_validation_accuracy(settings):
    table, chosen = baselines.selection(settings, "digits", "ring-mlp")
    assert table["chosen"].sum() == 1
    best = table[table["chosen"]].iloc[0]
    assert best["valid_accuracy"] == table["valid_accuracy"].max()
    assert chosen == {k: best[k] for k in ("lr", "weight_decay", "width")}


def test_selection_never_reads_the_test_split(settings, monkeypatch):
    from equivar import data

    real = data.load

    def guarded(name, split, *args, **kwargs):
        if split == "test":
            raise AssertionError("model selection loaded the test split")
        return real(name, split, *args, **kwargs)

    monkeypatch.setattr(data, "load", guarded)
    baselines.selection(settings, "digits", "sector-logistic")


# ----------------------------------------------------------------- the study's tables

def test_predictions_are_tidy_and_per_image(results, settings):
    p = results["predictions"]
    assert set(p["target"]) == set(settings.baselines) | set(settings.quantum)
    assert (p["correct"] == (p["prediction"] == p["label"])).all()
    n_attack = settings.transfer_settings().n_attack
    clean = p[p["threat"] == "clean"]
    assert (clean.groupby(["target", "seed"]).size() == n_attack).all()
    wb = p[p["threat"] == "white-box"]
    assert wb["image"].max() + 1 == settings.n_white_box
    assert set(wb["attack"]) == set(baselines.WHITE_BOX)


def test_clean_predictions_are_the_models_own(results, settings):
    images, labels = transfer.attacked_images(settings.transfer_settings(), "digits")
    _, chosen = baselines.selection(settings, "digits", "sector-logistic")
    model, _ = classical.trained_baseline(baselines.spec(settings, "digits", "sector-logistic",
                                                         settings.seed, chosen))
    p = results["predictions"]
    stored = p[(p["target"] == "sector-logistic") & (p["threat"] == "clean")] \
        .sort_values("image")["prediction"].to_numpy()
    assert np.array_equal(stored, predict_images(model, images))
    assert np.array_equal(p[(p["target"] == "sector-logistic") & (p["threat"] == "clean")]
                          .sort_values("image")["label"].to_numpy(), labels)


def test_full_grid_perturbation_scores_as_the_transferred_images(results):
    # the "full" part of the sector split is the sampled adversarial grid: same accuracy as
    # the images scored through the pixels
    r, p = results["restricted"], results["predictions"]
    full = r[(r["part"] == "full") & (r["attack"] == "pgd")]
    assert len(full)
    for row in full.itertuples():
        t = p[(p["threat"] == "transfer") & (p["target"] == row.target)
              & (p["source"] == row.source) & (p["attack"] == "pgd")
              & np.isclose(p["eps"], row.eps) & (p["seed"] == row.seed)]
        assert t["correct"].mean() == pytest.approx(row.accuracy)


def test_only_ring_grid_targets_get_the_sector_split(results):
    assert set(results["restricted"]["target"]) == {"sector-logistic", "ring-mlp", "sector"}


# ----------------------------------------------------------------- correctness envelopes

def test_envelopes_are_worst_cases_over_attacks_and_smaller_budgets(results):
    p = results["predictions"]
    for target in ("sector-logistic", "p4-cnn", "sector"):
        clean = baselines.correctness(results, "digits", target, "clean", 0.0)
        previous = clean
        for eps in (0.1, 0.3):
            got = baselines.correctness(results, "digits", target, "transfer", eps)
            rows = p[(p["target"] == target) & (p["threat"] == "transfer") & (p["eps"] <= eps)]
            by_image = rows.groupby("image")["correct"].all().sort_index().to_numpy()
            assert np.array_equal(got[0], clean[0] & by_image)
            assert not (got & ~previous).any()  # never correct where a smaller ε fooled it
            previous = got
        wb = baselines.correctness(results, "digits", target, "white-box", 0.3)
        assert wb.shape[1] == p[p["threat"] == "white-box"]["image"].max() + 1
        assert not (wb & ~clean[:, :wb.shape[1]]).any()


def test_white_box_is_at_least_as_strong_as_transfer(results, settings):
    # Carlini et al.'s check, on the models that reach well above chance when clean
    n = settings.n_white_box
    for target in ("sector-logistic", "ring-mlp"):
        wb = baselines.correctness(results, "digits", target, "white-box", 0.1)
        tr = baselines.correctness(results, "digits", target, "transfer (pgd)", 0.1)[:, :n]
        assert wb.mean() <= tr.mean()
        assert baselines.correctness(results, "digits", target, "white-box", 0.3).mean() < 0.1


def test_correctness_refuses_unknown_requests(results):
    with pytest.raises(ValueError, match="threat must be one of"):
        baselines.correctness(results, "digits", "ring-mlp", "black-box", 0.1)
    with pytest.raises(ValueError, match="eps=0.07 is not one of the study's budgets"):
        baselines.correctness(results, "digits", "ring-mlp", "transfer", 0.07)
    with pytest.raises(ValueError, match="no predictions for target 'resnet'"):
        baselines.correctness(results, "digits", "resnet", "clean", 0.0)


# ----------------------------------------------------------------- summaries

def test_comparison_differences_are_target_minus_reference(results, settings):
    table = baselines.comparison(results, settings)
    ref = table[table["target"] == "sector"].iloc[0]
    for _, row in table[table["target"] != "sector"].iterrows():
        assert row["transfer − sector"] == pytest.approx(row["transfer"] - ref["transfer"])
        assert row["transfer − sector low"] <= row["transfer − sector"] \
            <= row["transfer − sector high"]
        assert row["transfer drop − sector"] == pytest.approx(row["transfer drop"]
                                                              - ref["transfer drop"])
        assert 0 <= row["transfer − sector p (McNemar)"] <= 1
    # the drop is clean minus robust accuracy (robust ⊆ clean)
    assert np.allclose(table["transfer drop"], table["clean"] - table["transfer"])
    text = baselines.conclusion_markdown(table, baselines.k0_share(results, 0.1), settings)
    assert "digits" in text and "95 % paired bootstrap" in text


def test_curves_have_cis_around_the_accuracy(results, settings):
    c = baselines.curves(results, settings)
    assert (c["low"] <= c["accuracy"] + 1e-12).all() and (c["accuracy"] <= c["high"] + 1e-12).all()
    assert set(c["threat"]) == {"transfer", "transfer (pgd)", "white-box"}


def test_k0_share_on_planted_numbers():
    # one target, one seed; clean accuracy 0.8 on 10 images; PGD: full 0.4, k=0 only 0.6,
    # k>=1 only 0.7 → shares (0.8-0.6)/0.4 = 0.5 and (0.8-0.7)/0.4 = 0.25; noise: full 0.79
    # (damage 0.01 < 0.02: no share)
    pred = pd.DataFrame({"dataset": "d", "seed": 0, "target": "t", "threat": "clean",
                         "source": "none", "attack": "none", "eps": 0.0, "image": range(10),
                         "label": 0, "prediction": [0] * 8 + [1] * 2})
    pred["correct"] = pred["prediction"] == pred["label"]
    rows = [("cnn", "pgd", "full", 0.4), ("cnn", "pgd", "k=0 only", 0.6),
            ("cnn", "pgd", "k>=1 only", 0.7), ("sign noise", "noise", "full", 0.79),
            ("sign noise", "noise", "k=0 only", 0.8), ("sign noise", "noise", "k>=1 only", 0.8)]
    restricted = pd.DataFrame([{"dataset": "d", "seed": 0, "target": "t", "source": s,
                                "attack": a, "eps": 0.1, "part": part, "accuracy": acc}
                               for s, a, part, acc in rows])
    table = baselines.k0_share({"predictions": pred, "restricted": restricted}, 0.1)
    row = table.iloc[0]
    assert row["damage (PGD)"] == pytest.approx(0.4)
    assert row["damage from k=0 part"] == pytest.approx(0.5)
    assert row["damage from k>=1 part"] == pytest.approx(0.25)
    assert np.isnan(row["noise damage from its k=0 part"])


def test_white_box_is_cached_and_seeded(settings):
    images, labels = transfer.attacked_images(settings.transfer_settings(), "digits")
    torch.manual_seed(0)
    model = classical.RingBaseline("sector-logistic", 10).eval()
    first = baselines.white_box(model, {"test": 1}, images[:8], labels[:8], (0.0, 0.1),
                                settings, seed=0)
    again = baselines.white_box(model, {"test": 1}, images[:8], labels[:8], (0.0, 0.1),
                                settings, seed=0)
    for name in baselines.WHITE_BOX:
        assert first[name].shape == (2, 8)
        assert np.array_equal(first[name][0], first["clean"])
        assert np.array_equal(first[name], again[name])


def test_the_notebooks_transfer_settings_name_the_images():
    from dataclasses import replace

    small = BaselineSettings.for_profile("smoke", baselines=("sector-logistic",), quantum=())
    ts = replace(small.transfer_settings(), n_attack=20)
    out = baselines.study(small, progress=False, transfer_settings=ts)
    p = out["predictions"]
    assert p[p["threat"] == "clean"]["image"].max() + 1 == 20
    assert p[p["threat"] == "white-box"]["image"].max() + 1 == 20  # n_white_box capped by images
    images, labels = transfer.attacked_images(ts, "digits")
    assert np.array_equal(p[p["threat"] == "clean"].sort_values("image")["label"], labels)


def test_selection_does_not_depend_on_the_seed_split(settings):
    from dataclasses import replace

    later = replace(settings, seed=3)
    assert baselines.configurations(later, "sector-mlp") == \
        baselines.configurations(settings, "sector-mlp")
    assert baselines.selection(later, "digits", "ring-mlp")[1] == \
        baselines.selection(settings, "digits", "ring-mlp")[1]


def test_units_fill_the_cache_the_study_reads(results, settings):
    from equivar import cache

    units = baselines.units(settings)
    assert {u.stage for u in units} == {0, 2}   # selections need nothing; white-box the models
    assert len([u for u in units if u.stage == 2]) == \
        settings.n_seeds * len(settings.baselines + settings.quantum)
    seen = []
    real = cache.cached

    def spy(kind, params, compute, fmt="pt"):
        result, hit = real(kind, params, compute, fmt)
        seen.append((kind, hit))
        return result, hit

    import equivar.studies.baselines as module
    module.cached = spy
    try:
        for unit in units:
            unit()
    finally:
        module.cached = real
    # the study already computed every white-box evaluation: the units find them all
    assert seen and all(hit for kind, hit in seen if kind == "threat")


def test_unknown_targets_are_refused(settings):
    with pytest.raises(ValueError, match="'resnet' is neither a baseline nor a quantum model"):
        baselines.target(settings, "digits", 0, "resnet")
