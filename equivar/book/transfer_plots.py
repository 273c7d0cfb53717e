"""Chapter 3's figure of the stronger transfer attacks (:mod:`equivar.studies.strong_transfer`):
accuracy versus ε per attack for each quantum target, and the ring-mean (k = 0) share of the
damage per attack at the reference ε. Returns a figure for :func:`equivar.book.plots.save_figure`.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from equivar.book.verdict_plots import check_table as _check
from equivar.settings import VARIANT_LABELS


def plot_strong_transfer(curves: pd.DataFrame, shares: pd.DataFrame, labels: dict[str, str],
                         weak=("fgsm from cnn", "pgd from cnn")):
    """Left panels (one per target of ``curves``: target, attack, eps, accuracy, low, high):
    accuracy versus ε with 95 % CI bands, strong attacks solid, the ``weak`` references of
    chapter 3 dashed grey. Right
    panel (``shares``: label, strength, k=0 share, share low, share high, eps): the share of
    the damage the k = 0 part reproduces alone, per attack, with its CI; 1 dotted."""
    _check(curves, ["target", "attack", "eps", "accuracy", "low", "high"], "curves")
    _check(shares, ["label", "strength", "k=0 share", "share low", "share high", "eps"],
           "shares")
    targets = list(dict.fromkeys(curves["target"]))
    attacks = list(dict.fromkeys(curves["attack"]))
    strong = [a for a in attacks if a not in weak]
    colours = dict(zip(strong, plt.get_cmap("tab10").colors))
    fig, axes = plt.subplots(1, len(targets) + 1, figsize=(3.2 * len(targets) + 3.6, 3.2),
                             layout="constrained",
                             gridspec_kw={"width_ratios": [1] * len(targets) + [1.15]})
    for ax, target in zip(axes, targets):
        for attack in attacks:
            part = curves[(curves["target"] == target) & (curves["attack"] == attack)] \
                .sort_values("eps")
            if attack in weak:
                style = dict(color="0.45", ls="--" if attack.startswith("pgd") else ":", lw=1.2)
            else:
                style = dict(color=colours[attack], lw=1.6)
            ax.plot(part["eps"], part["accuracy"], marker=".", label=labels.get(attack, attack),
                    **style)
            if attack not in weak:
                ax.fill_between(part["eps"], part["low"], part["high"], color=style["color"],
                                alpha=0.12, lw=0)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(VARIANT_LABELS.get(target, target))
        ax.set_xlabel("ε (L∞, pixels in [0, 1])")
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=7, loc="upper right", frameon=False)
    ax = axes[-1]
    y = np.arange(len(shares))[::-1]
    for yi, (_, r) in zip(y, shares.iterrows()):
        colour = "0.45" if r["strength"] != "strong" else \
            colours.get(r.get("attack"), "C0")
        if np.isfinite(r["share low"]):
            ax.plot([r["share low"], r["share high"]], [yi, yi], color="0.2", lw=1.4)
        if np.isfinite(r["k=0 share"]):
            ax.scatter([r["k=0 share"]], [yi], s=50, color=colour, edgecolor="0.2", zorder=3)
        else:
            ax.text(0.02, yi, "damage too small", va="center", fontsize=7, color="0.4")
    ax.axvline(0, color="0.4", lw=0.8)
    ax.axvline(1, color="0.4", lw=0.8, ls=":")
    ax.set_yticks(y, list(shares["label"]))
    ax.set_xlabel("share of the damage\nfrom the k = 0 part alone")
    ax.set_title(f"ε = {shares['eps'].iloc[0]:g}")
    return fig
