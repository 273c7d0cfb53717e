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


def check_table(table: pd.DataFrame, columns, name: str) -> None:
    """A plot's input ``table`` (named ``name`` in errors) has ``columns`` and rows."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}")
    if table.empty:
        raise ValueError(f"{name} is empty: nothing to plot")


def _check(table: pd.DataFrame, columns, name: str) -> None:
    check_table(table, columns, name)
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
                                      gridspec_kw={"width_ratios": [1.1, 1]}, sharey=True,
                                      layout="constrained")
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
    left.set_xlabel("statistic (claimed direction > 0)")
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
    right.set_xlabel("threshold of the rule")
    right.grid(False)
    handles = [Patch(color=c, label=v) for v, c in VERDICT_COLOURS.items()]
    fig.legend(handles=handles, loc="outside right upper", frameon=False)
    return fig


def plot_energy_controls(summary: pd.DataFrame, order):
    """Chapter 2's energy-matched control: accuracy (mean over seeds, bars) of each invariant
    model under each condition of ``order`` (clean, ring means removed, and the controls that
    move the state as far), one panel per dataset; ``summary`` has columns dataset, variant,
    control, accuracy, moved (mean share of the state moved, printed on each bar)."""
    missing = [c for c in ("dataset", "variant", "control", "accuracy", "moved")
               if c not in summary.columns]
    if missing:
        raise ValueError(f"summary lacks columns {missing}")
    if summary.empty:
        raise ValueError("summary is empty: nothing to plot")
    datasets = list(dict.fromkeys(summary["dataset"]))
    variants = list(dict.fromkeys(summary["variant"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.6 * len(datasets) + 1, 3.8),
                             squeeze=False, sharey=True, layout="constrained")
    width = 0.8 / len(order)
    for ax, dataset in zip(axes[0], datasets):
        part = summary[summary["dataset"] == dataset]
        for i, control in enumerate(order):
            rows = part[part["control"] == control].set_index("variant").reindex(variants)
            x = np.arange(len(variants)) + (i - (len(order) - 1) / 2) * width
            ax.bar(x, rows["accuracy"], width, color=f"C{i}", label=control)
        ax.set_xticks(np.arange(len(variants)), variants)
        ax.set_xlabel(dataset)
    axes[0][0].set_ylabel("test accuracy (mean over seeds)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False, fontsize=8)
    return fig


def plot_k0_split(summary: pd.DataFrame):
    """Chapter 3's clipping control: the k = 0 share of the encoded change for the full
    transferred perturbation and its background and object parts (per source), and for sign
    noise with and without clipping; one panel per dataset. ``summary``: columns dataset,
    source, part, k0 share (from :func:`equivar.studies.transfer.split_summary`)."""
    missing = [c for c in ("dataset", "source", "part", "k0 share") if c not in summary.columns]
    if missing:
        raise ValueError(f"summary lacks columns {missing}")
    if summary.empty:
        raise ValueError("summary is empty: nothing to plot")
    datasets = list(dict.fromkeys(summary["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4),
                             squeeze=False, sharey=True, layout="constrained")
    for ax, dataset in zip(axes[0], datasets):
        part = summary[summary["dataset"] == dataset]
        labels = [f"{s}: {p}" for s, p in zip(part["source"], part["part"])]
        colours = ["0.6" if s == "sign noise" else "C0" if p == "full" else
                   "C1" if p == "background part" else "C2"
                   for s, p in zip(part["source"], part["part"])]
        y = np.arange(len(part))[::-1]
        ax.barh(y, part["k0 share"], color=colours)
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_xlabel(f"k = 0 share of Δψ ({dataset})")
    return fig


def plot_baselines(table: pd.DataFrame):
    """Chapter 4's plain baselines: clean (open) and robust (filled) accuracy of each model with
    its 95 % CI, one row per model (``table`` from
    :func:`equivar.studies.robustness.baseline_table`)."""
    need = ["model", "clean", "clean low", "clean high", "robust", "robust low", "robust high"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks columns {missing}")
    if table.empty:
        raise ValueError("table is empty: nothing to plot")
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(table) + 1.4), layout="constrained")
    y = np.arange(len(table))[::-1]
    for what, offset, style in (("clean", 0.15, dict(mfc="white")), ("robust", -0.15, {})):
        est = table[what].to_numpy()
        err = np.vstack([est - table[f"{what} low"], table[f"{what} high"] - est])
        ax.errorbar(est, y + offset, xerr=err, fmt="o", color="C0" if what == "clean" else "C3",
                    label=what, capsize=2, **style)
    ax.set_yticks(y, table["model"])
    ax.set_xlabel("accuracy (95 % CI, seeds × images)")
    fig.legend(loc="outside lower center", ncol=2, frameon=False)
    return fig
