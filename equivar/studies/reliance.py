"""Which invariant statistics a trained model relies on (chapter 2).

* :func:`transform_accuracies`: accuracy on test grids after each targeted transformation of
  :mod:`equivar.core.transforms`;
* :func:`follow_rates`: the sector swap, "label follows sector k": how often replacing sector k
  of image A by that of an image B of another class makes the model predict B's class;
* :func:`planted_sector_check`: on the synthetic data, which sector carries the planted
  difference for ring-profile pairs and for angular pairs (the validation of the method);
* :func:`sector_attribution`: for an invariant model, the contribution Tr[ρ_k M_k] of each
  independent sector k to the winning logit and to the margin over the runner-up.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from equivar import data
from equivar.core import sectors
from equivar.core.model import QuantumClassifier, amplitudes
from equivar.core.transforms import TRANSFORMS, swap_sectors
from equivar.learn.train import accuracy, encode, predict, trained
from equivar.settings import VARIANT_LABELS, LadderSettings
from equivar.studies import ladder
from equivar.runtime import progress as progress_bar
from equivar.studies.units import Unit


def transform_accuracies(model: QuantumClassifier, grids, labels, seed: int = 0) -> dict:
    """Accuracy on ``grids`` (n, R, N) after every transformation; {name: accuracy}."""
    out = {}
    labels = np.asarray(labels)
    for i, t in enumerate(TRANSFORMS):
        rng = np.random.default_rng([seed, i])
        out[t.name] = float((predict(model, amplitudes(t.apply(grids, rng))) == labels).mean())
    return out


def sample_pairs(labels, predictions, n_pairs: int, seed: int, same_pair_type=None):
    """Index pairs (a, b), labels differing, both correctly classified.

    ``same_pair_type(label_a, label_b) -> bool`` restricts which class pairs qualify.
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    correct = np.flatnonzero(labels == predictions)
    rng = np.random.default_rng(seed)
    pairs = []
    if len(correct) < 2:
        return np.zeros((0, 2), dtype=int)
    for _ in range(50 * n_pairs):
        if len(pairs) == n_pairs:
            break
        a, b = rng.choice(correct, size=2, replace=False)
        if labels[a] == labels[b]:
            continue
        if same_pair_type is not None and not same_pair_type(labels[a], labels[b]):
            continue
        pairs.append((a, b))
    return np.array(pairs, dtype=int).reshape(-1, 2)


def follow_rates(model: QuantumClassifier, grids, labels, n_pairs: int, seed: int = 0,
                 same_pair_type=None) -> pd.DataFrame:
    """Sector swap: for each independent k, share of pairs whose prediction follows B.

    Returns a DataFrame with columns k, follows_b, stays_a, n_pairs (k = 0..N/2).
    """
    labels = np.asarray(labels)
    pairs = sample_pairs(labels, predict(model, amplitudes(grids)), n_pairs, seed, same_pair_type)
    rows = []
    for k in sectors.independent_sectors(grids.shape[-1]):
        if len(pairs) == 0:
            rows.append({"k": k, "follows_b": np.nan, "stays_a": np.nan, "n_pairs": 0})
            continue
        swapped = swap_sectors(grids[pairs[:, 0]], grids[pairs[:, 1]], k)
        pred = predict(model, amplitudes(swapped))
        rows.append({"k": k, "follows_b": float((pred == labels[pairs[:, 1]]).mean()),
                     "stays_a": float((pred == labels[pairs[:, 0]]).mean()),
                     "n_pairs": len(pairs)})
    return pd.DataFrame(rows)


def synthetic_pair_types(label_a: int, label_b: int) -> str:
    """Class pairs of the synthetic data: 'ring profile' (differ only in ring means),
    'angular' (differ only at the planted k), or 'both'."""
    profile, pattern = (label_a % 2) != (label_b % 2), (label_a >= 2) != (label_b >= 2)
    return "ring profile" if profile and not pattern else "angular" if pattern and not profile \
        else "both"


