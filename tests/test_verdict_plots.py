"""Verdict figures (equivar.book.verdict_plots) and the sensitivity table behind them."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from equivar import stats
from equivar.book.verdict_plots import VERDICT_COLOURS, plot_verdicts
from equivar.studies import controls, scorecard


def _rows(rng):
    b = rng.random((8, 150)) < 0.5
    a = b | (rng.random((8, 150)) < 0.3)
    ci = stats.bootstrap_difference(a, b, n_resamples=500, rng=0)
    p = stats.permutation_test_seeds(a, b).pvalue
    return scorecard.judge_rows({"C3-transfer": (ci, p), "headline": (ci, p)}, stats.RULES,
                                {"C3-transfer": "fig-t-v", "headline": "fig-t-v"}, "03")


def test_sensitivity_moves_verdict_at_the_ci(rng):
    rows = _rows(rng)
    table = scorecard.sensitivity_table(rows, np.linspace(0, 0.4, 9), stats.RULES)
    part = table[table["claim"] == "C3-transfer"].sort_values("threshold")
    low, high = rows[0]["low"], rows[0]["high"]
    # reproduced exactly while the threshold lies below the CI's lower end; partly while the
    # CI reaches it; not reproduced once the whole CI lies below it
    for _, r in part.iterrows():
        expected = ("reproduced" if r["threshold"] < low else
                    "partly reproduced" if r["threshold"] <= high else "not reproduced")
        assert r["verdict"] == expected
    assert part["preregistered"].sum() == 1
    assert float(part.loc[part["preregistered"], "threshold"].iloc[0]) == \
        stats.RULES["C3-transfer"].threshold


def test_plot_verdicts_draws_every_claim(rng):
    rows = _rows(rng)
    table = scorecard.sensitivity_table(rows, [0.0, 0.05, 0.1, 0.2], stats.RULES)
    fig = plot_verdicts(pd.DataFrame(rows), table)
    left, right = fig.axes[:2]
    assert [t.get_text() for t in left.get_yticklabels()] == ["C3-transfer", "headline"]
    # one coloured cell per claim and threshold, plus one ring per claim
    assert len(right.patches) == len(table) + 2
    matplotlib.pyplot.close(fig)


def test_plot_verdicts_refuses_bad_tables(rng):
    rows = pd.DataFrame(_rows(rng))
    table = scorecard.sensitivity_table(_rows(rng), [0.1], stats.RULES)
    with pytest.raises(ValueError, match="rows lacks columns"):
        plot_verdicts(rows.drop(columns="low"), table)
    with pytest.raises(ValueError, match="unknown verdicts"):
        plot_verdicts(rows.assign(verdict="maybe"), table)
    with pytest.raises(ValueError, match="sensitivity is empty"):
        plot_verdicts(rows, table.iloc[:0])
    assert set(VERDICT_COLOURS) == {str(v) for v in stats.Verdict}


def test_rules_table_lists_thresholds():
    table = scorecard.rules_table(["C3-reliance", "C1-twirl"])
    assert list(table["claim"]) == ["C3-reliance", "C1-twirl"]
    assert table.loc[0, "threshold"] == stats.RULES["C3-reliance"].threshold
    assert "refuted above" in table.loc[1, "rule"]
    with pytest.raises(ValueError, match="no rule"):
        scorecard.rules_table(["C7"])


def test_control_plots_draw_and_refuse_bad_input():
    from equivar.book.verdict_plots import plot_energy_controls, plot_k0_split

    order = list(controls.RELIANCE_CONTROLS[:3])
    summary = pd.DataFrame([{"dataset": d, "variant": v, "control": c, "accuracy": 0.5,
                             "moved": 0.1} for d in ("a", "b") for v in ("west", "sector")
                            for c in order])
    fig = plot_energy_controls(summary, order)
    assert len(fig.axes[0].patches) == 2 * len(order)      # one bar per variant and condition
    assert len(fig.legends) == 1
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="lacks columns"):
        plot_energy_controls(summary.drop(columns="moved"), order)
    split = pd.DataFrame({"dataset": ["a"] * 3, "source": ["cnn", "cnn", "sign noise"],
                          "part": ["full", "background part", "not clipped"],
                          "k0 share": [0.3, 0.5, 0.1]})
    fig = plot_k0_split(split)
    widths = sorted(p.get_width() for p in fig.axes[0].patches)
    assert widths == pytest.approx([0.1, 0.3, 0.5])
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="empty"):
        plot_k0_split(split.iloc[:0])


def test_plot_baselines_draws_two_points_per_model():
    from equivar.book.verdict_plots import plot_baselines

    table = pd.DataFrame({"model": ["a", "b", "c"], "clean": [0.8, 0.7, 0.75],
                          "clean low": [0.75, 0.65, 0.7], "clean high": [0.85, 0.75, 0.8],
                          "robust": [0.2, 0.5, 0.3], "robust low": [0.15, 0.45, 0.25],
                          "robust high": [0.25, 0.55, 0.35]})
    fig = plot_baselines(table)
    ax = fig.axes[0]
    xs = sorted(float(x) for c in ax.containers for x in c.lines[0].get_xdata())
    assert sorted(table["clean"].tolist() + table["robust"].tolist()) == pytest.approx(xs)
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="lacks columns"):
        plot_baselines(table.drop(columns="robust low"))
