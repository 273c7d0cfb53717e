"""equivar.book.baseline_plots: the "Quantum or invariant?" figures draw what their tables hold."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only; notebooks keep the inline backend
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from equivar.book import baseline_plots, plots  # noqa: E402

TARGETS = ["sector-logistic", "p4-cnn", "sector"]


def _curves():
    rows = []
    for d in ("digits", "fashion-mnist"):
        for i, t in enumerate(TARGETS):
            for threat in ("transfer", "transfer (pgd)", "white-box"):
                for e in (0.0, 0.1, 0.3):
                    acc = max(0.0, 0.9 - e * (1 + i))
                    rows.append({"dataset": d, "target": t, "threat": threat, "eps": e,
                                 "accuracy": acc, "low": acc - 0.05, "high": acc + 0.05})
    return pd.DataFrame(rows)


def test_curves_draw_one_line_per_target_and_the_table_values(tmp_path):
    table = _curves()
    fig = baseline_plots.plot_baseline_curves(table, TARGETS, {"sector": "quantum"})
    assert len(fig.axes) == 2 * 2  # threats × datasets
    ax = fig.axes[0]
    lines = [l for l in ax.get_lines() if len(l.get_xdata()) > 1]
    assert len(lines) == len(TARGETS)
    want = table[(table["dataset"] == "digits") & (table["threat"] == "transfer")
                 & (table["target"] == "p4-cnn")].sort_values("eps")["accuracy"].to_numpy()
    assert np.allclose(lines[1].get_ydata(), want)
    assert lines[2].get_linestyle() == "-" and lines[0].get_linestyle() == "--"
    paths = plots.save_figure(fig, "fig-test-baselines", table, "c.", "test", None, tmp_path)
    assert paths["png"].stat().st_size > 0


def test_differences_plot_every_non_reference_target():
    rows = []
    for t, d in (("sector-logistic", 0.2), ("p4-cnn", -0.3), ("sector", np.nan)):
        row = {"dataset": "digits", "target": t}
        for col, value in (("transfer − sector", d), ("transfer drop − sector", d / 2)):
            row.update({col: value, f"{col} low": value - 0.1, f"{col} high": value + 0.1})
        rows.append(row)
    fig = baseline_plots.plot_baseline_differences(pd.DataFrame(rows))
    left, right = fig.axes[:2]
    assert [t.get_text() for t in left.get_yticklabels()] == ["sector-logistic", "p4-cnn"]
    dots = lambda ax: [l.get_xdata()[0] for l in ax.get_lines() if l.get_marker() == "o"]
    assert dots(left) == pytest.approx([0.2, -0.3])
    assert dots(right) == pytest.approx([0.1, -0.15])


def test_bad_tables_are_refused():
    table = _curves()
    with pytest.raises(ValueError, match=r"lacks columns \['high'\]"):
        baseline_plots.plot_baseline_curves(table.drop(columns="high"), TARGETS)
    with pytest.raises(ValueError, match=r"targets \['resnet'\] are not in the table"):
        baseline_plots.plot_baseline_curves(table, ["resnet"])
    with pytest.raises(ValueError, match="none of the threats"):
        baseline_plots.plot_baseline_curves(table, TARGETS, threats=("black-box",))
    with pytest.raises(ValueError, match="no column 'transfer − west'"):
        baseline_plots.plot_baseline_differences(pd.DataFrame({"dataset": ["d"]}), "west")
