"""Chapter 3, "Quantum or invariant?": classical models on the quantum models' information,
attacked as the quantum models are.

Is the brittleness of the ring means a quantum effect or an invariant-feature effect? The
baselines of :mod:`equivar.learn.classical` (logistic regression and an MLP on the sector
blocks, an MLP on the ring grid, a C_4 group CNN on the pixels) are trained on the training
subsets of chapter 2's quantum models (same dataset, ``n_train`` and seed), their settings
chosen on the validation split by a recorded, seeded search (as the quantum models'), and
scored next to the quantum models on the same test images: clean, under every adversarial set
chapter 3 stored (transfer from the classical surrogates), and white-box (PGD and APGD-CE
through the whole model). For the models that read the image only on the ring grid, the
transferred perturbations are also split into their k = 0 and k ≥ 1 parts on the grid, as in
chapter 3. Every result is kept per image so that :mod:`equivar.stats` computes paired CIs.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import torch
import torchattacks

from equivar import data, stats
from equivar.adversary import attacks
from equivar.adversary.threats import SameDtype
from equivar.cache import cached
from equivar.core import sectors
from equivar.core.model import amplitudes
from equivar.core.pipeline import QuantumPipeline
from equivar.learn import classical
from equivar.learn.surrogates import predict_images
from equivar.learn.train import predict, trained
from equivar.runtime import progress as progress_bar
from equivar.settings import SAMPLING, VARIANT_LABELS
from equivar.studies import ladder, transfer
from equivar.studies.units import Unit

PARTS = transfer.PARTS  # full perturbation, its k = 0 part, its k >= 1 part (on the grid)
THREATS = ("clean", "transfer", "transfer (pgd)", "white-box")
WHITE_BOX = ("pgd", "apgd-ce")
LABELS = {"sector-logistic": "logistic on sector blocks", "sector-mlp": "MLP on sector blocks",
          "ring-mlp": "MLP on ring grid", "p4-cnn": "C4 group CNN",
          **{k: f"quantum: {v}" for k, v in VARIANT_LABELS.items()}}


# ----------------------------------------------------------------- model selection

def configurations(settings, kind: str) -> list[dict]:
    """The configurations tried for ``kind``: at most ``settings.budget`` (the group CNN:
    ``settings.cnn_budget``) drawn without replacement (seeded) from lrs × weight decays ×
    widths, in a fixed order."""
    widths = {"sector-logistic": (0,), "p4-cnn": settings.cnn_widths}.get(kind,
                                                                           settings.mlp_widths)
    grid = [dict(zip(("lr", "weight_decay", "width"), v)) for v in
            itertools.product(settings.lrs, settings.weight_decays, widths)]
    rng = np.random.default_rng([settings.selection_seed, 11, classical.RING_KINDS.index(kind)
                                 if kind in classical.RING_KINDS else 3])
    budget = settings.cnn_budget if kind == "p4-cnn" else settings.budget
    pick = np.sort(rng.choice(len(grid), size=min(budget, len(grid)), replace=False))
    return [grid[i] for i in pick]


def spec(settings, dataset: str, kind: str, seed: int, config: dict) -> classical.BaselineSpec:
    """The baseline of ``kind`` with ``config`` trained on the quantum models' training subset
    of ``seed`` (chapter 2's ``n_train``)."""
    return classical.BaselineSpec(dataset, kind, seed, settings.model_settings().n_train,
                                  settings.n_valid, settings.max_epochs, settings.patience,
                                  settings.batch_size, float(config["lr"]),
                                  float(config["weight_decay"]), int(config["width"]))


def selection(settings, dataset: str, kind: str) -> tuple[pd.DataFrame, dict]:
    """Train every configuration of :func:`configurations` (``settings.selection_seed``: its
    weights and training subset) and choose the one with
    the highest validation accuracy (ties: lower validation loss, then the first tried). Returns
    the table of all tried (column ``chosen`` marks the choice) and the chosen config."""
    rows = []
    for config in configurations(settings, kind):
        _, record = classical.trained_baseline(spec(settings, dataset, kind,
                                                    settings.selection_seed, config))
        rows.append({"dataset": dataset, "baseline": kind, **config,
                     "valid_accuracy": record["kept_valid_accuracy"],
                     "valid_loss": record["kept_valid_loss"], "epoch": record["best_epoch"],
                     "epochs_run": len(record["loss"]), "seconds": record["seconds"]})
    table = pd.DataFrame(rows)
    best = table.sort_values(["valid_accuracy", "valid_loss"], ascending=[False, True],
                             kind="stable").index[0]
    table["chosen"] = table.index == best
    chosen = {k: table.loc[best, k].item() for k in ("lr", "weight_decay", "width")}
    return table, chosen


# ----------------------------------------------------------------- white-box

def white_box(model: torch.nn.Module, model_id: dict, images, labels, epsilons, settings,
              seed: int) -> dict[str, np.ndarray]:
    """Predictions under white-box PGD (``settings.white_box_steps`` steps of 2.5 ε / steps,
    random start) and APGD-CE (``white_box_restarts`` restarts) through the whole ``model``, at
    every ε of ``epsilons`` (cached, kind ``threat``): arrays ``epsilons`` (E,), ``clean``
    (N,) and per attack (E, N) predicted classes."""
    eps_list = [attacks.check_budget(e) for e in epsilons]
    x = torch.as_tensor(attacks.check_images(images))[:, None]
    y = torch.as_tensor(np.array(labels)).to(torch.int64)
    params = {"model": model_id, "epsilons": eps_list, "steps": settings.white_box_steps,
              "restarts": settings.white_box_restarts, "seed": seed,
              "attacks": list(WHITE_BOX), "sampling": asdict(SAMPLING),
              "data": data.fingerprint(np.asarray(images), np.asarray(labels))}

    def compute():
        net = SameDtype(model).eval()
        out = {"epsilons": np.array(eps_list), "clean": predict_images(net, x[:, 0].numpy())}
        for name in WHITE_BOX:
            out[name] = np.zeros((len(eps_list), len(y)), dtype=np.int64)
        for e, eps in enumerate(eps_list):
            if eps == 0:
                for name in WHITE_BOX:
                    out[name][e] = out["clean"]
                continue
            adv = attacks.craft(net, x[:, 0].numpy(), y.numpy(), "pgd", eps,
                                settings.white_box_steps, 2.5, seed)
            out["pgd"][e] = predict_images(net, adv)
            with torch.random.fork_rng():
                atk = torchattacks.APGD(net, norm="Linf", eps=eps, steps=settings.white_box_steps,
                                        n_restarts=settings.white_box_restarts, seed=seed,
                                        loss="ce")
                adv = atk(x, y)
            out["apgd-ce"][e] = predict_images(net, adv[:, 0].detach().numpy())
        return out  # no timings inside: an entry's bytes must not depend on the machine

    result, _ = cached("threat", params, compute, fmt="npz")
    return result


# ----------------------------------------------------------------- the study

def target(settings, dataset: str, seed: int, name: str):
    """One scored model of ``dataset`` and ``seed``: a baseline kind (its configuration chosen
    on validation, trained on the seed's subset) or a quantum variant (chapter 2's model).
    Returns (pixel classifier, identity for the cache, grid scorer or None, row for the
    ``models`` table); the grid scorer maps ring grids to predicted classes for the models
    that read the image only on the grid."""
    if name in settings.baselines:
        _, chosen = selection(settings, dataset, name)
        s = spec(settings, dataset, name, seed, chosen)
        model, record = classical.trained_baseline(s)
        scorer = None
        if name in classical.RING_KINDS:
            scorer = lambda g: model.forward_grids(torch.as_tensor(g)).argmax(1).numpy()
        row = {"family": "classical", "valid_accuracy": record["kept_valid_accuracy"]}
        return model, {"baseline": asdict(s)}, scorer, {**row, "n_train": record["n_train"],
                                                        "train_seconds": record["seconds"]}
    if name not in settings.quantum:
        raise ValueError(f"{name!r} is neither a baseline nor a quantum model of the settings "
                         f"({settings.baselines + settings.quantum})")
    qspec = ladder.model_spec(settings.model_settings(), dataset, name, seed)
    qmodel, record = trained(qspec, progress=False)
    scorer = (lambda g: predict(qmodel, amplitudes(g))) if name != "baseline" else None
    valid = record["valid_accuracy"]
    row = {"family": "quantum", "valid_accuracy": valid[record["best_epoch"] - 1] if valid
           else np.nan, "n_train": record["n_train"], "train_seconds": record["seconds"]}
    return QuantumPipeline(qmodel), asdict(qspec), scorer, row


def white_box_of(settings, dataset: str, seed: int, name: str, transfer_settings=None):
    """:func:`white_box` on the first ``n_white_box`` of chapter 3's attacked images for the
    model ``name`` of ``seed`` at every ε of chapter 3 (cached): also a unit of the sweep."""
    ts = settings.transfer_settings() if transfer_settings is None else transfer_settings
    images, labels = transfer.attacked_images(ts, dataset)
    model, model_id, _, _ = target(settings, dataset, seed, name)
    return white_box(model, model_id, images[:settings.n_white_box],
                     labels[:settings.n_white_box], ts.epsilons, settings, seed)


def _select(settings, dataset: str, kind: str) -> None:
    selection(settings, dataset, kind)


def _white_box_unit(settings, dataset: str, seed: int, name: str) -> None:
    white_box_of(settings, dataset, seed, name)


def units(settings) -> list[Unit]:
    """The section's expensive work for a sweep: every baseline's selection (stage 1) and
    every white-box evaluation (stage 2; the quantum models are chapter 3's stage-1 units, the
    transfer sets its stage-2 units). Keys name one seed each, so a sweep split by seeds
    computes the same entries."""
    names, _ = data.resolve(settings.datasets, fallbacks={"mnist": "mnist-5k"})
    # the selection depends on selection_seed only: its unit must not name the run's seeds
    shared = replace(settings, seed=0, n_seeds=1)
    out = [Unit(0, f"baseline selection {d}/{k}", _select, (shared, d, k))
           for d in names for k in settings.baselines]
    for d in names:
        for seed in range(settings.seed, settings.seed + settings.n_seeds):
            own = replace(settings, seed=seed, n_seeds=1)
            out += [Unit(2, f"white-box {d}/{name}/seed {seed}", _white_box_unit,
                         (own, d, seed, name)) for name in settings.baselines + settings.quantum]
    return out


def study(settings, progress: bool = True, transfer_settings=None) -> dict[str, pd.DataFrame]:
    """Run the comparison for :class:`equivar.settings.BaselineSettings`; ``transfer_settings``
    (chapter 3's :class:`equivar.settings.TransferSettings`, e.g. with the notebook's
    ``n_attack``; default ``settings.transfer_settings()``) names the stored sets and images
    reused. DataFrames keyed by

    * ``predictions``: one row per dataset, seed, target, threat (``clean``, ``transfer``,
      ``white-box``), source, attack, ε and image: label, prediction, correct;
    * ``restricted``: accuracy of the ring-grid targets under the full transferred PGD / sign
      noise perturbation and its k = 0 and k ≥ 1 parts alone (chapter 3's split);
    * ``selection``: every configuration tried per dataset and baseline (``chosen`` marked);
    * ``models``: per dataset, seed and target, validation accuracy, training size and time;
    * ``seconds``: time per dataset, seed and stage; ``notes``: datasets replaced or skipped.
    """
    names, notes = data.resolve(settings.datasets, fallbacks={"mnist": "mnist-5k"})
    seeds = [settings.seed + i for i in range(settings.n_seeds)]
    ts = settings.transfer_settings() if transfer_settings is None else transfer_settings
    rows = {k: [] for k in ("predictions", "restricted", "models", "seconds")}
    selection_tables = []
    bar = progress_bar(total=len(names) * len(seeds), desc="baselines", disable=not progress)
    for dataset in names:
        for kind in settings.baselines:
            selection_tables.append(selection(settings, dataset, kind)[0])
        for seed in seeds:
            own = replace(ts, seed=seed, n_seeds=1)
            images, labels = transfer.attacked_images(own, dataset)
            tag = {"dataset": dataset, "seed": seed}
            clock = time.perf_counter()
            targets = {}
            for name in settings.baselines + settings.quantum:
                model, model_id, scorer, row = target(settings, dataset, seed, name)
                targets[name] = (model, model_id, scorer)
                rows["models"].append({**tag, "target": name, **row})
            rows["seconds"].append({**tag, "stage": "train", "seconds":
                                    time.perf_counter() - clock})

            def record(who, threat, source, attack, eps, pred, lab):
                rows["predictions"].append(pd.DataFrame({
                    **tag, "target": who, "threat": threat, "source": source,
                    "attack": attack, "eps": float(eps), "image": np.arange(len(lab)),
                    "label": lab, "prediction": pred, "correct": pred == lab}))

            clock = time.perf_counter()
            for who, (model, _, _) in targets.items():
                record(who, "clean", "none", "none", 0.0, predict_images(model, images),
                       labels)
            sets = {source: transfer.adversarial_sets(own, dataset, seed, source)
                    for source in ts.surrogates}
            for source, crafted in sets.items():
                for (attack, eps), adv in crafted.items():
                    if eps == 0:
                        continue
                    for who, (model, _, _) in targets.items():
                        record(who, "transfer", source, attack, eps,
                               predict_images(model, adv), labels)
            rows["seconds"].append({**tag, "stage": "transfer", "seconds":
                                    time.perf_counter() - clock})

            clock = time.perf_counter()
            full = sectors.independent_sectors(SAMPLING.n_angles)
            perturbations = [(source, "pgd", eps, adv) for source, crafted in sets.items()
                             for (attack, eps), adv in crafted.items()
                             if attack == "pgd" and eps > 0]
            perturbations += [("sign noise", "noise", eps, attacks.noise(images, eps, "sign",
                                                                          seed))
                              for eps in ts.epsilons if eps > 0]
            for source, attack, eps, adv in perturbations:
                for part, keep in zip(PARTS, (full, [0], full[1:])):
                    grids = attacks.restricted(images, adv, keep)
                    for who, (_, _, scorer) in targets.items():
                        if scorer is not None:
                            rows["restricted"].append({
                                **tag, "target": who, "source": source, "attack": attack,
                                "eps": float(eps), "part": part,
                                "accuracy": float((scorer(grids) == labels).mean())})
            rows["seconds"].append({**tag, "stage": "sector parts", "seconds":
                                    time.perf_counter() - clock})

            wx, wy = images[:settings.n_white_box], labels[:settings.n_white_box]
            for who, (model, model_id, _) in targets.items():
                clock = time.perf_counter()
                result = white_box(model, model_id, wx, wy, ts.epsilons, settings, seed)
                for name in WHITE_BOX:
                    for e, eps in enumerate(result["epsilons"]):
                        if eps > 0:
                            record(who, "white-box", "self", name, eps, result[name][e], wy)
                rows["seconds"].append({**tag, "stage": f"white-box {who}", "seconds":
                                        time.perf_counter() - clock})
            bar.update(1)
    bar.close()
    out = {k: (pd.concat(v, ignore_index=True) if k == "predictions" else pd.DataFrame(v))
           for k, v in rows.items()}
    out["selection"] = pd.concat(selection_tables, ignore_index=True)
    out["notes"] = pd.DataFrame([{"dataset": k, "note": v} for k, v in notes.items()],
                                columns=["dataset", "note"])
    return out


# ----------------------------------------------------------------- per-image correctness

def correctness(results, dataset: str, target: str, threat: str, eps: float) -> np.ndarray:
    """(n_seeds, n_images) bool for ``threat`` at ``eps``, worst case over attacks and ε' ≤ ε:

    ``clean``; ``transfer``: correct when clean and under every stored set of chapter 3 (every
    surrogate, FGSM and PGD) at every ε' ≤ ε (chapter 4's definition); ``transfer (pgd)``: the
    same with PGD sets only; ``white-box``: correct when clean and under PGD and APGD-CE at every
    ε' ≤ ε (the first ``n_white_box`` images only). At ε = 0 every threat is ``clean``.
    """
    if threat not in THREATS:
        raise ValueError(f"threat must be one of {THREATS}, got {threat!r}")
    p = results["predictions"]
    p = p[(p["dataset"] == dataset) & (p["target"] == target)]
    if p.empty:
        raise ValueError(f"no predictions for target {target!r} on {dataset!r}")
    clean = p[p["threat"] == "clean"].pivot(index="seed", columns="image", values="correct")
    if threat == "clean" or eps == 0:
        out = clean
        if threat == "white-box":
            out = clean.iloc[:, :_white_box_size(p)]
        return out.to_numpy(bool)
    kind = "white-box" if threat == "white-box" else "transfer"
    if not np.isclose(p.loc[p["threat"] == kind, "eps"].to_numpy(float), eps).any():
        raise ValueError(f"eps={eps!r} is not one of the study's budgets for {threat!r}")
    part = p[(p["threat"] == kind) & (p["eps"] <= eps + 1e-12)]
    if threat == "transfer (pgd)":
        part = part[part["attack"] == "pgd"]
    worst = part.groupby(["seed", "image"])["correct"].all().unstack("image")
    n = worst.shape[1]
    return (clean.iloc[:, :n].to_numpy(bool) & worst.to_numpy(bool))


def _white_box_size(p: pd.DataFrame) -> int:
    wb = p[p["threat"] == "white-box"]
    return int(wb["image"].max()) + 1 if len(wb) else 0


def targets_of(results) -> list[str]:
    """The scored targets in study order (baselines first, then the quantum models)."""
    return list(dict.fromkeys(results["predictions"]["target"]))


def curves(results, settings) -> pd.DataFrame:
    """Accuracy with its CI per dataset, target, threat and ε: columns dataset, target,
    threat, eps, accuracy, low, high, what (two-level bootstrap over seeds and images)."""
    p = results["predictions"]
    rows = []
    for dataset in dict.fromkeys(p["dataset"]):
        eps_values = sorted({0.0} | set(p.loc[p["threat"] != "clean", "eps"]))
        for target in targets_of(results):
            for threat in THREATS[1:]:
                for eps in eps_values:
                    c = correctness(results, dataset, target, threat, eps)
                    ci = stats.bootstrap_accuracy(c, n_resamples=settings.n_resamples)
                    rows.append({"dataset": dataset, "target": target, "threat": threat,
                                 "eps": eps, "accuracy": ci.estimate, "low": ci.low,
                                 "high": ci.high, "what": ci.what})
    return pd.DataFrame(rows)


def drop(results, dataset: str, target: str, threat: str, eps: float) -> np.ndarray:
    """(n_seeds, n_images) bool: images the model classifies correctly when clean and that
    ``threat`` at ``eps`` fools (robust ⊆ clean, so its mean is clean − robust accuracy)."""
    robust = correctness(results, dataset, target, threat, eps)
    clean = correctness(results, dataset, target, "clean", 0.0)[:, :robust.shape[1]]
    return clean & ~robust


def comparison(results, settings, reference: str = "sector") -> pd.DataFrame:
    """At ``settings.reference_eps``, per dataset and target: clean, transfer and white-box
    accuracy with CIs; the transfer drop (clean − transfer, the share of images the attack
    flips); and, against the quantum model ``reference``, the paired differences (target −
    reference) of transfer robust accuracy and of the transfer drop: 95 % bootstrap CIs over
    seeds and images, the seed-level sign-flip p-value (two or more seeds) and the stratified
    McNemar p-value. Models with different clean accuracy are compared by the drop: robust
    accuracy alone also counts what the model got wrong without any attack."""
    eps = settings.reference_eps
    rows = []
    p = results["predictions"]
    for dataset in dict.fromkeys(p["dataset"]):
        have_ref = reference in set(p.loc[p["dataset"] == dataset, "target"])
        for target in targets_of(results):
            row = {"dataset": dataset, "target": target}
            for threat in ("clean", "transfer", "white-box"):
                c = correctness(results, dataset, target, threat, eps)
                ci = stats.bootstrap_accuracy(c, n_resamples=settings.n_resamples)
                row.update({threat: ci.estimate, f"{threat} low": ci.low,
                            f"{threat} high": ci.high})
            ci = stats.bootstrap_accuracy(drop(results, dataset, target, "transfer", eps),
                                          n_resamples=settings.n_resamples)
            row.update({"transfer drop": ci.estimate, "transfer drop low": ci.low,
                        "transfer drop high": ci.high})
            if have_ref and target != reference:
                for name, get in (("transfer", correctness), ("transfer drop", drop)):
                    a = get(results, dataset, target, "transfer", eps)
                    b = get(results, dataset, reference, "transfer", eps)
                    diff = stats.bootstrap_difference(a, b, n_resamples=settings.n_resamples)
                    # the seed-level test needs two seeds; McNemar (by seed) always runs
                    p_seeds = stats.permutation_test_seeds(a, b).pvalue if len(a) > 1 \
                        else np.nan
                    key = f"{name} − {reference}"
                    row.update({key: diff.estimate, f"{key} low": diff.low,
                                f"{key} high": diff.high, f"{key} p (seeds)": p_seeds,
                                f"{key} p (McNemar)": stats.mcnemar_stratified(a, b).pvalue})
            rows.append(row)
    return pd.DataFrame(rows)


def k0_share(results, eps: float) -> pd.DataFrame:
    """Chapter 3's split for every ring-grid target at ``eps``: per dataset and target, the
    share of the transferred PGD damage (clean − attacked, from the classical surrogates) that
    the k = 0 part alone reproduces, the k ≥ 1 part alone, and the k = 0 share of sign noise
    (a control); mean over surrogates and seeds, NaN where the damage is below 0.02."""
    r = results["restricted"]
    r = r[np.isclose(r["eps"], eps)]
    rows = []
    for (dataset, target), part in r.groupby(["dataset", "target"], sort=False):
        per_run = part.pivot_table(index=["source", "seed"], columns="part", values="accuracy")
        correct = correctness(results, dataset, target, "clean", 0.0)
        clean = np.array([correct[seeds_index(results, dataset, s)].mean()
                          for s in per_run.index.get_level_values("seed")])
        damage = clean - per_run["full"].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            k0 = np.where(damage > 0.02, (clean - per_run["k=0 only"].to_numpy()) / damage, np.nan)
            rest = np.where(damage > 0.02, (clean - per_run["k>=1 only"].to_numpy()) / damage,
                            np.nan)
        noise = per_run.index.get_level_values("source") == "sign noise"
        rows.append({"dataset": dataset, "target": target,
                     "damage (PGD)": float(np.mean(damage[~noise])),
                     "damage from k=0 part": _nanmean(k0[~noise]),
                     "damage from k>=1 part": _nanmean(rest[~noise]),
                     "noise damage from its k=0 part": _nanmean(k0[noise])})
    return pd.DataFrame(rows)


def seeds_index(results, dataset: str, seed: int) -> int:
    """Row of ``seed`` in the (n_seeds, n_images) arrays of :func:`correctness`."""
    p = results["predictions"]
    seeds = sorted(set(p.loc[(p["dataset"] == dataset) & (p["threat"] == "clean"), "seed"]))
    return seeds.index(seed)


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def conclusion_markdown(table: pd.DataFrame, shares: pd.DataFrame, settings,
                        reference: str = "sector") -> str:
    """The section's answer, generated from :func:`comparison` and :func:`k0_share`: per
    dataset and model, is its transfer robust accuracy, and its drop (the share of images the
    attack flips), higher, lower or not distinguishable from the reference quantum model's
    (the 95 % CI of the paired difference excludes 0 or not), and how much of its transferred
    PGD damage does the ring-mean part alone do (models that read the ring grid)?"""
    eps = settings.reference_eps
    lines = []
    diff = f"transfer − {reference}"
    for dataset, part in table.groupby("dataset", sort=False):
        ref = part[part["target"] == reference]
        if ref.empty or diff not in part:
            continue
        ref = ref.iloc[0]
        lines.append(f"- **{dataset}** (ε = {eps}): {LABELS[reference]}: clean "
                     f"{ref['clean']:.2f}, transfer {ref['transfer']:.2f} "
                     f"[{ref['transfer low']:.2f}, {ref['transfer high']:.2f}] (the attack "
                     f"flips {ref['transfer drop']:.0%} of the images), white-box "
                     f"{ref['white-box']:.2f}.")
        for _, row in part[part["target"] != reference].iterrows():
            if not np.isfinite(row.get(diff, np.nan)):
                continue
            share = shares[(shares["dataset"] == dataset) & (shares["target"] == row["target"])]
            k0 = "" if share.empty or not np.isfinite(share["damage from k=0 part"].iloc[0]) \
                else f"; the k = 0 part alone does {share['damage from k=0 part'].iloc[0]:.0%} " \
                     "of its transferred PGD damage"
            lines.append(f"  - {LABELS.get(row['target'], row['target'])}: clean "
                         f"{row['clean']:.2f}, transfer {row['transfer']:.2f}, white-box "
                         f"{row['white-box']:.2f}. Robust accuracy under transfer: "
                         f"{_versus(row, diff)} the quantum model's; the attack flips "
                         f"{row['transfer drop']:.0%} of the images, a drop "
                         f"{_versus(row, f'transfer drop − {reference}', 'larger', 'smaller')}"
                         f" the quantum model's{k0}.")
    if lines:
        lines += ["", f"Intervals: 95 % paired bootstrap over {settings.n_seeds} seed(s) × "
                      f"the attacked images (profile `{settings.profile}`); \"not "
                      "distinguishable\" means the interval contains 0."]
    return "\n".join(lines)


def _versus(row, key: str, above: str = "higher than", below: str = "lower than") -> str:
    """"higher than (+0.10 [+0.05, +0.15])" etc.: the paired difference ``key`` with its CI,
    "not distinguishable from" when the CI contains 0."""
    lo, hi = row[f"{key} low"], row[f"{key} high"]
    word = below if hi < 0 else above if lo > 0 else "not distinguishable from"
    if word in ("larger", "smaller"):
        word += " than"
    return f"{word} ({row[key]:+.2f} [{lo:+.2f}, {hi:+.2f}])"
