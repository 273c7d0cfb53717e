"""Chapter 3, stronger transfer: do the ring means still carry the damage under MI-, DI- and
VMI-FGSM, an ensemble of surrogates and a surrogate that sees the ring grid?

The adversarial sets are chapter 4's (:func:`equivar.studies.threats.transfer_sets`, cached,
crafted on the first ``n_threat`` of chapter 3's attacked images with chapter 4's settings of the
same profile), so both chapters share one crafting. :func:`study` scores chapter 2's three
quantum models (same seeds) on every set, whole and split on the sampled ring grid into its
ring-mean (k = 0) part and the rest, exactly as chapter 3's restricted transfer
(:func:`equivar.adversary.attacks.restricted`), and keeps per-image correctness.
"""
from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pandas as pd

from equivar import data, stats
from equivar.adversary import attacks
from equivar.core import sectors
from equivar.core.model import amplitudes
from equivar.core.pipeline import QuantumPipeline
from equivar.learn.surrogates import predict_images
from equivar.learn.train import predict, trained
from equivar.runtime import progress as progress_bar
from equivar.settings import SAMPLING, SuppressionSettings
from equivar.studies import ladder, threats
from equivar.studies.reliance import INVARIANT, decode_classes, encode_classes
from equivar.studies.transfer import PARTS, QUANTUM
from equivar.studies.units import Unit, cached_rows, train_surrogate

# the stronger attacks, as "attack from source" (threats.STRONG), and chapter 3's PGD and FGSM
# from the small CNN as the weak reference
STRONG = tuple(f"{attack} from {source}" for source, attack in threats.STRONG)
WEAK = ("fgsm from cnn", "pgd from cnn")
LABELS = {"mifgsm from cnn": "MI-FGSM (CNN)", "difgsm from cnn": "DI-FGSM (CNN)",
          "vmifgsm from cnn": "VMI-FGSM (CNN)", "pgd from ensemble": "PGD (ensemble)",
          "pgd from ring": "PGD (ring surrogate)", "fgsm from cnn": "FGSM (CNN, ch. 3)",
          "pgd from cnn": "PGD (CNN, ch. 3)"}
# damage (clean - attacked accuracy) below this is too small for a share to mean anything
MIN_DAMAGE = 0.02
FIGURE = "fig-transfer-strong"


def threat_settings(settings) -> SuppressionSettings:
    """Chapter 4's settings of the same profile, seeds and datasets as chapter 3's
    ``settings``: whose :func:`~equivar.studies.threats.transfer_sets` this study scores."""
    return SuppressionSettings.for_profile(settings.profile, seed=settings.seed,
                                           n_seeds=settings.n_seeds, datasets=settings.datasets)


def units(settings) -> list[Unit]:
    """The ring surrogates (stage 1), the strong transfer sets (stage 3: they reuse chapter
    3's stored sets of stage 2; the same units as chapter 4 lists, so a sweep of both chapters
    computes them once) and the scores on them (stage 4), per dataset and seed."""
    sup = threat_settings(settings)
    ts = sup.transfer_settings()
    names, _ = data.resolve(settings.datasets, fallbacks={"mnist": "mnist-5k"})
    out = []
    for dataset in names:
        for seed in range(settings.seed, settings.seed + settings.n_seeds):
            out.append(Unit(0, f"surrogate {dataset}/ring/seed {seed}", train_surrogate,
                            (threats.ring_surrogate(ts, dataset, seed),)))
            out.append(Unit(3, f"threat-model transfer sets {dataset}/seed {seed}",
                            threats.transfer_sets, (replace(sup, seed=seed, n_seeds=1),
                                                    dataset, seed)))
            out.append(Unit(4, f"strong transfer scores {dataset}/seed {seed}", score_unit,
                            (replace(settings, seed=seed, n_seeds=1), dataset, seed)))
    return out


def split_grids(images, perturbed) -> dict[str, np.ndarray]:
    """The ring grids (N, R, N_angles) of ``images`` plus only the k = 0 part (``"k=0 only"``)
    or only the k ≥ 1 part (``"k>=1 only"``) of the grid perturbation of ``perturbed``."""
    every = sectors.independent_sectors(SAMPLING.n_angles)
    return {"k=0 only": attacks.restricted(images, perturbed, [0]),
            "k>=1 only": attacks.restricted(images, perturbed, every[1:])}


