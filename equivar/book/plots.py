"""Figures: one style, and files that can be cited.

:func:`save_figure` writes ``<id>.pdf``, ``<id>.png``, ``<id>.csv`` (the plotted data) and
``<id>.json`` (caption, chapter, settings, versions, commit) with run-independent metadata,
so a figure is found and cited by its stable id (``fig-<chapter>-<what>``). Figures carry no
in-plot title: the caption is the title. The plotting functions of each chapter live here too.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import textwrap
from importlib import metadata
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from equivar.cache import atomic_path
from equivar.paths import figures_dir, project_root
from equivar.settings import VARIANT_LABELS

FIGURE_ID = re.compile(r"^fig-[a-z0-9]+(-[a-z0-9]+)+$")
KEY_PACKAGES = ("equivar", "pennylane", "torch", "numpy", "torchattacks", "papermill", "nbval",
                "jupyter-book", "matplotlib", "seaborn", "pandas", "pooch", "scikit-learn")


def use_style() -> None:
    """The book's plotting style (seaborn paper context, colour-blind palette, type that reads
    at page size) and pandas display options that never cut a table short with "..."."""
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.25)
    for option, value in (("display.max_colwidth", None), ("display.max_columns", None),
                          ("display.max_rows", 500), ("display.width", 200)):
        pd.set_option(option, value)
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.bbox": "tight",
                                "svg.hashsalt": "equivar", "axes.titlesize": "medium"})


def versions() -> dict[str, str]:
    """Installed versions of the key packages."""
    out = {}
    for name in KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# what a run writes (executed chapters, figures, generated pages): a run rewriting its own
# committed outputs does not make the code that produces them differ from the commit
RUN_OUTPUTS = ("book/chapters", "book/figures", "book/generated")


def git_commit() -> str:
    """Short commit of the checkout (``+dirty`` if a tracked file other than the run outputs
    of :data:`RUN_OUTPUTS` is modified), or ``unknown``."""
    try:
        root = project_root()
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, text=True,
                             capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", *(f":(exclude){p}" for p in RUN_OUTPUTS)],
                               cwd=root, text=True, capture_output=True, check=True).stdout
        return sha + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"


def save_figure(fig, figure_id: str, table: pd.DataFrame, caption: str | None = None,
                chapter: str | None = None, settings=None,
                out_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write a figure as PDF, PNG, CSV and JSON and close it.

    The caption is written once, in the chapter's ``{figure}`` directive: with ``caption=None``
    it is read from there (:func:`equivar.book.notebooks.figure_captions`) and stored in the
    JSON; the book then shows the same caption with the files and citation line under it
    (:mod:`equivar.book.figure_links`).

    Args:
        figure_id: stable id ``fig-<chapter>-<what>`` (lower case, dashes).
        table: the data plotted, written as CSV.
        caption: the caption, only for figures no chapter page shows (None: the page's).
        chapter: chapter id (e.g. ``"twirl"``); required.
        settings: the chapter's settings dataclass (stored in the JSON).
        out_dir: see :func:`figures_dir`.

    Returns:
        the paths written, keyed by ``pdf``, ``png``, ``csv``, ``json``.
    """
    if not FIGURE_ID.match(figure_id):
        raise ValueError(f"figure id must look like 'fig-<chapter>-<what>', got {figure_id!r}")
    if chapter is None:
        raise ValueError(f"save_figure({figure_id!r}): give the chapter id")
    if caption is None:
        caption = page_caption(figure_id, chapter)
    out = figures_dir(out_dir)
    paths = {ext: out / f"{figure_id}.{ext}" for ext in ("pdf", "png", "csv", "json")}
    with atomic_path(paths["pdf"]) as tmp:
        fig.savefig(tmp, format="pdf", metadata={"CreationDate": None, "ModDate": None})
    with atomic_path(paths["png"]) as tmp:
        fig.savefig(tmp, format="png", dpi=200, metadata={"Software": None})
    plt.close(fig)
    with atomic_path(paths["csv"]) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    params = dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else settings
    record = {
        "id": figure_id, "caption": caption, "chapter": chapter,
        "files": {k: p.name for k, p in paths.items()},
        "profile": (params or {}).get("profile"), "settings": params,
        "versions": versions(), "commit": git_commit(),
    }
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return paths