def planted_sector_check(model: QuantumClassifier, grids, labels, planted_k: int,
                         n_pairs: int, seed: int = 0) -> pd.DataFrame:
    """Follow rates on the synthetic data, separately for ring-profile and angular pairs.

    The analysis passes when the sector with the highest follow rate is k = 0 for
    ring-profile pairs and ``planted_k`` for angular pairs. Columns: pair type, k, follows_b,
    stays_a, n_pairs, expected (the planted sector), identified (argmax), passed.
    """
    tables = []
    for pair_type, expected in (("ring profile", 0), ("angular", planted_k)):
        table = follow_rates(model, grids, labels, n_pairs, seed,
                             lambda a, b, t=pair_type: synthetic_pair_types(a, b) == t)
        table.insert(0, "pair type", pair_type)
        table["expected"] = expected
        identified = int(table.loc[table["follows_b"].idxmax(), "k"]) \
            if table["follows_b"].notna().any() else -1
        table["identified"] = identified
        table["passed"] = identified == expected
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def sector_attribution(model: QuantumClassifier, grids) -> pd.DataFrame:
    """Per independent sector k: mean |contribution| to the winning logit and mean
    contribution to the margin (winner minus runner-up), in logit units.

    Uses f_c = Σ_k Tr[ρ_k M_{c,k}], exact for invariant models (``variant != "baseline"``).
    """
    cfg = model.config
    if not cfg.equivariant:
        raise ValueError("sector attribution needs an invariant model, not the baseline")
    with torch.no_grad():
        blocks = sectors.operator_blocks(model.observables().numpy(), cfg.n_rad, cfg.n_ang)
    contrib = cfg.scale * sectors.sector_contributions(np.asarray(grids), blocks)  # (B, C, N)
    folded = sectors.fold_weights(contrib)  # (B, C, K)
    logits = folded.sum(-1)
    order = np.argsort(-logits, axis=1)
    idx = np.arange(len(logits))
    win, second = folded[idx, order[:, 0]], folded[idx, order[:, 1]]
    return pd.DataFrame({"k": np.arange(folded.shape[-1]),
                         "winning_logit": np.abs(win).mean(0),
                         "margin": (win - second).mean(0),
                         "margin_std": (win - second).std(0)})


# ----------------------------------------------------------------- the chapter's study

def units(settings) -> list[Unit]:
    """Chapter 2's expensive work: the selection and the capacity ladder (stages 0-1), then one
    trained model per dataset, seed and variant (stage 1)."""
    names, _ = data.resolve(settings.datasets, fallbacks={"mnist": "mnist-5k"})
    out = ladder.units(LadderSettings.for_profile(settings.profile)) \
        if settings.models == "selected" else []
    for seed in range(settings.seed, settings.seed + settings.n_seeds):
        own = replace(settings, seed=seed, n_seeds=1)  # keys independent of the split
        out += [Unit(1, f"model {dataset}/{variant}/seed {seed}", ladder.train_chapter_model,
                     (own, dataset, variant, seed))
                for dataset in names for variant in settings.variants]
    return out


