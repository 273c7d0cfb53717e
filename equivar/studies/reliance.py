"""Which invariant statistics a trained model relies on (chapter 2).

* :func:`transform_accuracies`: accuracy on test grids after each targeted transformation of
  :mod:`equivar.core.transforms`;
* :func:`follow_rates`: the sector swap, "label follows sector k": how often replacing sector k
  of image A by that of an image B of another class makes the model predict B's class;
* :func:`planted_sector_check`: on the synthetic data, which sector carries the planted
  difference for ring-profile pairs and for angular pairs (the validation of the method);
* :func:`sector_attribution`: for an invariant model, the contribution Tr[ρ_k M_k] of each
  independent sector k to the winning logit and to the margin over the runner-up;
* :func:`verdicts`: C3-reliance judged by its pre-registered rule (:data:`equivar.stats.RULES`)
  on per-image predictions (:func:`correctness`): the ring means removed against a
  norm-matched control (:mod:`equivar.studies.controls`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from equivar import data, stats
from equivar.core import sectors
from equivar.core.model import QuantumClassifier, amplitudes
from equivar.core.transforms import TRANSFORMS, swap_sectors
from equivar.learn.train import accuracy, encode, predict, trained
from equivar.settings import VARIANT_LABELS, LadderSettings
from equivar.studies import controls, ladder, scorecard
from equivar.runtime import progress as progress_bar
from equivar.studies.units import Unit


def transform_predictions(model: QuantumClassifier, grids, seed: int = 0) -> dict:
    """Predicted classes (n,) on ``grids`` (n, R, N) after every transformation; {name: array}."""
    return {t.name: predict(model, amplitudes(t.apply(grids, np.random.default_rng([seed, i]))))
            for i, t in enumerate(TRANSFORMS)}


def transform_accuracies(model: QuantumClassifier, grids, labels, seed: int = 0) -> dict:
    """Accuracy on ``grids`` (n, R, N) after every transformation; {name: accuracy}."""
    labels = np.asarray(labels)
    return {name: float((pred == labels).mean())
            for name, pred in transform_predictions(model, grids, seed).items()}


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
    out = ladder.units(LadderSettings.for_profile(settings.profile), also=settings.datasets) \
        if settings.models == "selected" else []
    for seed in range(settings.seed, settings.seed + settings.n_seeds):
        out += [ladder.chapter_model_unit(settings, dataset, variant, seed)
                for dataset in names for variant in settings.variants]
    return out


def study(settings, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Train (or load) every model of chapter 2 and run every analysis on it.

    ``settings``: :class:`equivar.settings.RelianceSettings`. Returns DataFrames ``clean``,
    ``transforms``, ``follow``, ``attribution``, ``planted``, ``controls`` (the energy-matched
    controls of :mod:`equivar.studies.controls`, invariant models on real data) (one row per
    dataset, variant, seed and item), ``predictions`` (one row per model and condition: every
    test image's predicted class as a string of digits, and the labels; see
    :func:`correctness`) and ``notes``.
    """
    names, notes = data.resolve(settings.datasets, fallbacks={"mnist": "mnist-5k"})
    seeds = [settings.seed + i for i in range(settings.n_seeds)]
    rows = {key: [] for key in ("clean", "transforms", "follow", "attribution", "planted",
                                "controls", "predictions")}
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
        for name, pred in transform_predictions(model, grids, seed).items():
            rows["transforms"].append({**tag, "transform": name,
                                       "accuracy": float((pred == labels).mean())})
            rows["predictions"].append({**tag, "condition": name,
                                        "predicted": encode_classes(pred),
                                        "labels": encode_classes(labels)})
        if variant in INVARIANT and dataset != "synthetic":
            found = controls.reliance_controls(model, grids, labels, seed)
            for name, ok in found["correct"].items():
                rows["controls"].append({**tag, "control": name, "accuracy": float(ok.mean()),
                                         "moved": found["moved"][name]})
                if name not in TRANSFORM_NAMES:   # those are stored with the transformations
                    rows["predictions"].append({**tag, "condition": name,
                                                "predicted": encode_classes(
                                                    found["predicted"][name]),
                                                "labels": encode_classes(labels)})
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


def reliance_ratios(tables: dict[str, pd.DataFrame], n_classes: dict[str, int]) -> pd.DataFrame:
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


# ----------------------------------------------------------------- per-image data and verdicts

INVARIANT = ("west", "sector")   # the exactly invariant models the claims are about
TRANSFORM_NAMES = {t.name for t in TRANSFORMS}
RELIANCE_FIGURE = "fig-reliance-verdicts"
CONTROL = controls.REFERENCE_CONTROL   # k ≥ 1 perturbed with the removal's norm


def encode_classes(classes) -> str:
    """Predicted classes (n,) in 0..9 as a string of n digits (compact per-image CSV cells)."""
    classes = np.asarray(classes)
    if classes.size and (classes.min() < 0 or classes.max() > 9):
        raise ValueError(f"classes must lie in 0..9 to be stored as digits, got "
                         f"{classes.min()}..{classes.max()}")
    return "".join(map(str, classes.tolist()))


def decode_classes(text: str) -> np.ndarray:
    """Inverse of :func:`encode_classes`."""
    return np.frombuffer(text.encode(), dtype=np.uint8).astype(np.int64) - ord("0")