def page_caption(figure_id: str, chapter: str) -> str:
    """The caption of ``figure_id`` in chapter ``chapter``'s ``{figure}`` directive; ValueError
    naming the figure and the notebook if the chapter shows no such figure."""
    from equivar.book import notebooks

    source = notebooks.find(chapter)
    captions = notebooks.figure_captions(source)
    if figure_id not in captions:
        raise ValueError(f"{source.path.name} shows no figure named {figure_id!r} (figures: "
                         f"{', '.join(captions) or 'none'}); add a {{figure}} directive with "
                         f":name: {figure_id} and its caption")
    return captions[figure_id]


# --------------------------------------------------------------------------- layouts

def _grid(n_panels: int, width=3.3, height=2.7, cols=3, **kwargs):
    cols = min(cols, n_panels)
    rows = -(-n_panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False,
                             **kwargs)
    for ax in axes.flat[n_panels:]:
        ax.axis("off")
    return fig, axes


def _curve_grid(row_keys, row_labels, datasets, draw, legend_loc: str):
    """Panels of accuracy-versus-ε curves: one row per key, one column per dataset;
    ``draw(ax, row_key, dataset)`` plots into each panel."""
    fig, axes = plt.subplots(len(row_keys), len(datasets),
                             figsize=(3.2 * len(datasets), 2.5 * len(row_keys)),
                             squeeze=False, sharey=True, sharex=True)
    for i, key in enumerate(row_keys):
        for j, name in enumerate(datasets):
            ax = axes[i, j]
            draw(ax, key, name)
            ax.set_ylim(0, 1)
            if i == len(row_keys) - 1:
                ax.set_xlabel("ε (L∞, pixels)")
            if j == 0:
                ax.set_ylabel(f"{row_labels.get(key, key)}\naccuracy")
            if i == 0:
                ax.text(0.5, 1.02, name, transform=ax.transAxes, ha="center", va="bottom")
    axes[0, 0].legend(fontsize=9, loc=legend_loc)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- chapter 1

def plot_ring_sampling(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, means: np.ndarray):
    """Image with its sample points (coloured by ring) beside its ring-mean profile."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.5, 3.4),
                                      gridspec_kw={"width_ratios": [1, 1.25]})
    left.imshow(image, cmap="gray_r", vmin=0, vmax=1)
    n_rings = rows.shape[0]
    colours = plt.cm.viridis(np.linspace(0, 1, n_rings))
    for r in range(n_rings):
        left.scatter(cols[r], rows[r], s=9, color=colours[r], edgecolors="none")
    left.set_xticks([])
    left.set_yticks([])
    left.grid(False)
    left.set_xlabel("pixels (points coloured by ring)")
    right.plot(np.arange(n_rings), means, marker="o", color="C0")
    right.set_xlabel("ring r (inner → outer)")
    right.set_ylabel("ring-averaged intensity μ_r")
    fig.tight_layout()
    return fig


def plot_sector_weights(table: pd.DataFrame):
    """Mean sector weight per independent sector k, one line per dataset: the average over its
    classes, with a band spanning the lowest to the highest class mean (log scale).

    ``table`` columns: dataset, class, k, weight_mean (per-class numbers stay in the CSV).
    """
    datasets = list(dict.fromkeys(table["dataset"]))
    fig, ax = plt.subplots(figsize=(7.2, 3.6))
    markers = "osD^vP*X"
    for i, name in enumerate(datasets):
        per_k = table[table["dataset"] == name].groupby("k")["weight_mean"]
        mean, low, high = per_k.mean(), per_k.min(), per_k.max()
        ax.fill_between(mean.index, low, high, color=f"C{i}", alpha=0.18, lw=0)
        ax.plot(mean.index, mean, marker=markers[i % len(markers)], ms=5, lw=1.5, color=f"C{i}",
                label=name)
    ax.set_yscale("log")
    ax.set_xticks(sorted(table["k"].unique()))
    ax.set_xlabel("sector $k$ (modes $k$ and $N - k$ combined)")
    ax.set_ylabel("mean weight $w_k$")
    ax.legend(title="dataset\n(band: range\nover classes)", loc="upper left",
              bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def plot_block_distances(panels: dict[str, np.ndarray]):
    """Heatmaps of max |M_k - M_k'| between sector blocks, one panel per model."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.2), squeeze=False)
    vmax = max(float(d.max()) for d in panels.values()) or 1.0
    for i, (ax, (label, dist)) in enumerate(zip(axes[0], panels.items())):
        image = ax.imshow(dist, cmap="magma", vmin=0, vmax=vmax)
        n = dist.shape[0]
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xlabel("sector k'")
        if i == 0:
            ax.set_ylabel("sector k")
        ax.grid(False)
        ax.text(0.5, 1.03, label, transform=ax.transAxes, ha="center", va="bottom")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="max |M_k − M_k'|")
    return fig