def study(settings, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Train (or load) every model of chapter 2 and run every analysis on it.

    ``settings``: :class:`equivar.settings.RelianceSettings`. Returns DataFrames ``clean``,
    ``transforms``, ``follow``, ``attribution``, ``planted`` (one row per dataset, variant,
    seed and item) and ``notes`` (datasets skipped or replaced).
    """
    names, notes = data.resolve(settings.datasets, fallbacks={"mnist": "mnist-5k"})
    seeds = [settings.seed + i for i in range(settings.n_seeds)]
    rows = {key: [] for key in ("clean", "transforms", "follow", "attribution", "planted")}
    jobs = [(d, s, v) for d in names for s in seeds for v in settings.variants]
    test_sets = {}
    for dataset, seed, variant in progress_bar(jobs, desc="models", disable=not progress):
        if dataset not in test_sets:
            options = {"planted_k": settings.planted_k} if dataset == "synthetic" else {}
            x, y = data.load(dataset, "test", n=min(settings.n_test, data.split_size(dataset, "test")),
                             seed=settings.seed, **options)
            test_sets[dataset] = (*encode(x), y)
        grids, states, labels = test_sets[dataset]
        spec = ladder.model_spec(settings, dataset, variant, seed)
        model, record = trained(spec, progress=False)
        tag = {"dataset": dataset, "variant": variant, "seed": seed}
        rows["clean"].append({**tag, "accuracy": accuracy(model, states, labels),
                              "train_accuracy": record["train_accuracy"][-1],
                              "n_train": record["n_train"], "n_test": len(labels),
                              "cached": record["cached"]})
        for name, acc in transform_accuracies(model, grids, labels, seed).items():
            rows["transforms"].append({**tag, "transform": name, "accuracy": acc})
        for row in follow_rates(model, grids, labels, settings.n_pairs, seed).to_dict("records"):
            rows["follow"].append({**tag, **row})
        if model.config.equivariant:
            for row in sector_attribution(model, grids).to_dict("records"):
                rows["attribution"].append({**tag, **row})
        if dataset == "synthetic":
            check = planted_sector_check(model, grids, labels, settings.planted_k,
                                         settings.n_pairs, seed)
            rows["planted"] += [{**tag, **row} for row in check.to_dict("records")]
    out = {key: pd.DataFrame(value) for key, value in rows.items()}
    out["notes"] = pd.DataFrame([{"dataset": k, "note": v} for k, v in notes.items()],
                                columns=["dataset", "note"])
    return out


def _std(values) -> float:
    """Population standard deviation over seeds, ignoring NaN (NaN if all are)."""
    values = np.asarray(values, dtype=float)
    return float(np.nanstd(values)) if np.isfinite(values).any() else float("nan")


def summarise(table: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """Mean and standard deviation of ``value`` over seeds, grouped by ``by``."""
    grouped = table.groupby(by, sort=False)[value]
    return grouped.agg(mean="mean", std=_std, n="count").reset_index()


def ring_mean_verdicts(tables: dict[str, pd.DataFrame], n_classes: dict[str, int]) -> pd.DataFrame:
    """Per dataset and variant, the numbers behind "does it rely on the ring means?".

    * ``sufficiency``: (acc with ring means only - chance) / (clean acc - chance);
    * ``necessity``: (clean acc - acc with ring means removed) / (clean acc - chance);
    * ``follows_k0``: label-follows rate of the k = 0 swap, and ``follows_best_k`` the largest
      rate among k >= 1 (with that k).
    All are means over seeds (``_std``: standard deviation over seeds).
    """
    acc = tables["transforms"].pivot_table(index=["dataset", "variant", "seed"],
                                           columns="transform", values="accuracy").reset_index()
    chance = acc["dataset"].map(lambda d: 1 / n_classes[d])
    # ratios are undefined for a model no better than chance (< 5 points above it)
    gain = (acc["none"] - chance).where(acc["none"] - chance >= 0.05)
    acc["sufficiency"] = (acc["ring means only"] - chance) / gain
    acc["necessity"] = (acc["none"] - acc["ring means removed"]) / gain
    follow = tables["follow"]
    k0 = follow[follow["k"] == 0].set_index(["dataset", "variant", "seed"])["follows_b"]
    rest = follow[follow["k"] > 0]
    best = (rest.sort_values("follows_b", ascending=False, na_position="last", kind="stable")
            .groupby(["dataset", "variant", "seed"]).head(1)
            .set_index(["dataset", "variant", "seed"]))
    acc = acc.set_index(["dataset", "variant", "seed"])
    acc["follows_k0"] = k0
    acc["follows_best_k"] = best["follows_b"]
    acc["best_k"] = best["k"].where(best["follows_b"].notna())
    acc = acc.reset_index()
    cols = ["none", "sufficiency", "necessity", "follows_k0", "follows_best_k"]
    out = acc.groupby(["dataset", "variant"], sort=False)[cols].agg(["mean", _std])
    out.columns = [c if s == "mean" else f"{c}_std" for c, s in
                   [(c, "mean" if f == "mean" else "std") for c, f in out.columns]]
    out["best_k"] = acc.groupby(["dataset", "variant"], sort=False)["best_k"].agg(
        lambda v: int(v.mode().iloc[0]) if v.notna().any() else -1)
    return out.rename(columns={"none": "clean", "none_std": "clean_std"}).reset_index()


MAINLY, PARTLY, NOT = ("relies mainly on the ring means", "relies on the ring means in part",
                       "no strong reliance on the ring means detected")


def judge(row) -> str:
    """A plain-language reading of one row of :func:`ring_mean_verdicts` (thresholds: ours).

    * mainly: necessity ≥ 50 % and the k = 0 swap moves the label at least 5 points more
      often than any other sector's swap;
    * in part: necessity ≥ 25 % or the k = 0 swap moves the label in ≥ 25 % of pairs;
    * otherwise no strong reliance detected. Undefined for models < 5 points above chance.
    """
    if not np.isfinite(row["necessity"]):
        return "too close to chance to judge"
    k0, other = row["follows_k0"], row["follows_best_k"]
    k0 = 0.0 if not np.isfinite(k0) else k0
    other = 0.0 if not np.isfinite(other) else other
    if row["necessity"] >= 0.5 and k0 >= other + 0.05:
        return MAINLY
    if row["necessity"] >= 0.25 or k0 >= 0.25:
        return PARTLY
    return NOT


def conclusion_markdown(verdicts: pd.DataFrame, settings) -> str:
    """The chapter's conclusion as Markdown, generated from :func:`ring_mean_verdicts`."""
    def pct(value, std):
        return "n/a" if not np.isfinite(value) else f"{value:.0%} ± {std:.0%}"

    lines, counts = [], {"mainly": 0, "part": 0, "not": 0}
    for dataset, part in verdicts.groupby("dataset", sort=False):
        lines.append(f"**{dataset}**" + (" (planted data: both cues informative by design)"
                                         if dataset == "synthetic" else ""))
        lines.append("")
        for _, row in part.iterrows():
            reading = judge(row)
            if dataset != "synthetic" and row["variant"] != "baseline":
                key = {MAINLY: "mainly", PARTLY: "part", NOT: "not"}.get(reading)
                if key:
                    counts[key] += 1
            best = "" if row["best_k"] < 0 else (
                f" (strongest other sector: k = {row['best_k']}, "
                f"{pct(row['follows_best_k'], row['follows_best_k_std'])})")
            lines.append(
                f"- {VARIANT_LABELS.get(row['variant'], row['variant'])}: clean accuracy "
                f"{row['clean']:.3f} ± {row['clean_std']:.3f}; ring means alone keep "
                f"{pct(row['sufficiency'], row['sufficiency_std'])} of the above-chance "
                f"accuracy, removing them loses {pct(row['necessity'], row['necessity_std'])}; "
                f"swapping k = 0 moves the label in {pct(row['follows_k0'], row['follows_k0_std'])} "
                f"of pairs{best}. **Reading: {reading}.**")
        lines.append("")
    total = sum(counts.values())
    if total:
        lines.append(
            f"Over the real datasets, the invariant models (West's and sector-resolved) rely "
            f"mainly on the ring means in {counts['mainly']} of {total} dataset–model "
            f"combinations, in part in {counts['part']}, and show no strong reliance in "
            f"{counts['not']} (profile `{settings.profile}`, {settings.n_seeds} seed(s); ± are "
            f"spreads over seeds).")
    return "\n".join(lines)