def study(settings, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Score chapter 2's quantum models (``transfer.QUANTUM``) of every seed on the strong
    transfer sets and chapter 3's FGSM/PGD from the CNN at every ε > 0 of chapter 4's
    budgets, for chapter 3's :class:`~equivar.settings.TransferSettings` ``settings``.

    Returns ``accuracy`` (dataset, seed, target, attack, strength, eps, part, accuracy),
    ``predictions`` (the same keys plus the predicted classes and labels per image, encoded;
    clean as attack ``"clean"`` at ε = 0). Parts (``transfer.PARTS``) at chapter 3's budgets only (the large ε of chapter
    4 allow any image, where a split says nothing)."""
    names, _ = data.resolve(settings.datasets, fallbacks={"mnist": "mnist-5k"})
    seeds = [settings.seed + i for i in range(settings.n_seeds)]
    rows = {"accuracy": [], "predictions": []}
    for dataset, seed in progress_bar([(d, s) for d in names for s in seeds],
                                      desc="strong transfer", disable=not progress):
        for table, part in seed_scores(settings, dataset, seed).items():
            rows[table].extend(part)
    return {k: pd.DataFrame(v) for k, v in rows.items()}


def seed_scores(settings, dataset: str, seed: int) -> dict[str, list[dict]]:
    """The rows of :func:`study`'s tables for one dataset and seed (cached, kind ``score``)."""
    own = replace(settings, seed=seed, n_seeds=1)
    images, labels = threats.threat_images(threat_settings(own), dataset)
    return cached_rows("strong transfer", {"settings": asdict(own), "dataset": dataset,
                                           "data": data.fingerprint(images, labels)},
                       lambda: _score_seed(own, dataset, seed))


def score_unit(settings, dataset: str, seed: int) -> None:
    """Score one dataset and seed (:func:`seed_scores`) into the cache."""
    seed_scores(settings, dataset, seed)


def _score_seed(settings, dataset: str, seed: int) -> dict[str, list[dict]]:
    sup = threat_settings(settings)
    models = settings.model_settings()
    split_eps = {float(e) for e in settings.epsilons if e > 0}
    rows = {"accuracy": [], "predictions": []}
    own = replace(sup, seed=seed, n_seeds=1)
    images, labels = threats.threat_images(own, dataset)
    sets = threats.transfer_sets(own, dataset, seed)
    chosen = {(f"{attack} from {source}", float(eps)): adv
              for (threat, source, attack, eps), adv in sets.items()
              if f"{attack} from {source}" in STRONG + WEAK}
    label_text = encode_classes(labels)
    for target in QUANTUM:
        model, _ = trained(ladder.model_spec(models, dataset, target, seed), progress=False)
        pipe = QuantumPipeline(model)
        tag = {"dataset": dataset, "seed": seed, "target": target}

        def keep(attack, eps, part, pred):
            strength = "clean" if attack == "clean" else \
                ("strong" if attack in STRONG else "weak")
            row = {**tag, "attack": attack, "strength": strength, "eps": float(eps),
                   "part": part}
            rows["accuracy"].append({**row, "accuracy": float((pred == labels).mean())})
            rows["predictions"].append({**row, "predicted": encode_classes(pred),
                                        "labels": label_text})

        keep("clean", 0.0, "full", predict_images(pipe, images))
        for (attack, eps), adv in sorted(chosen.items()):
            keep(attack, eps, "full", predict_images(pipe, adv))
            if eps in split_eps:
                for part, grids in split_grids(images, adv).items():
                    keep(attack, eps, part, predict(model, amplitudes(grids)))
    return rows


def correctness(results, dataset: str, target: str, attack: str, eps: float,
                part: str = "full") -> np.ndarray:
    """(n_seeds, n_images) bool: which image each seed's ``target`` got right under ``attack``
    (``"clean"`` at ε = 0, or one of :data:`STRONG` / :data:`WEAK`) at ``eps``, whole or only
    its ``part``; rows in seed order, columns the threat images in order."""
    p = results["predictions"]
    rows = p[(p["dataset"] == dataset) & (p["target"] == target) & (p["attack"] == attack)
             & np.isclose(p["eps"], eps) & (p["part"] == part)].sort_values("seed")
    if rows.empty:
        raise ValueError(f"no strong-transfer predictions for {target} on {dataset} under "
                         f"{attack!r} at eps={eps} ({part})")
    return np.stack([decode_classes(a) == decode_classes(y)
                     for a, y in zip(rows["predicted"], rows["labels"])])


