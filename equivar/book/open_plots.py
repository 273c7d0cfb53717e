"""Figures of chapter 5 (what the paper leaves open). Saved with
:func:`equivar.book.plots.save_figure`; no in-plot titles (the caption is the title)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from equivar.settings import VARIANT_LABELS

MODEL_LABELS = {**VARIANT_LABELS, "cnn": "CNN", "cnn-rot": "CNN (rotation-trained)"}
FLOOR = 1e-17  # log axes: exact zeros are drawn here


def _label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def _legend_below(fig, ax, title=None, ncol: int = 3) -> None:
    """One legend for the figure, below the panels (constrained layout keeps it clear)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(ncol, len(labels)),
               fontsize="small", title=title, frameon=False)


def _columns(n: int, rows: int, width: float = 3.4, height: float = 2.6, **kwargs):
    # at least a page's half width, so that the legend below fits
    fig, axes = plt.subplots(rows, n, figsize=(max(width * n, 7.0), height * rows + 0.8),
                             squeeze=False, layout="constrained", **kwargs)
    return fig, axes


def plot_invariance_gap(gap: pd.DataFrame, n_angles: int = 8):
    """Top: mean change of the logits of the quantum models versus the angle (log scale; solid:
    exact ring-grid rotation, dashed: pixel-resampled); bottom: share of changed predictions
    (every model, pixel rotation dashed). Columns: datasets; dotted: multiples of 2π/N."""
    datasets = list(dict.fromkeys(gap["dataset"]))
    fig, axes = _columns(len(datasets), 2, sharex=True)
    colours = dict(zip(dict.fromkeys(gap["model"]), plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for j, dataset in enumerate(datasets):
        part = gap[gap["dataset"] == dataset]
        for (model, rotation), g in part.groupby(["model", "rotation"], sort=False):
            style = "-" if rotation == "ring grid" else "--"
            g = g.sort_values("degrees")
            if model in VARIANT_LABELS:
                axes[0, j].plot(g["degrees"], np.maximum(g["logit_change"], FLOOR), style,
                                color=colours[model], marker=".",
                                label=f"{_label(model)} ({rotation})")
            axes[1, j].plot(g["degrees"], g["prediction_change"], style, color=colours[model],
                            marker=".", label=f"{_label(model)} ({rotation})")
        axes[0, j].set_yscale("log")
        axes[0, j].set_ylabel("mean |Δ logit| (max over classes)" if j == 0 else "")
        axes[1, j].set_ylabel("share of predictions changed" if j == 0 else "")
        axes[1, j].set_xlabel(f"rotation angle (degrees), {dataset}")
        for ax in axes[:, j]:
            for m in range(n_angles + 1):
                ax.axvline(360 * m / n_angles, color="grey", lw=0.5, ls=":")
            ax.set_xticks(np.arange(0, 361, 90))
    _legend_below(fig, axes[1, -1], ncol=3)
    return fig


def plot_train_test(matrix: pd.DataFrame):
    """Accuracy per model (x) and training → test condition (bars); one panel per dataset."""
    datasets = list(dict.fromkeys(matrix["dataset"]))
    fig, axes = _columns(len(datasets), 1, width=4.6, height=3.0, sharey=True)
    conditions = list(dict.fromkeys(matrix["train"] + " → " + matrix["test"]))
    for j, dataset in enumerate(datasets):
        part = matrix[matrix["dataset"] == dataset].copy()
        part["condition"] = part["train"] + " → " + part["test"]
        models = list(dict.fromkeys(part["model"]))
        width = 0.8 / len(conditions)
        ax = axes[0, j]
        for i, cond in enumerate(conditions):
            values = [part[(part["model"] == m) & (part["condition"] == cond)]["accuracy"].mean()
                      for m in models]
            ax.bar(np.arange(len(models)) + (i - (len(conditions) - 1) / 2) * width, values,
                   width, label=cond)
        ax.set_xticks(np.arange(len(models)), [_label(m) for m in models], rotation=20,
                      ha="right", fontsize="small")
        ax.set_xlabel(dataset)
        ax.set_ylabel("test accuracy" if j == 0 else "")
    _legend_below(fig, axes[0, -1], title="train → test", ncol=3)
    return fig


def plot_rotated_reliance(table: pd.DataFrame):
    """Necessity of the ring means (top) and the k = 0 swap's follow rate (bottom) per
    invariant model (x) and condition (bars); one column per dataset."""
    datasets = list(dict.fromkeys(table["dataset"]))
    conditions = list(dict.fromkeys(table["condition"]))
    fig, axes = _columns(len(datasets), 2, width=3.6, height=2.5, sharey="row")
    for j, dataset in enumerate(datasets):
        part = table[table["dataset"] == dataset]
        variants = list(dict.fromkeys(part["variant"]))
        width = 0.8 / len(conditions)
        for row, column, ylabel in ((0, "necessity", "necessity of k = 0"),
                                    (1, "follows_k0", "k = 0 swap: label follows")):
            ax = axes[row, j]
            for i, cond in enumerate(conditions):
                values = [part[(part["variant"] == v) & (part["condition"] == cond)][column]
                          .mean() for v in variants]
                ax.bar(np.arange(len(variants)) + (i - (len(conditions) - 1) / 2) * width,
                       values, width, label=cond)
            ax.set_xticks(np.arange(len(variants)), [_label(v) for v in variants],
                          fontsize="small")
            ax.set_ylabel(ylabel if j == 0 else "")
        axes[1, j].set_xlabel(dataset)
    _legend_below(fig, axes[0, -1], title="train → test", ncol=3)
    return fig


def plot_grids(table: pd.DataFrame):
    """Per ladder rung (rows of each panel): clean accuracy, necessity of k = 0, and the drop
    under transferred PGD; one row of panels per dataset."""
    datasets = list(dict.fromkeys(table["dataset"]))
    columns = (("clean", "clean accuracy"), ("necessity", "necessity of k = 0"),
               ("drop", "drop under transferred PGD"))
    n_rungs = table.groupby("dataset").size().max()
    fig, axes = plt.subplots(len(datasets), 3, figsize=(10.5, 0.32 * n_rungs * len(datasets) + 1),
                             squeeze=False, sharey="row", layout="constrained")
    for i, dataset in enumerate(datasets):
        part = table[table["dataset"] == dataset].reset_index(drop=True)
        y = np.arange(len(part))
        for j, (column, xlabel) in enumerate(columns):
            ax = axes[i, j]
            ax.barh(y, part[column].fillna(0), color=["C0" if v == "west" else "C1"
                                                      for v in part["variant"]])
            ax.set_yticks(y, [f"{r} ({p} px)" for r, p in zip(part["rung"], part["pixels_read"])],
                          fontsize="x-small")
            ax.invert_yaxis()
            ax.set_xlabel(f"{xlabel}, {dataset}" if len(datasets) > 1 else xlabel)
    return fig


def plot_shots(accuracy: pd.DataFrame, margins: pd.DataFrame, resolved_share: float):
    """Top: accuracy versus shots per readout (log x; solid clean, dash-dotted ring means
    removed, dashed transferred PGD; dotted horizontal: exact readout); bottom: share of images whose largest per-sector margin
    contribution is identified from the shots (per sector), for the invariant models; dashed:
    the share called resolved. Columns: datasets."""
    datasets = list(dict.fromkeys(accuracy["dataset"]))
    fig, axes = _columns(len(datasets), 2, sharex=True)
    colours = dict(zip(dict.fromkeys(accuracy["model"]),
                       plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for j, dataset in enumerate(datasets):
        part = accuracy[accuracy["dataset"] == dataset]
        for (model, what), g in part.groupby(["model", "data"], sort=False):
            style = {"clean": "-", "transferred PGD": "--"}.get(what, "-.")
            sampled = g[g["shots"] > 0].sort_values("shots")
            axes[0, j].plot(sampled["shots"], sampled["accuracy"], style, marker=".",
                            color=colours[model], label=f"{_label(model)}, {what}")
            axes[0, j].axhline(g[g["shots"] == 0]["accuracy"].iloc[0], color=colours[model],
                               ls=":", lw=0.8)
        m = margins[margins["dataset"] == dataset]
        for variant, g in m.groupby("variant", sort=False):
            axes[1, j].plot(g["shots"], g["top sector identified"], marker=".",
                            color=colours.get(variant))
        axes[1, j].axhline(resolved_share, color="grey", ls="--", lw=0.8)
        axes[1, j].set_xscale("log")
        axes[1, j].set_xlabel(f"shots per readout, {dataset}")
        axes[0, j].set_ylabel("test accuracy" if j == 0 else "")
        axes[1, j].set_ylabel("top margin sector identified" if j == 0 else "")
    _legend_below(fig, axes[0, -1], ncol=2)
    return fig


def plot_noise(table: pd.DataFrame):
    """Clean accuracy, necessity of k = 0 and suppression gain (columns) versus the noise rate
    (log x) for each kind of noise (colour) and invariant model (solid West, dashed
    sector-resolved); dotted horizontal: noiseless."""
    columns = (("clean", "clean accuracy"), ("necessity", "necessity of k = 0"),
               ("suppression gain", "suppression gain (robust acc.)"))
    fig, axes = _columns(3, 1, width=3.5, height=2.8)
    kinds = [k for k in dict.fromkeys(table["noise"]) if k != "none"]
    for j, (column, ylabel) in enumerate(columns):
        ax = axes[0, j]
        for v, style in (("west", "-"), ("sector", "--")):
            part = table[table["variant"] == v]
            if not len(part):
                continue
            for i, kind in enumerate(kinds):
                g = part[part["noise"] == kind].sort_values("rate")
                ax.plot(g["rate"], g[column], style, marker=".", color=f"C{i}",
                        label=f"{kind}, {_label(v)}")
            ax.axhline(part[part["noise"] == "none"][column].mean(), color="grey", ls=":",
                       lw=0.8)
        ax.set_xscale("log")
        ax.set_ylabel(ylabel)
        ax.set_xlabel("error rate")
    _legend_below(fig, axes[0, -1], ncol=2)
    return fig
