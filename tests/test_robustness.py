"""equivar.studies.robustness and equivar.studies.transfer: bookkeeping of the chapter studies."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from equivar import settings
from equivar.learn.train import ModelSpec
from equivar.studies import robustness, transfer


def test_model_grid_reuses_chapter_two_models():
    s = settings.SuppressionSettings.for_profile("default")
    grid = robustness.model_grid(s, "fashion-mnist", "sector", 1)
    labels = [label for label, _, _ in grid]
    assert labels[0] == "none"
    assert grid[0][2] == ModelSpec.from_settings(s.model_settings(), "fashion-mnist", "sector", 1)
    assert {"k=0 × 0.5", "k=0 × 0", "project out k=3", "adversarial training"} <= set(labels)
    adv = dict((label, spec) for label, _, spec in grid)["adversarial training"]
    assert adv.augment == "pgd" and adv.augment_surrogate[0] == "cnn"


def test_settings_share_training_and_attacks():
    s = settings.SuppressionSettings.for_profile("paper", seed=2)
    assert s.model_settings() == settings.RelianceSettings.for_profile("paper", seed=2, n_seeds=3)
    t = s.transfer_settings()
    assert t.seed == 2 and t.n_seeds == 3 and t.datasets == s.datasets


def fake_results():
    rows_clean, rows_robust = [], []
    for seed in (0, 1):
        for model, group, k, clean, robust in [("none", "k=0 down-weighting", 0, 0.8, 0.4),
                                               ("k=0 × 0", "k=0 down-weighting", 0, 0.7, 0.6),
                                               ("project out k=1", "control sector", 1, 0.75, 0.41),
                                               ("Gaussian-noise training", "reference defence", 0, 0.8, 0.45),
                                               ("adversarial training", "reference defence", 0, 0.78, 0.5)]:
            tag = {"dataset": "d", "seed": seed, "variant": "sector", "model": model,
                   "group": group, "k": k, "alpha": 0.0 if "×" in model or "out" in model else 1.0}
            rows_clean.append({**tag, "accuracy": clean})
            for source in ("cnn", "mlp"):
                rows_robust.append({**tag, "source": source, "attack": "pgd", "eps": 0.1,
                                    "accuracy": robust + (0.02 if source == "cnn" else -0.02)})
    return {"clean": pd.DataFrame(rows_clean), "robust": pd.DataFrame(rows_robust)}


def test_conclusion_table_arithmetic():
    table = robustness.conclusion_table(fake_results(), 0.1)
    row = table.iloc[0]
    g = "k=0 removed"
    assert row[g + ": robust change"] == pytest.approx(0.2)
    assert row[g + ": clean change"] == pytest.approx(-0.1)
    # drop: none 0.8 - 0.4 = 0.4; k=0 removed 0.7 - 0.6 = 0.1
    assert row["drop none"] == pytest.approx(0.4)
    assert row[g + ": drop change"] == pytest.approx(-0.3)
    assert row["best control"] == "project out k=1"
    assert row["best control: drop change"] == pytest.approx((0.75 - 0.41) - 0.4)
    assert row["adversarial training: drop change"] == pytest.approx((0.78 - 0.5) - 0.4)
    assert robustness.more_robust(row, g)
    text = robustness.conclusion_markdown(table, 0.1, settings.SuppressionSettings.for_profile("smoke"))
    assert "in 1 of 1" in text and "+0.200" in text and "-0.300" in text


def test_sector_effects():
    effects = robustness.sector_effects(fake_results(), 0.1)
    robust = effects[(effects["quantity"] == "robust")].set_index("k")["mean"]
    assert robust[0] == pytest.approx(0.2) and robust[1] == pytest.approx(0.01)


def test_success_rate():
    from equivar.adversary import attacks

    labels = np.array([0, 1, 2, 3])
    assert attacks.success_rate([0, 1, 2, 0], [0, 2, 2, 0], labels) == pytest.approx(1 / 3)
    assert np.isnan(attacks.success_rate([1, 0, 0, 0], [0, 0, 0, 0], labels))