def pooled(results, targets, attack: str, eps: float, part: str = "full") -> np.ndarray:
    """(n_seeds, Σ images) correctness of ``targets`` under ``attack``, the images of every
    dataset and target side by side (columns pair across attacks and parts)."""
    datasets = list(dict.fromkeys(results["predictions"]["dataset"]))
    return np.concatenate([correctness(results, d, t, attack, eps, part)
                           for d in datasets for t in targets], axis=1)


def curves(results, n_resamples: int = 10_000) -> pd.DataFrame:
    """Accuracy per target, attack and ε (whole perturbations, pooled over datasets) with a
    two-level bootstrap 95 % CI over seeds × images; ε = 0 rows are the clean accuracy."""
    acc = results["accuracy"]
    full = acc[(acc["part"] == "full") & (acc["attack"] != "clean")]
    rows = []
    for target in dict.fromkeys(full["target"]):
        clean = stats.bootstrap_accuracy(pooled(results, [target], "clean", 0.0),
                                         n_resamples=n_resamples)
        for attack in [a for a in STRONG + WEAK if a in set(full["attack"])]:
            rows.append({"target": target, "attack": attack, "eps": 0.0,
                         "accuracy": clean.estimate, "low": clean.low, "high": clean.high})
            for eps in sorted(set(full[full["attack"] == attack]["eps"])):
                ci = stats.bootstrap_accuracy(pooled(results, [target], attack, eps),
                                              n_resamples=n_resamples)
                rows.append({"target": target, "attack": attack, "eps": float(eps),
                             "accuracy": ci.estimate, "low": ci.low, "high": ci.high})
    return pd.DataFrame(rows)


def share_interval(clean, attacked, part, *, level: float = 0.95, n_resamples: int = 10_000,
                   rng: int = 0) -> stats.Interval:
    """Share of the damage reproduced by a part of the perturbation:
    (acc(clean) - acc(part)) / (acc(clean) - acc(attacked)), all (n_seeds, n_images) paired,
    with a percentile CI from the two-level bootstrap of :func:`equivar.stats.bootstrap_difference`
    (seeds, then images within each seed, the same columns for all three). NaN when the
    damage is below :data:`MIN_DAMAGE` (in the estimate or a resample)."""
    a = [np.asarray(x) for x in (clean, attacked, part)]
    for x, name in zip(a, ("clean", "attacked", "part")):
        if x.ndim != 2 or x.size == 0 or not np.isin(x, (0, 1)).all():
            raise ValueError(f"{name} must be a non-empty 0/1 array (n_seeds, n_images), got "
                             f"shape {x.shape}")
    a = [x.astype(float) for x in a]
    if not (a[0].shape == a[1].shape == a[2].shape):
        raise ValueError(f"paired arrays must have one shape, got {[x.shape for x in a]}")
    n_seeds, n_images = a[0].shape
    gen = np.random.default_rng(rng)

    def ratio(c, x, p):
        damage = c - x
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(damage > MIN_DAMAGE, (c - p) / damage, np.nan)

    estimate = float(ratio(a[0].mean(), a[1].mean(), a[2].mean()))
    boot = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // max(1, n_seeds * n_images))
    for start in range(0, n_resamples, chunk):
        m = min(chunk, n_resamples - start)
        s = gen.integers(0, n_seeds, size=(m, n_seeds, 1))
        i = gen.integers(0, n_images, size=(m, n_seeds, n_images))
        means = [x[s, i].mean(axis=(1, 2)) for x in a]
        boot[start:start + m] = ratio(*means)
    if np.isnan(boot).any() or not np.isfinite(estimate):
        lo = hi = float("nan")
    else:
        lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    what = (f"{100 * level:.4g} % CI of the share, paired two-level bootstrap over "
            f"{n_seeds} seed{'s' * (n_seeds != 1)} × {n_images} images")
    return stats.Interval(estimate, float(lo), float(hi), level, n_resamples, what)


