"""Figures of chapter 3's "Quantum or invariant?": the quantum models next to classical models
that see the same information (:mod:`equivar.studies.baselines`). Saved with
:func:`equivar.book.plots.save_figure` like every figure of the book.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from equivar.book.plots import _curve_grid

QUANTUM = ("west", "sector", "baseline")
THREAT_LABELS = {"transfer": "transfer (every set)", "transfer (pgd)": "transfer (PGD)",
                 "white-box": "white-box"}


def _label(target: str, labels: dict | None) -> str:
    return (labels or {}).get(target, target)


def plot_baseline_curves(table: pd.DataFrame, targets: list[str], labels: dict | None = None,
                         threats=("transfer", "white-box")):
    """Accuracy versus ε per threat model (rows) and dataset (columns): quantum models solid,
    classical baselines dashed, one colour per target; bands: the CI columns.

    ``table`` columns: dataset, target, threat, eps, accuracy, low, high
    (:func:`equivar.studies.baselines.curves`).
    """
    missing = {"dataset", "target", "threat", "eps", "accuracy", "low", "high"} - set(table)
    if missing:
        raise ValueError(f"table lacks columns {sorted(missing)}")
    threats = [t for t in threats if t in set(table["threat"])]
    if not threats:
        raise ValueError(f"table has none of the threats; found {sorted(set(table['threat']))}")
    unknown = [t for t in targets if t not in set(table["target"])]
    if unknown:
        raise ValueError(f"targets {unknown} are not in the table")

    def draw(ax, threat, dataset):
        for c, target in enumerate(targets):
            part = table[(table["dataset"] == dataset) & (table["target"] == target)
                         & (table["threat"] == threat)].sort_values("eps")
            style = "-" if target in QUANTUM else "--"
            ax.plot(part["eps"], part["accuracy"], ls=style, marker="o", ms=2.5,
                    color=f"C{c}", label=_label(target, labels))
            ax.fill_between(part["eps"], part["low"], part["high"], color=f"C{c}", alpha=0.12,
                            lw=0)
        ax.set_xscale("symlog", linthresh=0.02)

    return _curve_grid(threats, {t: THREAT_LABELS.get(t, t) for t in threats},
                       list(dict.fromkeys(table["dataset"])), draw, "upper right")


def plot_baseline_differences(table: pd.DataFrame, reference: str = "sector",
                              labels: dict | None = None):
    """Forest plot: per dataset (panels), the paired difference of transfer robust accuracy of
    every other target minus the quantum model ``reference`` at the reference ε, with its CI.

    ``table``: :func:`equivar.studies.baselines.comparison` (columns dataset, target,
    ``transfer − <reference>`` and its ``low`` and ``high``).
    """
    col = f"transfer − {reference}"
    if col not in table:
        raise ValueError(f"table has no column {col!r} (compared against another reference?)")
    datasets = list(dict.fromkeys(table["dataset"]))
    rows = table[table["target"] != reference]
    targets = list(dict.fromkeys(rows["target"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.6 * len(datasets),
                                                        0.6 + 0.35 * len(targets)),
                             sharey=True, squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        part = rows[rows["dataset"] == dataset].set_index("target").reindex(targets)
        est = part[col].to_numpy(float)
        err = np.vstack([est - part[f"{col} low"].to_numpy(float),
                         part[f"{col} high"].to_numpy(float) - est])
        colours = ["C0" if t in QUANTUM else "C1" for t in targets]
        for y, (e, lo, hi, colour) in enumerate(zip(est, err[0], err[1], colours)):
            ax.errorbar(e, y, xerr=[[lo], [hi]], fmt="o", ms=4, capsize=2, color=colour)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel(f"Δ transfer robust accuracy vs\n{_label(reference, labels)}")
        ax.text(0.5, 1.02, dataset, transform=ax.transAxes, ha="center", va="bottom")
    axes[0, 0].set_yticks(np.arange(len(targets)), [_label(t, labels) for t in targets])
    axes[0, 0].invert_yaxis()
    fig.tight_layout()
    return fig