# --------------------------------------------------------------------------- chapter 2



def _grouped_bars(ax, table: pd.DataFrame, column: str, order, labels=None) -> None:
    """Bars of ``table['mean']`` ± ``table['std']`` at ``table['k']``, side by side for each
    value of ``column`` in ``order`` (colour i for the i-th)."""
    labels = VARIANT_LABELS if labels is None else labels
    width = 0.8 / len(order)
    for i, key in enumerate(order):
        part = table[table[column] == key]
        ax.bar(part["k"] + (i - (len(order) - 1) / 2) * width, part["mean"], width,
               yerr=part["std"], capsize=2, color=f"C{i}", label=labels.get(key, key))


def plot_transform_heatmap(summary: pd.DataFrame, transforms: list[str]):
    """Accuracy (mean ± std over seeds) per dataset × transformation, one panel per variant.

    ``summary`` columns: dataset, variant, transform, mean, std.
    """
    variants = list(dict.fromkeys(summary["variant"]))
    datasets = list(dict.fromkeys(summary["dataset"]))
    fig, axes = plt.subplots(len(variants), 1, figsize=(1.15 * len(transforms) + 2.2,
                                                         0.55 * len(datasets) * len(variants) + 1.6),
                             squeeze=False, sharex=True)
    for ax, variant in zip(axes[:, 0], variants):
        part = summary[summary["variant"] == variant]
        mean = part.pivot(index="dataset", columns="transform", values="mean").loc[datasets,
                                                                                  transforms]
        std = part.pivot(index="dataset", columns="transform", values="std").loc[datasets,
                                                                                transforms]
        ax.imshow(mean.to_numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        for i in range(len(datasets)):
            for j in range(len(transforms)):
                m, s = mean.iat[i, j], std.iat[i, j]
                ax.text(j, i, f"{m:.2f}\n±{s:.2f}", ha="center", va="center", fontsize=9,
                        color="white" if m < 0.6 else "black")
        ax.set_yticks(range(len(datasets)), datasets)
        ax.set_ylabel(VARIANT_LABELS.get(variant, variant))
        ax.grid(False)
    axes[-1, 0].set_xticks(range(len(transforms)), transforms, rotation=30, ha="right")
    fig.tight_layout()
    return fig


def plot_follow_rates(summary: pd.DataFrame):
    """Label-follows-sector rates (mean ± std over seeds) per dataset, bars per variant.

    ``summary`` columns: dataset, variant, k, mean, std.
    """
    datasets = list(dict.fromkeys(summary["dataset"]))
    variants = list(dict.fromkeys(summary["variant"]))
    fig, axes = _grid(len(datasets), width=3.4, height=2.6, sharey=True)
    for ax, name in zip(axes.flat, datasets):
        part = summary[summary["dataset"] == name]
        _grouped_bars(ax, part, "variant", variants)
        ax.set_xticks(sorted(part["k"].unique()))
        ax.set_xlabel("swapped sector k")
        ax.set_ylim(0, 1.05)
        ax.text(0.97, 0.95, name, transform=ax.transAxes, ha="right", va="top")
    for ax in axes[:, 0]:
        ax.set_ylabel("label follows B")
    axes.flat[0].legend(fontsize=9, loc="upper center")
    fig.tight_layout()
    return fig


def _bars_by_quantity(table: pd.DataFrame, rows, datasets, variants, xlabel: str,
                      width: float = 3.0):
    """Grouped bars per variant: one row per (quantity, y label), one column per dataset."""
    fig, axes = plt.subplots(len(rows), len(datasets), figsize=(width * len(datasets),
                                                                2.4 * len(rows)),
                             squeeze=False, sharex=True, sharey="row")
    for j, name in enumerate(datasets):
        for i, (quantity, label) in enumerate(rows):
            ax = axes[i, j]
            part = table[(table["dataset"] == name) & (table["quantity"] == quantity)]
            _grouped_bars(ax, part, "variant", variants)
            ax.axhline(0, color="0.3", lw=0.6)
            if j == 0:
                ax.set_ylabel(label)
            if i == 0:
                ax.text(0.5, 1.02, name, transform=ax.transAxes, ha="center", va="bottom")
            if i == len(rows) - 1:
                ax.set_xlabel(xlabel)
    axes[0, 0].legend(fontsize=9)
    fig.tight_layout()
    return fig


def plot_attribution(summary: pd.DataFrame):
    """Per-sector contributions to the winning logit (top) and to the margin (bottom).

    ``summary`` columns: dataset, variant, k, quantity ('winning_logit' or 'margin'), mean, std.
    """
    return _bars_by_quantity(summary, [("winning_logit", "|contribution| to winning logit"),
                                       ("margin", "contribution to margin")],
                             list(dict.fromkeys(summary["dataset"])),
                             [v for v in VARIANT_LABELS if v in set(summary["variant"])],
                             "sector k")


def plot_planted(summary: pd.DataFrame, planted_k: int):
    """Synthetic validation: follow rates per sector for ring-profile and angular pairs.

    ``summary`` columns: pair type, variant, k, mean, std.
    """
    types = ["ring profile", "angular"]
    variants = list(dict.fromkeys(summary["variant"]))
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 2.8), sharey=True)
    for ax, pair_type, expected in zip(axes, types, (0, planted_k)):
        part = summary[summary["pair type"] == pair_type]
        _grouped_bars(ax, part, "variant", variants)
        ax.axvspan(expected - 0.45, expected + 0.45, color="0.85", zorder=0)
        ax.set_xticks(sorted(summary["k"].unique()) if len(summary) else range(5))
        ax.set_xlabel("swapped sector k")
        ax.text(0.97, 0.95, f"{pair_type} pairs\n(planted: k = {expected})", ha="right",
                va="top", transform=ax.transAxes, fontsize=9)
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("label follows B")
    axes[0].legend(fontsize=9, loc="center right")
    fig.tight_layout()
    return fig


def plot_selection(tried: pd.DataFrame):
    """Validation accuracy of every configuration the model selection tried, per dataset
    (panels) and variant (colour); the chosen one of each is ringed.

    ``tried`` columns: dataset, variant, valid_accuracy, valid_loss, n_layers, chosen (bool).
    """
    datasets = list(dict.fromkeys(tried["dataset"]))
    fig, axes = _grid(len(datasets), width=3.3, height=2.6, sharey=True)
    variants = [v for v in VARIANT_LABELS if v in set(tried["variant"])]
    for ax, name in zip(axes.flat, datasets):
        for i, variant in enumerate(variants):
            part = tried[(tried["dataset"] == name) & (tried["variant"] == variant)]
            jitter = np.linspace(-0.15, 0.15, max(len(part), 1))[:len(part)]
            ax.scatter(i + jitter, part["valid_accuracy"], s=14, color=f"C{i}",
                       label=VARIANT_LABELS[variant])
            best = part[part["chosen"]]
            ax.scatter(i + jitter[part["chosen"].to_numpy()], best["valid_accuracy"], s=70,
                       facecolors="none", edgecolors="k", linewidths=1.0)
        # wrapped: side by side the variant names ran into each other
        ax.set_xticks(range(len(variants)),
                      [textwrap.fill(VARIANT_LABELS[v], 12) for v in variants], fontsize=9)
        ax.set_xlim(-0.5, len(variants) - 0.5)
        ax.text(0.03, 0.95, name, transform=ax.transAxes, ha="left", va="top")
    for ax in axes[:, 0]:
        ax.set_ylabel("validation accuracy")
    fig.tight_layout()
    return fig


def plot_ladder(table: pd.DataFrame):
    """Test accuracy of every rung of the capacity ladder, per dataset (columns): probes on
    what a model can access, ideal measurements, then the quantum models.

    ``table`` columns: dataset, family, rung, test_accuracy.
    """
    datasets = list(dict.fromkeys(table["dataset"]))
    rungs = list(dict.fromkeys(table["rung"]))
    colours = {"linear probe": "0.55", "ideal measurement": "C2", "quantum": "C0"}
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.0 * len(datasets) + 2.6,
                                                       0.27 * len(rungs) + 1.0),
                             squeeze=False, sharey=True)
    for ax, name in zip(axes[0], datasets):
        part = table[table["dataset"] == name].set_index("rung").reindex(rungs)
        ax.barh(range(len(rungs)), part["test_accuracy"],
                color=[colours.get(f, "0.3") for f in part["family"]])
        ax.set_xlim(0, 1)
        ax.set_xlabel("test accuracy")
        ax.text(0.5, 1.01, name, transform=ax.transAxes, ha="center", va="bottom")
        ax.grid(axis="y", visible=False)
    axes[0, 0].set_yticks(range(len(rungs)), rungs, fontsize=9)
    axes[0, 0].invert_yaxis()
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    axes[0, -1].legend(handles, list(colours), fontsize=9, loc="lower right")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- chapter 3

TARGET_LABELS = {**VARIANT_LABELS, "cnn": "CNN", "mlp": "MLP", "cnn-rot": "CNN + rotations"}
# one colour per model across the figures of chapter 3
TARGET_COLORS = {"cnn": "C0", "mlp": "C1", "cnn-rot": "C2", "west": "C3", "sector": "C4",
                 "baseline": "C5"}


def plot_accuracy_vs_eps(attacked: pd.DataFrame, noise: pd.DataFrame, source: str):
    """Target accuracy versus ε per dataset: solid lines under the attack transferred from
    ``source``, dashed under sign noise; bands are ± std over seeds.

    Both tables: dataset, target, eps, mean, std.
    """
    datasets = list(dict.fromkeys(attacked["dataset"]))
    targets = list(dict.fromkeys(attacked["target"]))
    fig, axes = _grid(len(datasets), sharey=True)
    for ax, name in zip(axes.flat, datasets):
        for target in targets:
            colour = TARGET_COLORS.get(target, "0.3")
            for table, style in ((attacked, "-"), (noise, "--")):
                part = table[(table["dataset"] == name) & (table["target"] == target)]
                part = part.sort_values("eps")
                label = TARGET_LABELS.get(target, target) if style == "-" else None
                ax.plot(part["eps"], part["mean"], style, color=colour, marker="o", ms=2.5,
                        lw=1.2 if style == "-" else 0.9, label=label)
                ax.fill_between(part["eps"], part["mean"] - part["std"],
                                part["mean"] + part["std"], color=colour, alpha=0.15, lw=0)
        ax.set_xlabel("ε (L∞, pixels)")
        ax.set_ylim(0, 1)
        ax.text(0.97, 0.95, name, transform=ax.transAxes, ha="right", va="top")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"accuracy (source: {TARGET_LABELS.get(source, source)})")
    axes.flat[0].legend(fontsize=9, loc="lower left")
    fig.tight_layout()
    return fig


def plot_transfer_matrix(matrix: pd.DataFrame, order: list[str]):
    """Target accuracy per source (rows) and target (columns), one panel per dataset.

    ``matrix`` columns: dataset, source, target, mean, std. The diagonal is white-box.
    """
    datasets = list(dict.fromkeys(matrix["dataset"]))
    # two panels a row: at three a row the numbers in the cells were unreadable at page size
    fig, axes = _grid(len(datasets), width=4.5, height=4.3, cols=2)
    labels = [TARGET_LABELS.get(o, o) for o in order]
    for ax, name in zip(axes.flat, datasets):
        m = matrix[matrix["dataset"] == name].pivot(index="source", columns="target",
                                                     values="mean").reindex(index=order,
                                                                            columns=order)
        ax.imshow(m.to_numpy(), cmap="viridis", vmin=0, vmax=1)
        for i in range(len(order)):
            for j in range(len(order)):
                v = m.iat[i, j]
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9,
                            color="white" if v < 0.6 else "black")
        ax.set_xticks(range(len(order)), labels, rotation=45, ha="right", fontsize=9)
        ax.set_yticks(range(len(order)), labels, fontsize=9)
        ax.set_xlabel("target")
        ax.set_ylabel("source")
        ax.grid(False)
        ax.text(0.5, 1.02, name, transform=ax.transAxes, ha="center", va="bottom")
    fig.tight_layout()
    return fig


def plot_sector_energy(energy: pd.DataFrame):
    """Share of the encoded perturbation's energy in sector k = 0 versus ε, per dataset:
    one line per source (PGD) and dashed lines for the noise controls.

    ``energy`` columns: dataset, source, eps, mean, std (k = 0 rows only).
    """
    datasets = list(dict.fromkeys(energy["dataset"]))
    sources = list(dict.fromkeys(energy["source"]))
    fig, axes = _grid(len(datasets), sharey=True)
    for ax, name in zip(axes.flat, datasets):
        for source in sources:
            part = energy[(energy["dataset"] == name) & (energy["source"] == source)]
            part = part.sort_values("eps")
            noise = source.endswith("noise")
            ax.errorbar(part["eps"], part["mean"], yerr=part["std"], capsize=2,
                        marker="s" if source.startswith("sign") else "o", ms=2.5,
                        linestyle="--" if noise else "-",
                        color="0.45" if noise else TARGET_COLORS.get(source, "0.3"),
                        label=source if noise else f"PGD from {TARGET_LABELS.get(source, source)}")
        ax.set_xlabel("ε (L∞, pixels)")
        ax.text(0.97, 0.95, name, transform=ax.transAxes, ha="right", va="top")
    for ax in axes[:, 0]:
        ax.set_ylabel("energy share in k = 0")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4,
               fontsize=9, frameon=False)
    return fig


def plot_restricted(restricted: pd.DataFrame):
    """Quantum-target accuracy under the full transferred perturbation, only its k = 0 or only
    its k ≥ 1 part, and (if present) the energy-matched control (on the sampled grid), versus
    ε. Panels: dataset × target; colours black, red, blue, green in the order of the parts.

    ``restricted`` columns: dataset, target, part, eps, mean, std.
    """
    parts = list(dict.fromkeys(restricted["part"]))

    def draw(ax, target, name):
        for c, part_name in enumerate(parts):
            part = restricted[(restricted["dataset"] == name) & (restricted["target"] == target)
                              & (restricted["part"] == part_name)].sort_values("eps")
            ax.errorbar(part["eps"], part["mean"], yerr=part["std"], marker="o", ms=2.5,
                        capsize=2, color=["0.2", "C3", "C0", "C2"][c % 4], label=part_name)

    return _curve_grid(list(dict.fromkeys(restricted["target"])), TARGET_LABELS,
                       list(dict.fromkeys(restricted["dataset"])), draw, "lower left")


def plot_logit_change(change: pd.DataFrame):
    """Mean change of the true-class logit per sector under the transferred PGD perturbation,
    per dataset; bars per invariant model. ``change`` columns: dataset, target, k, mean, std."""
    datasets = list(dict.fromkeys(change["dataset"]))
    targets = list(dict.fromkeys(change["target"]))
    fig, axes = _grid(len(datasets), height=2.5, sharey=True)
    for ax, name in zip(axes.flat, datasets):
        _grouped_bars(ax, change[change["dataset"] == name], "target", targets)
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_xlabel("sector k")
        ax.text(0.97, 0.05, name, transform=ax.transAxes, ha="right", va="bottom")
    for ax in axes[:, 0]:
        ax.set_ylabel("Δ true-class logit")
    axes.flat[0].legend(fontsize=9)
    fig.tight_layout()
    return fig


