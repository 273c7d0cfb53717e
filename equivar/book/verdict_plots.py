"""Figures of the verdicts: each claim's statistic with its CI against the rule's threshold, and
how the verdict moves as the threshold moves (chapters 2-4, the scorecard's evidence).

Both take the tables of :mod:`equivar.studies.scorecard` (``judge_rows`` as a DataFrame and
``sensitivity_table``) and return a figure for :func:`equivar.book.plots.save_figure`.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch

# one colour per verdict, the same in every chapter (colour-blind safe, ordered by strength)
VERDICT_COLOURS = {"reproduced": "#1b7837", "partly reproduced": "#a6dba0",
                   "not reproduced": "#d9d9d9", "refuted": "#b2182b"}


def _check(table: pd.DataFrame, columns, name: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}")
    if table.empty:
        raise ValueError(f"{name} is empty: nothing to plot")
    bad = sorted(set(table["verdict"]) - set(VERDICT_COLOURS))
    if bad:
        raise ValueError(f"{name} holds unknown verdicts {bad}")


def plot_verdicts(rows: pd.DataFrame, sensitivity: pd.DataFrame):
    """Left: per claim, the statistic (accuracy difference, claimed direction positive) with
    its 95 % CI, the pre-registered threshold (dashed) and 0 (solid), coloured by verdict.
    Right: the verdict at every threshold of ``sensitivity`` (pre-registered one ringed)."""
    _check(rows, ["claim", "verdict", "estimate", "low", "high", "threshold", "direction"],
           "rows")
    _check(sensitivity, ["claim", "threshold", "verdict", "preregistered"], "sensitivity")
    claims = list(rows["claim"])
    n = len(claims)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.55 * n + 1.6),
                                      gridspec_kw={"width_ratios": [1.1, 1]}, sharey=True)
    y = np.arange(n)[::-1]
    for yi, (_, r) in zip(y, rows.iterrows()):
        s = 1.0 if r["direction"] == "greater" else -1.0
        est, lo, hi = s * r["estimate"], *sorted((s * r["low"], s * r["high"]))
        colour = VERDICT_COLOURS[r["verdict"]]
        left.plot([lo, hi], [yi, yi], color="0.2", lw=1.5, zorder=2)
        left.scatter([est], [yi], s=60, color=colour, edgecolor="0.2", zorder=3)
        left.plot([r["threshold"]] * 2, [yi - 0.35, yi + 0.35], color="0.2", ls="--", lw=1)
    left.axvline(0, color="0.4", lw=0.8)
    left.set_yticks(y, claims)
    left.set_xlabel("statistic, claimed direction > 0 (accuracy difference)")
    thresholds = sorted(sensitivity["threshold"].unique())
    index = {t: i for i, t in enumerate(thresholds)}
    for yi, claim in zip(y, claims):
        part = sensitivity[sensitivity["claim"] == claim]
        for _, r in part.iterrows():
            x = index[r["threshold"]]
            right.add_patch(plt.Rectangle((x - 0.5, yi - 0.4), 1, 0.8,
                                          color=VERDICT_COLOURS[r["verdict"]]))
            if r["preregistered"]:
                right.add_patch(plt.Rectangle((x - 0.5, yi - 0.4), 1, 0.8, fill=False,
                                              edgecolor="0.1", lw=2))
    right.set_xlim(-0.5, len(thresholds) - 0.5)
    right.set_ylim(-0.7, n - 0.3)
    step = max(1, len(thresholds) // 6)
    right.set_xticks(range(0, len(thresholds), step),
                     [f"{t:g}" for t in thresholds[::step]])
    right.set_xlabel("threshold of the rule (verdict if it were this)")
    right.grid(False)
    handles = [Patch(color=c, label=v) for v, c in VERDICT_COLOURS.items()]
    right.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig
