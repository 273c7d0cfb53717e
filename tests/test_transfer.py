"""Chapter 3's verdicts on per-image predictions (equivar.studies.transfer.verdicts)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from equivar.studies import transfer
from equivar.studies.reliance import encode_classes


def _results(rng, acc, n_seeds=10, n_images=150, eps=0.1):
    """Fake study results: ``acc[condition]`` is the chance an image is right under it."""
    rows, labels = [], rng.integers(0, 10, n_images)
    for target in ("west", "sector"):
        for seed in range(n_seeds):
            draws = {}

            def add(perturbation, e, part, p):
                # the same images fool every surrogate (transfer sets are highly correlated)
                right = draws.setdefault((part, p), rng.random(n_images) < p)
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
    return {"predictions": pd.DataFrame(rows),
            "surrogates": pd.DataFrame({"surrogate": ["cnn", "mlp"]})}


def test_verdicts_reproduce_a_strong_transfer_through_the_ring_means(rng):
    res = _results(rng, {"clean": 0.9, "noise": 0.85, "attacked": 0.5, "no k0": 0.85})
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
    res = _results(rng, {"clean": 0.9, "noise": 0.9, "attacked": 0.7, "no k0": 0.4})
    by = {r["claim"]: r for r in transfer.verdicts(res, 0.1, n_resamples=2000)[0]}
    assert by["C3-ring-means"]["verdict"] == "refuted"


def test_no_attack_effect_is_not_reproduced(rng):
    res = _results(rng, {"clean": 0.8, "noise": 0.8, "attacked": 0.8, "no k0": 0.8})
    by = {r["claim"]: r for r in transfer.verdicts(res, 0.1, n_resamples=2000)[0]}
    assert by["C3-transfer"]["verdict"] == "not reproduced"
    assert by["headline"]["verdict"] == "not reproduced"


def test_correctness_lookup_names_what_is_missing(rng):
    res = _results(rng, {"clean": 0.9, "noise": 0.9, "attacked": 0.5, "no k0": 0.8},
                   n_seeds=2, n_images=10)
    ok = transfer.correctness(res["predictions"], "d", "west", "clean", 0.0)
    assert ok.shape == (2, 10)
    with pytest.raises(ValueError, match="no predictions for west on d under 'fgsm from cnn'"):
        transfer.correctness(res["predictions"], "d", "west", "fgsm from cnn", 0.1)
