"""equivar.studies.reliance: the planted-sector validation, swap bookkeeping, attribution identity."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from equivar import data
from equivar.studies import reliance
from equivar.core import sectors
from equivar.core.model import ModelConfig, QuantumClassifier, amplitudes
from equivar.learn.train import ModelSpec, encode, predict, trained


# a small sector-resolved model that learns both planted cues
PLANTED_SPEC = ModelSpec("synthetic", "sector", seed=0, n_train=1000, epochs=6, batch_size=64,
                         lr=0.03, n_layers=4, scale=30.0)


@pytest.fixture(scope="module")
def synthetic_test():
    x, y = data.load("synthetic", "test", n=400, seed=0)
    grids, _ = encode(x)
    return grids, y


@pytest.mark.slow
def test_planted_sector_validation(synthetic_test):
    """A freshly trained sector-resolved model must name k=0 and the planted k."""
    spec = PLANTED_SPEC
    model, record = trained(spec, progress=False)
    grids, labels = synthetic_test
    assert (predict(model, amplitudes(grids)) == labels).mean() > 0.9
    check = reliance.planted_sector_check(model, grids, labels, planted_k=2, n_pairs=100)
    assert check["passed"].all(), check
    ring = check[check["pair type"] == "ring profile"].set_index("k")["follows_b"]
    angular = check[check["pair type"] == "angular"].set_index("k")["follows_b"]
    assert ring[0] > 0.9 and ring.drop(0).max() < 0.1
    assert angular[2] > 0.9 and angular.drop(2).max() < 0.1


@pytest.mark.slow
def test_planted_check_rejects_a_wrong_expectation(synthetic_test):
    """Negative control: told the pattern sits at k = 1, the check fails on real pairs."""
    spec = PLANTED_SPEC
    model, _ = trained(spec, progress=False)
    grids, labels = synthetic_test
    check = reliance.planted_sector_check(model, grids, labels, planted_k=1, n_pairs=100)
    angular = check[check["pair type"] == "angular"]
    assert (angular["n_pairs"] > 0).all()
    assert not angular["passed"].any() and set(angular["identified"]) == {2}


@pytest.mark.slow
def test_planted_k_reaches_the_data_and_the_model():
    """Data planted at k = 3 is learned and found at k = 3."""
    spec = replace(PLANTED_SPEC, planted_k=3)
    model, _ = trained(spec, progress=False)
    x, y = data.load("synthetic", "test", n=400, seed=0, planted_k=3)
    grids, _ = encode(x)
    check = reliance.planted_sector_check(model, grids, y, planted_k=3, n_pairs=100)
    assert check["passed"].all(), check


def test_pairs_are_correct_and_of_different_classes():
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    predictions = np.array([0, 1, 2, 0, 0, 1, 1, 3])
    pairs = reliance.sample_pairs(labels, predictions, 20, seed=0)
    correct = labels == predictions
    assert len(pairs) == 20
    assert correct[pairs].all() and (labels[pairs[:, 0]] != labels[pairs[:, 1]]).all()
    typed = reliance.sample_pairs(labels, predictions, 5, seed=0,
                                  same_pair_type=lambda a, b: reliance.synthetic_pair_types(a, b) == "angular")
    assert all(reliance.synthetic_pair_types(labels[a], labels[b]) == "angular" for a, b in typed)


def test_synthetic_pair_types():
    assert reliance.synthetic_pair_types(0, 1) == "ring profile"
    assert reliance.synthetic_pair_types(0, 2) == "angular"
    assert reliance.synthetic_pair_types(0, 3) == "both"


def test_attribution_sums_to_the_logits(synthetic_test, atol):
    grids, _ = synthetic_test
    model = QuantumClassifier(ModelConfig(variant="west", n_layers=3, n_classes=4), seed=1)
    table = reliance.sector_attribution(model, grids[:50])
    blocks = sectors.operator_blocks(model.observables().detach().numpy(), 4, 3)
    contrib = model.config.scale * sectors.sector_contributions(grids[:50], blocks)
    logits = model(amplitudes(grids[:50])).detach().numpy()
    assert np.abs(contrib.sum(-1) - logits).max() < atol
    assert list(table["k"]) == [0, 1, 2, 3, 4]


def test_attribution_rejects_the_baseline(synthetic_test):
    model = QuantumClassifier(ModelConfig(variant="baseline", n_layers=1, n_classes=4))
    with pytest.raises(ValueError, match="needs an invariant model"):
        reliance.sector_attribution(model, synthetic_test[0][:5])


def test_transform_accuracies_control(synthetic_test):
    grids, labels = synthetic_test
    model = QuantumClassifier(ModelConfig(variant="sector", n_layers=2, n_classes=4), seed=0)
    acc = reliance.transform_accuracies(model, grids, labels)
    assert acc["global rotation"] == acc["none"]


def test_verdict_ratios():
    transforms = pd.DataFrame([
        {"dataset": "d", "variant": "v", "seed": 0, "transform": t, "accuracy": a}
        for t, a in [("none", 0.9), ("ring means only", 0.5), ("ring means removed", 0.2),
                     ("global rotation", 0.9)]])
    follow = pd.DataFrame([{"dataset": "d", "variant": "v", "seed": 0, "k": k, "follows_b": f}
                           for k, f in [(0, 0.7), (1, 0.1), (2, 0.3)]])
    out = reliance.reliance_ratios({"transforms": transforms, "follow": follow}, {"d": 10})
    row = out.iloc[0]
    assert row["sufficiency"] == pytest.approx(0.4 / 0.8)
    assert row["necessity"] == pytest.approx(0.7 / 0.8)
    assert row["follows_k0"] == 0.7 and row["follows_best_k"] == 0.3 and row["best_k"] == 2


# ---- C3-reliance verdicts on per-image predictions ------------------------------------------

def _predictions(rng, drop_removed: float, drop_control: float, n_seeds=10, n_images=200,
                 datasets=("a", "b")):
    """A predictions table whose models lose about ``drop_*`` accuracy under each condition."""
    rows = []
    for d in datasets:
        labels = rng.integers(0, 10, n_images)
        for v in ("west", "sector"):
            for s in range(n_seeds):
                clean = np.where(rng.random(n_images) < 0.8, labels, (labels + 1) % 10)
                for cond, drop in (("none", 0.0), ("ring means removed", drop_removed),
                                   (reliance.CONTROL, drop_control)):
                    wrong = rng.random(n_images) < drop
                    pred = np.where(wrong, (labels + 3) % 10, clean)
                    rows.append({"dataset": d, "variant": v, "seed": s, "condition": cond,
                                 "predicted": reliance.encode_classes(pred),
                                 "labels": reliance.encode_classes(labels)})
    return pd.DataFrame(rows)


def test_classes_round_trip_and_correctness(rng):
    classes = rng.integers(0, 10, 50)
    assert np.array_equal(reliance.decode_classes(reliance.encode_classes(classes)), classes)
    with pytest.raises(ValueError, match="0..9"):
        reliance.encode_classes([3, 12])
    table = _predictions(rng, 0.3, 0.0, n_seeds=3, n_images=20, datasets=("a",))
    c = reliance.correctness(table, "a", "west", "none")
    assert c.shape == (3, 20) and c.dtype == bool
    with pytest.raises(ValueError, match="no predictions"):
        reliance.correctness(table, "a", "west", "shuffled")


def test_reliance_verdicts_follow_the_rule(rng):
    family, table = reliance.verdicts({"predictions": _predictions(rng, 0.4, 0.05)},
                                      n_resamples=2000)
    assert [r["claim"] for r in family] == ["C3-reliance"]
    assert family[0]["verdict"] == "reproduced" and family[0]["estimate"] > 0.2
    assert len(table) == 4 and (table["verdict"] == "reproduced").all()
    assert (table["p (Holm)"] >= table["p (seeds, raw)"]).all()
    # removing the ring means hurts no more than the energy-matched control: no reliance
    family, table = reliance.verdicts({"predictions": _predictions(rng, 0.2, 0.2)},
                                      n_resamples=2000)
    assert family[0]["verdict"] == "not reproduced"
    # a single seed can never be significant
    family, _ = reliance.verdicts({"predictions": _predictions(rng, 0.5, 0.0, n_seeds=1)},
                                  n_resamples=500)
    assert family[0]["verdict"] == "not reproduced" and family[0]["p_raw"] == 1.0