def ring_mean_table(results, eps: float, targets=INVARIANT,
                    n_resamples: int = 10_000) -> pd.DataFrame:
    """Per attack at ``eps``, pooled over datasets and ``targets``: clean and attacked
    accuracy, accuracy with only the k = 0 part and with the k = 0 part removed, the share
    of the damage the k = 0 part reproduces alone (CI: :func:`share_interval`), and the
    ring-mean effect acc(k = 0 removed) - acc(full) (CI: paired two-level bootstrap,
    :func:`equivar.stats.bootstrap_difference`) with its seed-level sign-flip p (raw)."""
    clean = pooled(results, targets, "clean", 0.0)
    rows = []
    for attack in STRONG + WEAK:
        try:
            full = pooled(results, targets, attack, eps)
        except ValueError:
            continue
        k0 = pooled(results, targets, attack, eps, "k=0 only")
        rest = pooled(results, targets, attack, eps, "k>=1 only")
        share = share_interval(clean, full, k0, n_resamples=n_resamples)
        effect = stats.bootstrap_difference(rest, full, n_resamples=n_resamples)
        p = 1.0 if full.shape[0] < 2 else float(stats.permutation_test_seeds(rest, full).pvalue)
        rows.append({"attack": attack, "label": LABELS[attack],
                     "strength": "strong" if attack in STRONG else "weak", "eps": eps,
                     "clean": clean.mean(), "attacked": full.mean(), "k=0 only": k0.mean(),
                     "k=0 removed": rest.mean(), "k=0 share": share.estimate,
                     "share low": share.low, "share high": share.high,
                     "ring-mean effect": effect.estimate, "effect low": effect.low,
                     "effect high": effect.high, "p (seeds, raw)": p})
    table = pd.DataFrame(rows)
    table.attrs["CI"] = effect.what if rows else ""
    table.attrs["targets"] = tuple(targets)
    return table


def remains(table: pd.DataFrame) -> pd.Series:
    """Per attack (rows of :func:`ring_mean_table`): does ring-mean vulnerability remain? Yes
    when removing the k = 0 part restores accuracy by more than C3-ring-means' threshold with
    the whole CI above it: the interval part of ``stats.RULES['C3-ring-means']``'s
    "reproduced" (these descriptive rows take no test, and compare with the full perturbation,
    not with the rule's energy-matched control)."""
    tau = stats.RULES["C3-ring-means"].threshold
    return (table["ring-mean effect"] > tau) & (table["effect low"] > tau)


def conclusion_markdown(table: pd.DataFrame, settings) -> str:
    """Whether ring-mean vulnerability remains under the stronger attacks, in words, from
    :func:`ring_mean_table` (numbers with their CIs)."""
    def pct(v):
        return "n/a" if not np.isfinite(v) else f"{v:.0%}"

    keep = remains(table)
    lines = []
    for (_, r), yes in zip(table.iterrows(), keep):
        share = (f"{pct(r['k=0 share'])} [{pct(r['share low'])}, {pct(r['share high'])}]"
                 if np.isfinite(r["k=0 share"]) else
                 f"n/a (damage below {MIN_DAMAGE})")
        lines.append(
            f"- **{r['label']}**: accuracy {r['clean']:.3f} → {r['attacked']:.3f}; the k = 0 "
            f"part alone reproduces {share} of the damage; removing it moves accuracy by "
            f"{r['ring-mean effect']:+.3f} [{r['effect low']:+.3f}, {r['effect high']:+.3f}]"
            f" — ring-mean vulnerability {'**remains**' if yes else 'is **not shown**'}.")
    strong = table[table["strength"] == "strong"]
    held = list(strong.loc[keep[strong.index], "label"])
    eps = table["eps"].iloc[0] if len(table) else float("nan")
    if len(strong) and len(held) == len(strong):
        head = "Ring-mean vulnerability **remains under every stronger transfer attack**"
    elif held:
        head = (f"Ring-mean vulnerability remains under {', '.join(held)}, not under "
                f"{', '.join(l for l in strong['label'] if l not in held)}")
    else:
        head = "Ring-mean vulnerability is **not shown under any stronger transfer attack**"
    lines = [f"{head} at ε = {eps:g} (pooled over the datasets and "
             f"{', '.join(table.attrs.get('targets', ()))}; criterion: removing the k = 0 "
             f"part raises accuracy by more than {stats.RULES['C3-ring-means'].threshold} "
             f"with the whole CI above that).", ""] + lines
    lines += ["", f"Intervals: {table.attrs.get('CI', '')}. Profile `{settings.profile}`, "
                  f"{settings.n_seeds} seed(s)."]
    return "\n".join(lines)
