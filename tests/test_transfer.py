"""Chapter 3: the energy-matched control of the k = 0 removal, and the verdicts on per-image
predictions (equivar.studies.transfer)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from equivar import data
from equivar.adversary import attacks
from equivar.core import sectors
from equivar.settings import SAMPLING, TransferSettings
from equivar.studies import transfer
from equivar.studies.reliance import INVARIANT, encode_classes


def _results(rng, acc, n_seeds=10, n_images=150, eps=0.1):
    """Fake study results: ``acc[condition]`` is the chance an image is right under it
    (conditions clean, noise, attacked, no k0, matched; matched defaults to attacked). Every
    condition draws its own images, except that one PGD part fools the same images from
    every surrogate (transfer sets are highly correlated)."""
    rows, labels = [], rng.integers(0, 10, n_images)
    acc = {"matched": acc["attacked"], **acc}
    for target in ("west", "sector"):
        for seed in range(n_seeds):
            pgd = {}

            def add(perturbation, e, part, p):
                right = pgd.setdefault(part, rng.random(n_images) < p) \
                    if perturbation.startswith("pgd") else rng.random(n_images) < p
                rows.append({"dataset": "d", "seed": seed, "target": target,
                             "perturbation": perturbation, "eps": e, "part": part,
                             "predicted": encode_classes(np.where(right, labels,
                                                                  (labels + 1) % 10)),
                             "labels": encode_classes(labels)})
            add("clean", 0.0, "full", acc["clean"])
            add("sign noise", eps, "full", acc["noise"])
            for source in ("cnn", "mlp"):
                add(f"pgd from {source}", eps, "full", acc["attacked"])
                add(f"pgd from {source}", eps, "k>=1 only", acc["no k0"])
                add(f"pgd from {source}", eps, transfer.ENERGY_MATCHED, acc["matched"])
    return {"predictions": pd.DataFrame(rows),
            "surrogates": pd.DataFrame({"surrogate": ["cnn", "mlp"]})}


# ------------------------------------------------------------ the energy-matched control


def _grid_perturbation(rng, n=6):
    """Clean images and perturbed ones with a large ring-constant part (as clipping on a dark
    background makes), in [0, 1]."""
    images = rng.random((n, 16, 16)) * 0.5
    ring_shift = 0.2 * rng.random((n, 1, 1)) * (np.hypot(*np.mgrid[-7.5:8.5, -7.5:8.5]) < 5)
    return images, np.clip(images + ring_shift + 0.05 * rng.standard_normal(images.shape), 0, 1)


def test_energy_matched_removal_removes_exactly_the_k0_energy_share(rng):
    images, perturbed = _grid_perturbation(rng)
    g0, delta = attacks.grid_perturbation(images, perturbed)
    k0 = sectors.keep_sectors(delta, [0])
    norm2 = lambda x: (x ** 2).sum((-2, -1))
    fraction = transfer.k0_energy_fraction(delta)
    assert np.allclose(fraction, norm2(k0) / norm2(delta), rtol=0, atol=1e-12)
    assert np.all((fraction > 0.05) & (fraction < 0.95))   # a case where the control matters
    matched = transfer.energy_matched_removal(images, perturbed, np.random.default_rng(3)) - g0
    without_k0 = attacks.restricted(images, perturbed, range(1, SAMPLING.n_angles)) - g0
    # the energy left is that of δ with its k = 0 part removed; what is removed is ‖δ₀‖²
    assert np.allclose(norm2(matched), norm2(without_k0), rtol=0, atol=1e-10)
    assert np.allclose(norm2(delta) - norm2(matched), norm2(k0), rtol=0, atol=1e-10)
    # ... from no particular sector: the k = 0 removal zeroes the ring means, the control
    # shrinks them as every other direction (a random projection keeps about (1 - f)² of a
    # subspace's energy plus a spill-over; 0.1 (1 - f) is far below both)
    assert np.all(norm2(sectors.keep_sectors(without_k0, [0])) < 1e-20)
    assert np.all(norm2(sectors.keep_sectors(matched, [0])) > 0.1 * (1 - fraction) * norm2(k0))
    assert not np.allclose(matched, without_k0, atol=1e-3)
    # deterministic in the generator, and a zero perturbation stays zero
    again = transfer.energy_matched_removal(images, perturbed, np.random.default_rng(3)) - g0
    assert np.array_equal(matched, again)
    assert transfer.k0_energy_fraction(np.zeros((1, 16, 8)))[0] == 0.0
    assert np.array_equal(transfer.energy_matched_removal(images, images,
                                                          np.random.default_rng(0)), g0)


def test_study_records_the_energy_matched_part_for_each_invariant_target():
    settings = TransferSettings.for_profile("smoke")
    res = transfer.study(settings, progress=False)
    images, labels = transfer.attacked_images(settings, "digits")
    r, p = res["restricted"], res["predictions"]
    for target in INVARIANT:
        for source in settings.surrogates:
            ok = transfer.correctness(p, "digits", target, f"pgd from {source}",
                                      settings.reference_eps, transfer.ENERGY_MATCHED)
            assert ok.shape == (settings.n_seeds, len(labels))
            row = r[(r["target"] == target) & (r["source"] == source) & (r["attack"] == "pgd")
                    & np.isclose(r["eps"], settings.reference_eps)
                    & (r["part"] == transfer.ENERGY_MATCHED)]
            assert row["accuracy"].item() == pytest.approx(ok.mean())
        # sign noise gets the same control
        assert not r[(r["target"] == target) & (r["source"] == "sign noise")
                     & (r["part"] == transfer.ENERGY_MATCHED)].empty
    # the verdicts and the per-dataset table run on it
    family, table = transfer.verdicts(res, settings.reference_eps, n_resamples=200)
    assert {"ring-mean effect vs energy-matched", "vs energy-matched low",
            "vs energy-matched high", transfer.ENERGY_MATCHED} <= set(table.columns)
    text = transfer.verdict_markdown(family, table, settings.reference_eps, settings)
    assert "energy-matched" in text and "raw" in text


# ---------------------------------------------------------------------------- verdicts


def test_verdicts_reproduce_a_strong_transfer_through_the_ring_means(rng):
    res = _results(rng, {"clean": 0.9, "noise": 0.85, "attacked": 0.5, "no k0": 0.85,
                         "matched": 0.55})
    family, table = transfer.verdicts(res, 0.1, n_resamples=2000)
    by = {r["claim"]: r for r in family}
    assert list(by) == list(transfer.FAMILY)
    assert by["C3-transfer"]["verdict"] == "reproduced"
    assert by["headline"]["verdict"] == "reproduced"
    assert by["C3-ring-means"]["verdict"] == "reproduced"
    # the attacker picks the worse surrogate per image: both must be survived
    pred = res["predictions"]
    both = transfer.transferred(pred, "d", "west", ["cnn", "mlp"], 0.1)
    one = [transfer.correctness(pred, "d", "west", f"pgd from {s}", 0.1) for s in ("cnn", "mlp")]
    assert np.array_equal(both, one[0] & one[1])
    assert table["transferred"].iloc[0] == pytest.approx(both.mean())
    assert by["C3-transfer"]["estimate"] == by["headline"]["estimate"]
    assert len(table) == 2 and set(table["target"]) == {"west", "sector"}
    # the drop beyond same-budget sign noise: noise 0.85 against attacked 0.5
    west = table[table["target"] == "west"].iloc[0]
    assert west["drop beyond noise"] == pytest.approx(west["sign noise"] - west["transferred"])
    assert west["beyond low"] > 0.2 and west["beyond low"] <= west["drop beyond noise"] <= \
        west["beyond high"]


def test_verdicts_refute_when_removing_k0_makes_it_worse(rng):
    res = _results(rng, {"clean": 0.9, "noise": 0.9, "attacked": 0.7, "no k0": 0.4,
                         "matched": 0.7})
    by = {r["claim"]: r for r in transfer.verdicts(res, 0.1, n_resamples=2000)[0]}
    assert by["C3-ring-means"]["verdict"] == "refuted"


def test_ring_means_are_judged_against_the_energy_matched_removal(rng):
    # removing k = 0 helps a lot against the full perturbation (raw effect 0.35) but no more
    # than removing the same energy at random: "less perturbation", not "the ring means"
    res = _results(rng, {"clean": 0.9, "noise": 0.85, "attacked": 0.5, "no k0": 0.85,
                         "matched": 0.85})
    family, table = transfer.verdicts(res, 0.1, n_resamples=2000)
    by = {r["claim"]: r for r in family}
    pred = res["predictions"]
    pooled = {part: np.concatenate([transfer.transferred(pred, "d", t, ["cnn", "mlp"], 0.1, part)
                                    for t in ("west", "sector")], axis=1)
              for part in ("full", "k>=1 only", transfer.ENERGY_MATCHED)}
    controlled = pooled["k>=1 only"].mean() - pooled[transfer.ENERGY_MATCHED].mean()
    raw = pooled["k>=1 only"].mean() - pooled["full"].mean()
    assert raw > 0.25 and abs(controlled) < 0.05
    assert by["C3-ring-means"]["estimate"] == pytest.approx(controlled, abs=1e-12)
    assert by["C3-ring-means"]["verdict"] == "not reproduced"
    # the table keeps the raw effect and gives the controlled one beside it, per target
    for _, row in table.iterrows():
        part = lambda name: transfer.transferred(pred, "d", row["target"], ["cnn", "mlp"], 0.1,
                                                 name).mean()
        assert row["ring-mean effect"] == pytest.approx(part("k>=1 only") - part("full"))
        assert row["ring-mean effect vs energy-matched"] == pytest.approx(
            part("k>=1 only") - part(transfer.ENERGY_MATCHED))
        assert row["effect low"] > 0.2
        assert row["vs energy-matched low"] < 0 < row["vs energy-matched high"]
    # and the same data with the control left untouched by the removal is judged reproduced
    res = _results(np.random.default_rng(7), {"clean": 0.9, "noise": 0.85, "attacked": 0.5,
                                             "no k0": 0.85, "matched": 0.5})
    assert {r["claim"]: r for r in transfer.verdicts(res, 0.1, n_resamples=2000)[0]}[
        "C3-ring-means"]["verdict"] == "reproduced"


def test_independent_arms_of_the_same_rate_are_not_reproduced_and_a_planted_drop_is(rng):
    # every arm its own draws at the same rate: the differences are sampling noise only
    res = _results(rng, {"clean": 0.8, "noise": 0.8, "attacked": 0.8, "no k0": 0.8,
                         "matched": 0.8})
    pred = res["predictions"]
    clean = transfer.correctness(pred, "d", "west", "clean", 0.0)
    assert not np.array_equal(clean, transfer.correctness(pred, "d", "west", "pgd from cnn", 0.1))
    family, table = transfer.verdicts(res, 0.1, n_resamples=2000)
    for row in family:
        assert row["low"] < 0 < row["high"], row["claim"]
        assert abs(row["estimate"]) < 0.05 and row["p_holm"] > 0.05, row["claim"]
        assert row["verdict"] == "not reproduced", row["claim"]
    # the same construction with a planted transfer drop of 0.2 (beyond the 0.1 headline)
    res = _results(rng, {"clean": 0.8, "noise": 0.8, "attacked": 0.6, "no k0": 0.6,
                         "matched": 0.6})
    by = {r["claim"]: r for r in transfer.verdicts(res, 0.1, n_resamples=2000)[0]}
    assert by["C3-transfer"]["verdict"] == "reproduced"
    assert by["headline"]["verdict"] == "reproduced"
    assert by["C3-transfer"]["low"] > 0.1
    assert by["C3-ring-means"]["verdict"] == "not reproduced"


def test_correctness_lookup_names_what_is_missing(rng):
    res = _results(rng, {"clean": 0.9, "noise": 0.9, "attacked": 0.5, "no k0": 0.8},
                   n_seeds=2, n_images=10)
    ok = transfer.correctness(res["predictions"], "d", "west", "clean", 0.0)
    assert ok.shape == (2, 10)
    with pytest.raises(ValueError, match="no predictions for west on d under 'fgsm from cnn'"):
        transfer.correctness(res["predictions"], "d", "west", "fgsm from cnn", 0.1)