def correctness(predictions: pd.DataFrame, dataset: str, variant: str,
                condition: str) -> np.ndarray:
    """(n_seeds, n_images) bool: which test image each seed's model got right under
    ``condition`` (a transformation or a control), rows in seed order, from the study's
    ``predictions`` table."""
    part = predictions[(predictions["dataset"] == dataset) & (predictions["variant"] == variant)
                       & (predictions["condition"] == condition)].sort_values("seed")
    if part.empty:
        raise ValueError(f"no predictions for {dataset}/{variant} under {condition!r}")
    return np.stack([decode_classes(p) == decode_classes(y)
                     for p, y in zip(part["predicted"], part["labels"])])


def _pooled(predictions, pairs, condition) -> np.ndarray:
    return np.concatenate([correctness(predictions, d, v, condition) for d, v in pairs], axis=1)


def _image_ids(predictions, pairs, condition) -> np.ndarray:
    """One id per column of :func:`_pooled`: the models of one dataset score the same images,
    so their columns are one image to the bootstrap."""
    return np.concatenate([[f"{d}/{j}" for j in range(correctness(predictions, d, v,
                                                                  condition).shape[1])]
                           for d, v in pairs])


def _seed_p(a, b) -> float:
    """Two-sided seed-level sign-flip p; 1 with one seed (no sign can be flipped)."""
    return 1.0 if a.shape[0] < 2 else float(stats.permutation_test_seeds(a, b).pvalue)


def verdicts(results: dict[str, pd.DataFrame], n_resamples: int = 10_000):
    """C3-reliance, judged with :data:`equivar.stats.RULES` (fixed before the run).

    Statistic per image (the rule's): correct under the norm-matched control (a perturbation
    within k ≥ 1 with the norm of the ring-mean removal, ring means kept) minus correct with
    the ring means removed, i.e. the extra accuracy drop due to *which* part is changed; paired
    over seeds × test images (two-level bootstrap 95 % CI) with the seed-level sign-flip test.

    Returns (rows, table): ``rows`` the chapter's verdict family for the scorecard (one claim,
    pooled over the real datasets and the invariant models); ``table`` the same statistic
    per dataset and model, each judged by the same rule with Holm over those combinations.
    """
    pred = results["predictions"]
    pairs = [(d, v) for (d, v), _ in pred[pred["condition"] == CONTROL]
             .groupby(["dataset", "variant"], sort=False)]
    if not pairs:
        raise ValueError("no norm-matched controls in the results (no invariant model on a "
                         "real dataset)")
    rows, found = [], {}
    for dataset, variant in pairs:
        a = correctness(pred, dataset, variant, CONTROL)
        b = correctness(pred, dataset, variant, "ring means removed")
        clean = correctness(pred, dataset, variant, "none")
        ci = stats.bootstrap_difference(a, b, n_resamples=n_resamples)
        found[(dataset, variant)] = (ci, _seed_p(a, b))
        rows.append({"dataset": dataset, "variant": variant, "clean": clean.mean(),
                     "ring means removed": b.mean(), "norm-matched control": a.mean(),
                     "statistic": ci.estimate, "low": ci.low, "high": ci.high,
                     "p (seeds, raw)": found[(dataset, variant)][1]})
    table = pd.DataFrame(rows)
    rule = stats.RULES["C3-reliance"]
    table["p (Holm)"] = stats.holm(table["p (seeds, raw)"])
    table["verdict"] = [str(stats.judge(rule, found[k][0], p))
                        for k, p in zip(pairs, table["p (Holm)"])]
    a, b = _pooled(pred, pairs, CONTROL), _pooled(pred, pairs, "ring means removed")
    ci = stats.bootstrap_difference(a, b, n_resamples=n_resamples,
                                    image_ids=_image_ids(pred, pairs, CONTROL))
    scope = "pooled over " + ", ".join(f"{d}/{v}" for d, v in pairs)
    family = scorecard.judge_rows({"C3-reliance": (ci, _seed_p(a, b))}, stats.RULES,
                                  {"C3-reliance": RELIANCE_FIGURE}, "02", scope)
    table.attrs["CI"] = ci.what
    table.attrs["min p"] = stats.min_pvalue(int(a.shape[0]))
    return family, table


def conclusion_markdown(family: list[dict], table: pd.DataFrame, settings) -> str:
    """The chapter's conclusion, generated from :func:`verdicts`."""
    lines = []
    for _, r in table.iterrows():
        lines.append(
            f"- **{r['dataset']}, {VARIANT_LABELS.get(r['variant'], r['variant'])}**: clean "
            f"{r['clean']:.3f}; ring means removed {r['ring means removed']:.3f}; a perturbation "
            f"of the same norm within k ≥ 1 {r['norm-matched control']:.3f}. Extra drop from "
            f"removing the ring means: {r['statistic']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}], Holm "
            f"p = {r['p (Holm)']:.3g}: **{r['verdict']}**.")
    row = family[0]
    lines += ["", f"**C3-reliance, pooled** ({row['scope']}): {row['estimate']:+.3f} "
              f"[{row['low']:+.3f}, {row['high']:+.3f}], p = {row['p_holm']:.3g}: "
              f"**{row['verdict']}**. Why: {row['why']}.",
              "", f"Intervals: {table.attrs['CI']}. Profile `{settings.profile}`: "
              f"{stats.floor_note(settings.n_seeds, len(family))}."]
    return "\n".join(lines)
