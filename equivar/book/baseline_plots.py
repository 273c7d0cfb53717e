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

    fig = _curve_grid(threats, {t: THREAT_LABELS.get(t, t) for t in threats},
                      list(dict.fromkeys(table["dataset"])), draw, "upper right")
    # one legend beside the panels: seven curves would hide the first panel's
    handles, names = fig.axes[0].get_legend_handles_labels()
    fig.axes[0].get_legend().remove()
    fig.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    return fig


def plot_baseline_differences(table: pd.DataFrame, reference: str = "sector",
                              labels: dict | None = None):
    """Forest plot at the reference ε: per dataset (rows), every other target's paired
    difference against the quantum model ``reference`` in transfer robust accuracy (left) and
    in the transfer drop, the share of images the attack flips (right), with CIs; classical
    baselines orange, quantum models blue.

    ``table``: :func:`equivar.studies.baselines.comparison` (columns dataset, target,
    ``transfer − <reference>``, ``transfer drop − <reference>`` and their ``low``/``high``).
    """
    columns = [f"transfer − {reference}", f"transfer drop − {reference}"]
    for col in columns:
        if col not in table:
            raise ValueError(f"table has no column {col!r} (compared against another "
                             "reference?)")
    datasets = list(dict.fromkeys(table["dataset"]))
    rows = table[table["target"] != reference]
    targets = list(dict.fromkeys(rows["target"]))
    fig, axes = plt.subplots(len(datasets), 2, figsize=(7.6, 0.9 + 0.32 * len(targets)
                                                        * len(datasets)),
                             sharey=True, squeeze=False)
    for row_axes, dataset in zip(axes, datasets):
        part = rows[rows["dataset"] == dataset].set_index("target").reindex(targets)
        for ax, col in zip(row_axes, columns):
            est = part[col].to_numpy(float)
            low = est - part[f"{col} low"].to_numpy(float)
            high = part[f"{col} high"].to_numpy(float) - est
            for y, target in enumerate(targets):
                ax.errorbar(est[y], y, xerr=[[low[y]], [high[y]]], fmt="o", ms=4, capsize=2,
                            color="C0" if target in QUANTUM else "C1")
            ax.axvline(0, color="black", lw=0.8)
        row_axes[0].set_ylabel(dataset)
    for ax, title in zip(axes[-1], ("Δ transfer robust accuracy", "Δ transfer drop")):
        ax.set_xlabel(f"{title}\nvs {_label(reference, labels)}")
    axes[0, 0].set_yticks(np.arange(len(targets)), [_label(t, labels) for t in targets])
    axes[0, 0].invert_yaxis()
    fig.tight_layout()
    return fig