def plot_adversarial_examples(clean: np.ndarray, adversarial: np.ndarray, means_clean,
                              means_adv, captions: list[str]):
    """Rows: examples. Columns: clean image, adversarial image, perturbation, ring means."""
    n = len(clean)
    fig, axes = plt.subplots(n, 4, figsize=(9.0, 2.6 * n), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1, 1.6]})
    for i in range(n):
        delta = adversarial[i] - clean[i]
        lim = float(np.abs(delta).max()) or 1.0
        for ax, img, cmap, vmin, vmax in ((axes[i, 0], clean[i], "gray_r", 0, 1),
                                          (axes[i, 1], adversarial[i], "gray_r", 0, 1),
                                          (axes[i, 2], delta, "RdBu_r", -lim, lim)):
            ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        # the example's labels as one horizontal line above its row (rotated labels were
        # unreadable at page size)
        label = axes[i, 0].text(0.0, 1.08, "   ·   ".join(captions[i].splitlines()),
                                transform=axes[i, 0].transAxes, ha="left", va="bottom",
                                fontsize=10.5)
        label.set_in_layout(False)  # it spans the row; tight_layout must not squeeze the axes
        ax = axes[i, 3]
        ax.plot(means_clean[i], marker="o", ms=2.5, label="clean")
        ax.plot(means_adv[i], marker="o", ms=2.5, label="adversarial")
        ax.set_ylabel("ring mean μ_r", fontsize=9)
    for ax, title in zip(axes[-1], ("clean", "adversarial", "perturbation", "ring r")):
        ax.set_xlabel(title)
    axes[0, 3].legend(fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- chapter 4

def plot_robust_vs_eps(table: pd.DataFrame, models: list[str]):
    """Accuracy under transferred PGD versus ε (mean over classical sources; bands ± std over
    seeds) for the chosen models; rows: variants, columns: datasets.

    ``table`` columns: dataset, variant, model, eps, mean, std.
    """
    def draw(ax, variant, name):
        for c, model in enumerate(models):
            part = table[(table["dataset"] == name) & (table["variant"] == variant)
                         & (table["model"] == model)].sort_values("eps")
            ax.plot(part["eps"], part["mean"], marker="o", ms=2.5, color=f"C{c}", label=model)
            ax.fill_between(part["eps"], part["mean"] - part["std"], part["mean"] + part["std"],
                            color=f"C{c}", alpha=0.15, lw=0)

    return _curve_grid(list(dict.fromkeys(table["variant"])), VARIANT_LABELS,
                       list(dict.fromkeys(table["dataset"])), draw, "upper right")


def plot_tradeoff(summary: pd.DataFrame, eps: float):
    """Clean versus robust accuracy at ``eps``: the k = 0 down-weighting path over α (one line
    per variant), the control sectors (grey) and the reference defences (squares, triangles).

    ``summary`` columns: dataset, variant, model, group, clean, robust, clean_std, robust_std.
    """
    datasets = list(dict.fromkeys(summary["dataset"]))
    variants = list(dict.fromkeys(summary["variant"]))
    fig, axes = _grid(len(datasets), width=3.4, height=3.1)
    markers = {"Gaussian-noise training": "s", "adversarial training": "^"}
    for ax, name in zip(axes.flat, datasets):
        for i, variant in enumerate(variants):
            part = summary[(summary["dataset"] == name) & (summary["variant"] == variant)]
            path = part[part["group"] == "k=0 down-weighting"]
            ax.errorbar(path["clean"], path["robust"], xerr=path["clean_std"],
                        yerr=path["robust_std"], marker="o", ms=3, capsize=1.5, color=f"C{i}",
                        label=f"{VARIANT_LABELS.get(variant, variant)}: α path")
            for model, text in (("none", "α=1"), ("k=0 × 0", "α=0")):  # the path's ends
                end = path[path["model"] == model]
                if len(end):
                    ax.annotate(text, (end["clean"].iloc[0], end["robust"].iloc[0]), fontsize=9,
                                xytext=(4, -8), textcoords="offset points", color=f"C{i}")
            controls = part[part["group"] == "control sector"]
            ax.scatter(controls["clean"], controls["robust"], color=f"C{i}", alpha=0.45, s=14,
                       marker="x", label="control sectors" if i == 0 else None)
            for model, marker in markers.items():
                d = part[part["model"] == model]
                ax.errorbar(d["clean"], d["robust"], xerr=d["clean_std"], yerr=d["robust_std"],
                            fmt=marker, ms=5, capsize=1.5, color=f"C{i}", mec="black", mew=0.5,
                            label=model if i == 0 else None)
        ax.set_xlabel("clean accuracy")
        ax.text(0.03, 0.97, name, transform=ax.transAxes, ha="left", va="top")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"robust accuracy (PGD, ε = {eps:g})")
    fig.tight_layout()
    # below the panels: inside one it covered the points
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=min(3, len(labels)), fontsize=10, frameon=False)
    return fig


def plot_control_sectors(table: pd.DataFrame, dataset_order: list[str] | None = None):
    """Change of robust accuracy (top) and of clean accuracy (bottom) when sector k is
    projected out, relative to the unsuppressed model; bars per variant, panels per dataset.

    ``table`` columns: dataset, variant, k, quantity ('robust' or 'clean'), mean, std.
    """
    datasets = list(dict.fromkeys(table["dataset"])) if dataset_order is None else \
        [d for d in dataset_order if d in set(table["dataset"])]
    return _bars_by_quantity(table, [("robust", "Δ robust accuracy"),
                                     ("clean", "Δ clean accuracy")], datasets,
                             [v for v in VARIANT_LABELS if v in set(table["variant"])],
                             "sector k projected out", width=3.1)


# --------------------------------------------------------------------------- chapter 4: threats

THREAT_ORDER = ("transfer", "transfer (strong)", "white-box", "adaptive", "black-box")


def plot_threat_curves(table: pd.DataFrame, models: list[str]):
    """Accuracy versus ε under each threat model (rows) per dataset (columns), one colour per
    model, solid/dashed/dotted per variant; bands ± the spread over seeds.

    ``table`` columns: dataset, variant, model, threat, eps, mean, std.
    """
    threats = [t for t in THREAT_ORDER if t in set(table["threat"])]
    variants = list(dict.fromkeys(table["variant"]))
    styles = dict(zip(variants, ("-", "--", ":")))

    def draw(ax, threat, name):
        for c, model in enumerate(models):
            for variant in variants:
                part = table[(table["dataset"] == name) & (table["variant"] == variant)
                             & (table["model"] == model) & (table["threat"] == threat)]
                part = part.sort_values("eps")
                label = f"{model} ({VARIANT_LABELS.get(variant, variant)})"
                ax.plot(part["eps"], part["mean"], ls=styles[variant], marker="o", ms=2,
                        color=f"C{c}", label=label)
                ax.fill_between(part["eps"], part["mean"] - part["std"],
                                part["mean"] + part["std"], color=f"C{c}", alpha=0.1, lw=0)
        ax.set_xscale("symlog", linthresh=0.02)

    return _curve_grid(threats, {t: t for t in threats}, list(dict.fromkeys(table["dataset"])),
                       draw, "upper right")


def plot_threat_effects(table: pd.DataFrame, threshold: float | None = None):
    """Forest plot: per threat model (rows), the change of robust accuracy (left) and of the
    attack-induced drop (right) of each model against the unsuppressed one, with CIs.

    ``table`` columns: threat, model, and for each quantity q in (robust, drop):
    ``q change``, ``q low``, ``q high`` (e.g. :func:`equivar.studies.threats.comparison`
    averaged over datasets and variants, or the verdict table with model 'k=0 × 0').
    """
    threats = [t for t in THREAT_ORDER if t in set(table["threat"])]
    models = list(dict.fromkeys(table["model"]))
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 0.5 + 0.55 * len(threats) * max(1, len(models))
                                              / 2), sharey=True, squeeze=False)
    height = 0.8 / max(1, len(models))
    for ax, quantity, title in zip(axes[0], ("robust", "drop"),
                                   ("Δ robust accuracy", "Δ attack-induced drop")):
        for m, model in enumerate(models):
            part = table[table["model"] == model].set_index("threat").reindex(threats)
            y = np.arange(len(threats)) + (m - (len(models) - 1) / 2) * height
            est = part[f"{quantity} change"].to_numpy(float)
            err = np.vstack([est - part[f"{quantity} low"].to_numpy(float),
                             part[f"{quantity} high"].to_numpy(float) - est])
            ax.errorbar(est, y, xerr=err, fmt="o", ms=3.5, capsize=2, color=f"C{m}",
                        label=model)
        ax.axvline(0, color="black", lw=0.8)
        if threshold is not None and quantity == "robust":
            ax.axvline(threshold, color="grey", ls="--", lw=0.8)
        ax.set_xlabel(title + " vs unsuppressed")
    axes[0, 0].set_yticks(np.arange(len(threats)), threats)
    axes[0, 0].invert_yaxis()
    axes[0, 1].legend(fontsize=9, loc="best")
    fig.tight_layout()
    return fig


def plot_convergence(curve: pd.DataFrame):
    """Accuracy versus attack iterations (left, log scale) and restarts (right), one row per ε,
    one line per attack, model and variant.

    ``curve`` columns: eps, variant, model, attack, curve ('steps' or 'restarts'), steps,
    restarts, accuracy.
    """
    eps_values = sorted(curve["eps"].unique())
    fig, axes = plt.subplots(len(eps_values), 2, figsize=(8.0, 2.8 * len(eps_values)),
                             sharey="row", squeeze=False)
    lines = list(dict.fromkeys(zip(curve["variant"], curve["model"], curve["attack"])))
    for row, eps in zip(axes, eps_values):
        for i, (variant, model, attack) in enumerate(lines):
            part = curve[(curve["eps"] == eps) & (curve["variant"] == variant)
                         & (curve["model"] == model) & (curve["attack"] == attack)]
            label = f"{attack}: {model} ({VARIANT_LABELS.get(variant, variant)})"
            style = dict(color=f"C{i // 2}", ls="-" if attack == "PGD" else "--", marker="o",
                         ms=3)
            steps = part[part["curve"] == "steps"].sort_values("steps")
            row[0].plot(steps["steps"], steps["accuracy"], label=label, **style)
            restarts = part[part["curve"] == "restarts"].sort_values("restarts")
            row[1].plot(restarts["restarts"], restarts["accuracy"], **style)
        row[0].set_xscale("log")
        row[0].set_ylabel(f"accuracy at ε = {eps:g}")
        row[1].xaxis.get_major_locator().set_params(integer=True)
    axes[-1, 0].set_xlabel("iterations (one run)")
    axes[-1, 1].set_xlabel("restarts (most iterations; worst case)")
    axes[0, 0].legend(fontsize=9)
    fig.tight_layout()
    return fig
