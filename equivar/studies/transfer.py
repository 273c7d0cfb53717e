"""Chapter 3's study: classical transfer attacks on the quantum models, sector by sector.

:func:`study` trains (or loads) the surrogates and the quantum models of chapter 2, crafts
every adversarial set once (cached), scores every target on it, and records the sector view
of each perturbation. The summaries and the generated conclusion live here too.
"""
from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pandas as pd


from equivar import data, stats
from equivar.adversary import attacks
from equivar.core import rings, sectors
from equivar.core.model import amplitudes
from equivar.core.pipeline import QuantumPipeline
from equivar.learn import surrogates
from equivar.learn.train import predict, trained
from equivar.settings import SAMPLING, VARIANT_LABELS
from equivar.studies import controls, ladder, scorecard
from equivar.studies.reliance import INVARIANT, decode_classes, encode_classes, summarise
from equivar.runtime import progress as progress_bar
from equivar.studies.units import Unit, cached_rows, train_surrogate

QUANTUM = ("west", "sector", "baseline")
PARTS = ("full", "k=0 only", "k>=1 only")
# the control of C3-ring-means: the energy of the k = 0 part removed in random directions
# (not in PARTS: chapter 4's baselines and strong transfer split into PARTS only)
ENERGY_MATCHED = "energy-matched removal"


def k0_energy_fraction(delta) -> np.ndarray:
    """Per grid perturbation δ (n, R, N_angles), the share ‖δ₀‖² / ‖δ‖² of its squared norm in
    sector k = 0 (the ring means), shape (n,); 0 where δ = 0."""
    delta = np.asarray(delta, dtype=np.float64)
    k0 = (sectors.keep_sectors(delta, [0]) ** 2).sum((-2, -1))
    total = (delta ** 2).sum((-2, -1))
    return np.divide(k0, total, out=np.zeros_like(total), where=total > 0)


def energy_matched_removal(clean, perturbed, rng) -> np.ndarray:
    """Grids (n, R, N_angles) of the clean images plus the grid perturbation δ with as much
    energy removed as its k = 0 part holds, in random directions of the grid space
    (:func:`equivar.studies.controls.energy_removed`, f = ‖δ₀‖² / ‖δ‖² per image): what is
    left has the norm of δ's k ≥ 1 part, but comes from no particular sector (the ring means
    shrink as every other direction; they are not set to zero). The control that separates
    "the ring means" from "less perturbation" when the k = 0 part is removed."""
    g0, delta = attacks.grid_perturbation(clean, perturbed)
    return g0 + controls.energy_removed(delta, k0_energy_fraction(delta), rng)


def attacked_images(settings, dataset: str):
    """The test images every source attacks on ``dataset``: (images, labels), drawn with
    ``settings.image_seed`` (the same sample for every model seed)."""
    n = min(settings.n_attack, data.split_size(dataset, "test"))
    return data.load(dataset, "test", n=n, seed=settings.image_seed)


def source_model(settings, dataset: str, seed: int, source: str):
    """The attacking model ``source`` (a surrogate kind or a quantum variant) of ``seed`` and
    its identity for the cache: (classifier on pixels, spec as a dict)."""
    if source in settings.surrogates:
        spec = surrogates.SurrogateSpec(dataset, source, seed, settings.surrogate_n_train,
                                        settings.surrogate_epochs)
        return surrogates.train_surrogate(spec)[0], asdict(spec)
    spec = ladder.model_spec(settings.model_settings(), dataset, source, seed)
    return QuantumPipeline(trained(spec, progress=False)[0]), asdict(spec)


def adversarial_sets(settings, dataset: str, seed: int, source: str) -> dict:
    """Every adversarial set crafted on ``source`` (cached): {(attack, eps): images}."""
    images, labels = attacked_images(settings, dataset)
    model, source_id = source_model(settings, dataset, seed, source)
    return {(attack, eps): attacks.adversarial_set(model, source_id, images, labels, attack, eps,
                                                   settings.pgd_steps, settings.pgd_step_factor,
                                                   seed)
            for attack in settings.attacks for eps in settings.epsilons}


def units(settings) -> list[Unit]:
    """Chapter 3's expensive work: the quantum targets, the surrogates (stage 1), every
    adversarial set (stage 2) and the scores of every target on them (stage 3)."""
    names, _ = data.resolve(settings.datasets, fallbacks={"mnist": "mnist-5k"})
    models = settings.model_settings()
    out = []
    for dataset in names:
        for seed in range(settings.seed, settings.seed + settings.n_seeds):
            out += [ladder.chapter_model_unit(models, dataset, variant, seed)
                    for variant in QUANTUM]
            for kind in settings.surrogates:
                spec = surrogates.SurrogateSpec(dataset, kind, seed, settings.surrogate_n_train,
                                                settings.surrogate_epochs)
                out.append(Unit(0, f"surrogate {dataset}/{kind}/seed {seed}", train_surrogate,
                                (spec,)))
            out += [attack_unit(settings, dataset, seed, source)
                    for source in list(settings.surrogates) + list(QUANTUM)]
            # the unit's settings name its own seed only: keys do not depend on the split
            out.append(Unit(3, f"transfer scores {dataset}/seed {seed}", score_unit,
                            (replace(settings, seed=seed, n_seeds=1), dataset, seed)))
    return out


def attack_unit(settings, dataset: str, seed: int, source: str) -> Unit:
    """Stage 2: every adversarial set crafted on ``source`` for ``seed`` (chapter 5 lists the
    same unit); its settings name that one seed, so its key does not depend on the split."""
    return Unit(2, f"attacks from {source} on {dataset}/seed {seed}", adversarial_sets,
                (replace(settings, seed=seed, n_seeds=1), dataset, seed, source))


def score_unit(settings, dataset: str, seed: int) -> None:
    """Score one dataset and seed (:func:`seed_scores`) into the cache."""
    seed_scores(settings, dataset, seed)


TABLES = ("clean", "transfer", "noise", "energy", "restricted", "logit_change", "surrogates",
          "predictions", "split", "clipping")


def study(settings, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Run chapter 3 for :class:`equivar.settings.TransferSettings`; DataFrames keyed by
    ``clean``, ``transfer``, ``noise``, ``energy``, ``restricted`` (the invariant targets'
    accuracy under each of :data:`PARTS` of a perturbation and under :data:`ENERGY_MATCHED`),
    ``logit_change``,
    ``surrogates``, ``split`` (the perturbation's background and object parts at the reference
    ε), ``clipping`` (k = 0 share of sign noise with and without clipping), ``predictions``
    (every target's predicted class per image, for every perturbation and part; see
    :func:`correctness`) and ``notes``. Each dataset and seed is scored once and cached
    (:func:`seed_scores`), so a sweep can score them in parallel."""
    names, notes = data.resolve(settings.datasets, fallbacks={"mnist": "mnist-5k"})
    seeds = [settings.seed + i for i in range(settings.n_seeds)]
    rows = {k: [] for k in TABLES}
    for dataset, seed in progress_bar([(d, s) for d in names for s in seeds],
                                      desc="transfer scores", disable=not progress):
        for table, part in seed_scores(settings, dataset, seed).items():
            rows[table].extend(part)
    out = {k: pd.DataFrame(v) for k, v in rows.items()}
    out["notes"] = pd.DataFrame([{"dataset": k, "note": v} for k, v in notes.items()],
                                columns=["dataset", "note"])
    return out


def seed_scores(settings, dataset: str, seed: int) -> dict[str, list[dict]]:
    """The rows of every table of :func:`study` for one dataset and model seed (cached, kind
    ``score``): every target scored on every adversarial and noise set of that seed."""
    own = replace(settings, seed=seed, n_seeds=1)
    images, labels = attacked_images(own, dataset)
    # the trained models and sets are cache entries keyed by their own data; the scores are
    # keyed by the attacked images, the settings and the study code that turns them into rows
    return cached_rows("transfer", {"settings": asdict(own), "dataset": dataset,
                                    "data": data.fingerprint(images, labels)},
                       lambda: _score_seed(own, dataset, seed))


def _score_seed(settings, dataset: str, seed: int) -> dict[str, list[dict]]:
    models = settings.model_settings()
    rows = {k: [] for k in TABLES}
    images, labels = attacked_images(settings, dataset)
    classifiers, quantum, source_ids = {}, {}, {}
    for kind in settings.surrogates:
        spec = surrogates.SurrogateSpec(dataset, kind, seed, settings.surrogate_n_train,
                                     settings.surrogate_epochs)
        model, record = surrogates.train_surrogate(spec)
        classifiers[kind], source_ids[kind] = model, asdict(spec)
        rows["surrogates"].append({"dataset": dataset, "seed": seed, "surrogate": kind,
                                   "n_train": record["n_train"]})
    for variant in QUANTUM:
        spec = ladder.model_spec(models, dataset, variant, seed)
        model, _ = trained(spec, progress=False)
        quantum[variant] = model
        classifiers[variant] = QuantumPipeline(model)
        source_ids[variant] = asdict(spec)
    clean_pred = {t: surrogates.predict_images(m, images) for t, m in classifiers.items()}
    tag = {"dataset": dataset, "seed": seed}
    label_text = encode_classes(labels)

    def keep(target, pred, perturbation, eps, part="full"):
        rows["predictions"].append({**tag, "target": target, "perturbation": perturbation,
                                    "eps": float(eps), "part": part,
                                    "predicted": encode_classes(pred),
                                    "labels": label_text})

    for target, pred in clean_pred.items():
        rows["clean"].append({**tag, "target": target, "accuracy": float((pred == labels).mean())})
        keep(target, pred, "clean", 0.0)

    def score(perturbed, extra, table):
        name = f"{extra['attack']} from {extra['source']}" if table == "transfer" \
            else f"{extra['noise']} noise"
        for target, model in classifiers.items():
            pred = surrogates.predict_images(model, perturbed)
            rows[table].append({**tag, **extra, "target": target,
                                "accuracy": float((pred == labels).mean()),
                                "success_rate": attacks.success_rate(clean_pred[target], pred, labels)})
            if extra["eps"] > 0:
                keep(target, pred, name, extra["eps"])

    def energy(perturbed, extra):
        share = attacks.sector_energy_share(images, perturbed).mean(0)
        for k, value in enumerate(share):
            rows["energy"].append({**tag, **extra, "k": k, "share": float(value)})

    sectors_all = sectors.independent_sectors(SAMPLING.n_angles)

    def restrict(perturbed, extra):
        name = f"{extra['attack']} from {extra['source']}" if extra["attack"] != "noise" \
            else extra["source"]
        # one random basis per seed (not per call): the control does not depend on the
        # order of the calls or on which other sets were scored
        matched = energy_matched_removal(images, perturbed, np.random.default_rng([seed, 2]))
        for part, kept in zip(PARTS + (ENERGY_MATCHED,),
                              (sectors_all, [0], sectors_all[1:], None)):
            grids = matched if kept is None else attacks.restricted(images, perturbed, kept)
            for variant, model in quantum.items():
                pred = predict(model, amplitudes(grids))
                rows["restricted"].append({**extra, **tag, "target": variant, "part": part,
                                           "accuracy": float((pred == labels).mean())})
                if part != "full":   # "full" on the grid is the perturbed image itself
                    keep(variant, pred, name, extra["eps"], part)

    def background(perturbed, extra):
        """The perturbation's background and object parts (controls.split): k = 0 share
        of each, and the invariant targets' predictions on each."""
        parts = controls.split(images, perturbed, settings.background_threshold)
        for part, x in parts.items():
            share = controls.k0_share(images, x)
            rows["split"].append({**tag, **extra, "part": part,
                                  "k0 share": float(np.mean(share))})
            if part == "full":
                continue
            for variant in INVARIANT:
                if variant in quantum:
                    pred = predict(quantum[variant], amplitudes(rings.sample_grid(x)))
                    rows["split"][-1][f"accuracy {variant}"] = float((pred == labels).mean())
                    keep(variant, pred, f"{extra['attack']} from {extra['source']}",
                         extra["eps"], part)

    for eps in settings.epsilons:
        if eps > 0:
            for clip in (False, True):
                share = controls.k0_share(images, controls.sign_noise(images, eps, seed,
                                                                      clip))
                rows["clipping"].append({**tag, "eps": eps, "clipped": clip,
                                         "k0 share": float(np.mean(share))})
        for kind in attacks.NOISES:
            noisy = attacks.noise(images, eps, kind, seed)
            score(noisy, {"noise": kind, "eps": eps}, "noise")
            if eps > 0:
                energy(noisy, {"source": f"{kind} noise", "attack": "noise", "eps": eps})
                if kind == "sign":
                    restrict(noisy, {"source": "sign noise", "attack": "noise", "eps": eps})
    for source in list(settings.surrogates) + list(QUANTUM):
        for attack in settings.attacks:
            for eps in settings.epsilons:
                adv = attacks.adversarial_set(classifiers[source], source_ids[source], images,
                                              labels, attack, eps, settings.pgd_steps,
                                              settings.pgd_step_factor, seed)
                extra = {"source": source, "attack": attack, "eps": eps}
                score(adv, extra, "transfer")
                if eps == 0:
                    continue
                energy(adv, extra)
                if source in settings.surrogates and attack == "pgd":
                    restrict(adv, extra)
                    if np.isclose(eps, settings.reference_eps):
                        background(adv, extra)
                    for variant in ("west", "sector"):
                        change = attacks.logit_change_by_sector(quantum[variant], images,
                                                                adv, labels).mean(0)
                        for k, value in enumerate(change):
                            rows["logit_change"].append({**extra, **tag, "target": variant,
                                                         "k": k, "change": float(value)})
    return rows


def transfer_matrix(results: dict[str, pd.DataFrame], attack: str, eps: float) -> pd.DataFrame:
    """Mean target accuracy per dataset, source and target at one (attack, ε)."""
    t = results["transfer"]
    part = t[(t["attack"] == attack) & np.isclose(t["eps"], eps)]
    return summarise(part, ["dataset", "source", "target"], "accuracy")


def conclusion_table(results: dict[str, pd.DataFrame], eps: float) -> pd.DataFrame:
    """Per dataset and invariant target, at ``eps``, for PGD transferred from the classical
    surrogates (mean and spread over surrogates × seeds):

    clean accuracy; accuracy under the transferred attack and under sign noise; the share of
    the transfer damage (clean - attacked) reproduced by the k = 0 part of the perturbation
    alone and by its k ≥ 1 part alone; the same k = 0 share for sign noise (a control); the
    k = 0 energy share of the classical perturbations and of sign noise.
    """
    classical = set(results["surrogates"]["surrogate"])
    t, nz, r, e = (results[k] for k in ("transfer", "noise", "restricted", "energy"))
    at = lambda frame: np.isclose(frame["eps"], eps)
    rows = []
    for (dataset, target), _ in results["clean"].groupby(["dataset", "target"], sort=False):
        if target not in ("west", "sector"):
            continue
        clean = results["clean"]
        clean_acc = clean[(clean["dataset"] == dataset) & (clean["target"] == target)] \
            .set_index("seed")["accuracy"]
        rr = r[(r["dataset"] == dataset) & (r["target"] == target) & at(r)]
        per_run = rr.pivot_table(index=["source", "seed"], columns="part", values="accuracy")
        base = clean_acc.reindex(per_run.index.get_level_values("seed")).to_numpy()
        damage = base - per_run["full"].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            k0 = np.where(damage > 0.02, (base - per_run["k=0 only"].to_numpy()) / damage, np.nan)
            rest = np.where(damage > 0.02, (base - per_run["k>=1 only"].to_numpy()) / damage,
                            np.nan)
        attack_runs = np.array([s in classical for s in per_run.index.get_level_values("source")])
        noise_runs = per_run.index.get_level_values("source") == "sign noise"
        tt = t[(t["dataset"] == dataset) & (t["target"] == target) & (t["attack"] == "pgd")
               & t["source"].isin(classical) & at(t)]
        noise = nz[(nz["dataset"] == dataset) & (nz["target"] == target)
                   & (nz["noise"] == "sign") & at(nz)]
        ee = e[(e["dataset"] == dataset) & at(e) & (e["k"] == 0)]
        rows.append({
            "dataset": dataset, "target": target, "clean": clean_acc.mean(),
            "transferred PGD": tt["accuracy"].mean(), "transferred PGD spread": _spread(tt["accuracy"]),
            "sign noise": noise["accuracy"].mean(),
            "damage from k=0 part": _mean(k0[attack_runs]),
            "damage from k=0 part spread": _spread(k0[attack_runs]),
            "damage from k>=1 part": _mean(rest[attack_runs]),
            "noise damage from its k=0 part": _mean(k0[noise_runs]),
            "k=0 energy (classical PGD)": ee[ee["source"].isin(classical)
                                             & (ee["attack"] == "pgd")]["share"].mean(),
            "k=0 energy (sign noise)": ee[ee["source"] == "sign noise"]["share"].mean()})
    return pd.DataFrame(rows)


def _mean(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def _spread(values) -> float:
    """Standard deviation over runs (surrogates × seeds), NaN-aware."""
    values = np.asarray(values, dtype=float)
    return float(np.nanstd(values)) if np.isfinite(values).sum() > 1 else float("nan")


def conclusion_markdown(table: pd.DataFrame, eps: float, settings) -> str:
    """The chapter's descriptive conclusion, generated from :func:`conclusion_table` (the
    verdicts are :func:`verdicts`)."""
    def pct(v, spread=None):
        if not np.isfinite(v):
            return "n/a"
        return f"{v:.0%}" + (f" ± {spread:.0%}" if spread is not None and np.isfinite(spread)
                             else "")

    lines = []
    for _, row in table.iterrows():
        beyond_noise = row["sign noise"] - row["transferred PGD"]
        lines.append(
            f"- **{row['dataset']}, {VARIANT_LABELS[row['target']]}**: clean {row['clean']:.2f}; "
            f"PGD transferred from the classical surrogates at ε = {eps} leaves "
            f"{row['transferred PGD']:.2f} ± {row['transferred PGD spread']:.2f} (sign noise of "
            f"the same budget: {row['sign noise']:.2f}; the attack costs {beyond_noise:+.2f} "
            f"more than noise). The k = 0 part of the perturbation alone reproduces "
            f"{pct(row['damage from k=0 part'], row['damage from k=0 part spread'])} of the "
            f"transferred damage, the k ≥ 1 part {pct(row['damage from k>=1 part'])} (for "
            f"sign noise, its k = 0 part reproduces {pct(row['noise damage from its k=0 part'])} "
            f"of its damage). k = 0 holds {pct(row['k=0 energy (classical PGD)'])} of the "
            f"perturbations' encoded energy (sign noise: {pct(row['k=0 energy (sign noise)'])}).")
    lines += ["", f"(profile `{settings.profile}`; ± are standard deviations over "
                  f"{len(settings.surrogates)} surrogates × {settings.n_seeds} seed(s), not "
                  f"confidence intervals; the verdicts below judge the claims.)"]
    return "\n".join(lines)


def examples(settings, dataset: str, n: int = 3, source: str = "cnn", attack: str = "pgd"):
    """A few attacked test images of ``dataset`` (from the cached adversarial set of
    ``source`` at the reference ε) with predictions: dict of arrays and row captions."""
    images, labels = data.load(dataset, "test",
                               n=min(settings.n_attack, data.split_size(dataset, "test")),
                               seed=settings.image_seed)
    spec = surrogates.SurrogateSpec(dataset, source, settings.seed, settings.surrogate_n_train,
                                 settings.surrogate_epochs)
    surrogate, _ = surrogates.train_surrogate(spec)
    adv = attacks.adversarial_set(surrogate, asdict(spec), images, labels, attack,
                                  settings.reference_eps, settings.pgd_steps,
                                  settings.pgd_step_factor, settings.seed)
    quantum, _ = trained(ladder.model_spec(settings.model_settings(), dataset, "sector", settings.seed),
                         progress=False)
    pipe = QuantumPipeline(quantum)
    pred = {name: (surrogates.predict_images(m, images), surrogates.predict_images(m, adv))
            for name, m in (("surrogate", surrogate), ("sector", pipe))}
    # prefer images the quantum model got right and the attack flipped
    flipped = np.flatnonzero((pred["sector"][0] == labels) & (pred["sector"][1] != labels))
    rest = np.setdiff1d(np.arange(len(labels)), flipped)
    pick = np.concatenate([flipped, rest])[:n]
    names = data.info(dataset).classes
    captions = [f"{names[labels[i]]}\n{source}: {names[pred['surrogate'][1][i]]}\n"
                f"sector-res.: {names[pred['sector'][0][i]]} → {names[pred['sector'][1][i]]}"
                for i in pick]
    means = lambda x: rings.ring_means(rings.sample_grid(x))
    return {"clean": images[pick], "adversarial": adv[pick], "labels": labels[pick],
            "means_clean": means(images[pick]), "means_adversarial": means(adv[pick]),
            "captions": captions}


# ----------------------------------------------------------------- per-image data and verdicts

TRANSFER_FIGURE = "fig-transfer-verdicts"
FAMILY = ("C3-transfer", "C3-ring-means", "headline")


def correctness(predictions: pd.DataFrame, dataset: str, target: str, perturbation: str,
                eps: float, part: str = "full") -> np.ndarray:
    """(n_seeds, n_images) bool: which attacked image each seed's ``target`` got right under
    ``perturbation`` (``"clean"``, ``"pgd from cnn"``, ``"sign noise"``, ...) at ``eps``,
    whole or only its ``part`` (``"k=0 only"``, ``"k>=1 only"``, :data:`ENERGY_MATCHED`,
    ``"background part"``, ``"object part"``); rows in seed order."""
    p = predictions
    rows = p[(p["dataset"] == dataset) & (p["target"] == target)
             & (p["perturbation"] == perturbation) & np.isclose(p["eps"], eps)
             & (p["part"] == part)].sort_values("seed")
    if rows.empty:
        raise ValueError(f"no predictions for {target} on {dataset} under {perturbation!r} "
                         f"at eps={eps} ({part})")
    return np.stack([decode_classes(a) == decode_classes(y)
                     for a, y in zip(rows["predicted"], rows["labels"])])


def transferred(predictions, dataset, target, sources, eps, part="full") -> np.ndarray:
    """Correct under PGD from *every* classical source at ``eps`` (the transfer attacker may
    pick the surrogate that fools the model): the AND over ``sources``."""
    out = None
    for source in sources:
        ok = correctness(predictions, dataset, target, f"pgd from {source}", eps, part)
        out = ok if out is None else out & ok
    return out


def _seed_p(a, b) -> float:
    return 1.0 if a.shape[0] < 2 else float(stats.permutation_test_seeds(a, b).pvalue)


def verdicts(results: dict[str, pd.DataFrame], eps: float, n_resamples: int = 10_000):
    """C3-transfer, C3-ring-means and the headline, judged with :data:`equivar.stats.RULES`
    (one Holm family), pooled over the real datasets and the invariant models; an image
    counts as attacked when PGD from any classical surrogate at ``eps`` fools the model.

    * C3-transfer and headline: clean correct minus correct under the transfer attack
      (thresholds 0.05 and 0.10);
    * C3-ring-means: correct under the perturbations with their k = 0 part removed (on the
      sampled grid) minus correct under the same perturbations with the same energy removed
      in random directions (:data:`ENERGY_MATCHED`): removing k = 0 also makes the
      perturbation smaller, and the control is as much smaller.

    Paired over seeds × images (two-level bootstrap 95 % CI), seed-level sign-flip test.
    Returns (rows for the scorecard, a per-dataset-and-model table of the same statistics
    with, not judged, sign noise of the same budget and the drop beyond that noise, and the
    raw ring-mean effect, k = 0 removed minus full perturbation, each with its CI)."""
    pred = results["predictions"]
    sources = sorted(set(results["surrogates"]["surrogate"]))
    pairs = [(d, t) for (d, t), _ in pred[pred["target"].isin(INVARIANT)]
             .groupby(["dataset", "target"], sort=False)]
    if not pairs or not sources:
        raise ValueError("no invariant targets or no classical surrogates in the results")
    parts = {"clean": [], "attacked": [], "no k=0": [], "energy-matched": []}
    rows = []
    for dataset, target in pairs:
        clean = correctness(pred, dataset, target, "clean", 0.0)
        attacked = transferred(pred, dataset, target, sources, eps)
        no_k0 = transferred(pred, dataset, target, sources, eps, "k>=1 only")
        matched = transferred(pred, dataset, target, sources, eps, ENERGY_MATCHED)
        noise = correctness(pred, dataset, target, "sign noise", eps)
        for key, value in zip(parts, (clean, attacked, no_k0, matched)):
            parts[key].append(value)
        drop = stats.bootstrap_difference(clean, attacked, n_resamples=n_resamples)
        via = stats.bootstrap_difference(no_k0, attacked, n_resamples=n_resamples)
        controlled = stats.bootstrap_difference(no_k0, matched, n_resamples=n_resamples)
        # beyond noise: correct under same-budget sign noise minus correct under the attack
        # (the part of the drop that is not mere sensitivity to any perturbation of size ε)
        beyond = stats.bootstrap_difference(noise, attacked, n_resamples=n_resamples)
        rows.append({"dataset": dataset, "target": target, "clean": clean.mean(),
                     "transferred": attacked.mean(), "sign noise": noise.mean(),
                     "k=0 part removed": no_k0.mean(), ENERGY_MATCHED: matched.mean(),
                     "transfer drop": drop.estimate, "drop low": drop.low,
                     "drop high": drop.high, "ring-mean effect": via.estimate,
                     "effect low": via.low, "effect high": via.high,
                     "ring-mean effect vs energy-matched": controlled.estimate,
                     "vs energy-matched low": controlled.low,
                     "vs energy-matched high": controlled.high,
                     "drop beyond noise": beyond.estimate, "beyond low": beyond.low,
                     "beyond high": beyond.high})
    pooled = {k: np.concatenate(v, axis=1) for k, v in parts.items()}
    # the targets of one dataset score the same images: one image to the bootstrap
    ids = np.concatenate([[f"{d}/{j}" for j in range(part.shape[1])]
                          for (d, _), part in zip(pairs, parts["clean"])])
    drop = stats.bootstrap_difference(pooled["clean"], pooled["attacked"],
                                      n_resamples=n_resamples, image_ids=ids)
    p_drop = _seed_p(pooled["clean"], pooled["attacked"])
    # C3-ring-means is the controlled effect (k = 0 removed vs the same energy removed at
    # random); the raw effect against the full perturbation stays in the table only
    via = stats.bootstrap_difference(pooled["no k=0"], pooled["energy-matched"],
                                     n_resamples=n_resamples, image_ids=ids)
    found = {"C3-transfer": (drop, p_drop),
             "C3-ring-means": (via, _seed_p(pooled["no k=0"], pooled["energy-matched"])),
             "headline": (drop, p_drop)}
    scope = (f"PGD at ε = {eps:g} from any of {', '.join(sources)}; pooled over "
             + ", ".join(f"{d}/{t}" for d, t in pairs))
    # the headline is C3-transfer's test at another threshold: one member of the Holm family
    family = scorecard.judge_rows(found, stats.RULES, {c: TRANSFER_FIGURE for c in found},
                                  "03", scope, same_test=scorecard.SAME_TEST)
    table = pd.DataFrame(rows)
    table.attrs["CI"] = drop.what
    table.attrs["min p"] = stats.min_pvalue(int(pooled["clean"].shape[0]))
    return family, table


def split_summary(results: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Mean k = 0 share of the encoded change, and the invariant targets' accuracy, for the
    full transferred PGD perturbation and its background and object parts, per dataset and
    source (over seeds); sign noise with and without clipping as extra rows."""
    sp = results["split"]
    cols = [c for c in sp.columns if c == "k0 share" or c.startswith("accuracy ")]
    out = sp.groupby(["dataset", "source", "eps", "part"], sort=False)[cols].mean().reset_index()
    clip = results["clipping"].groupby(["dataset", "eps", "clipped"], sort=False)[
        "k0 share"].mean().reset_index()
    clip["source"] = "sign noise"
    clip["part"] = np.where(clip["clipped"], "clipped to [0, 1]", "not clipped")
    return pd.concat([out, clip.drop(columns="clipped")], ignore_index=True)


def verdict_markdown(family: list[dict], table: pd.DataFrame, eps: float, settings) -> str:
    """The chapter's verdicts in words, generated from :func:`verdicts`."""
    lines = []
    for _, r in table.iterrows():
        lines.append(
            f"- **{r['dataset']}, {VARIANT_LABELS[r['target']]}**: clean {r['clean']:.3f}, "
            f"under transferred PGD (worst surrogate per image) {r['transferred']:.3f}, under "
            f"sign noise of the same budget {r['sign noise']:.3f}; with the ring-mean part of "
            f"every perturbation removed {r['k=0 part removed']:.3f}, with the same energy "
            f"removed in random directions instead {r[ENERGY_MATCHED]:.3f}. Effect of the "
            f"ring-mean part against the full perturbation (raw) "
            f"{r['ring-mean effect']:+.3f} [{r['effect low']:+.3f}, {r['effect high']:+.3f}]; "
            f"against the energy-matched removal (what C3-ring-means judges) "
            f"{r['ring-mean effect vs energy-matched']:+.3f} "
            f"[{r['vs energy-matched low']:+.3f}, {r['vs energy-matched high']:+.3f}].")
    lines.append("")
    for row in family:
        lines.append(f"- **{row['claim']}** ({stats.RULES[row['claim']].description}) "
                     f"{row['estimate']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}], Holm "
                     f"p = {row['p_holm']:.3g}: **{row['verdict']}**.")
    tests = len({row["p_raw"] for row in family})   # the headline shares C3-transfer's test
    lines += ["", f"Pooled over: {family[0]['scope']}. Intervals: {table.attrs['CI']}. Profile "
              f"`{settings.profile}`: {stats.floor_note(settings.n_seeds, tests)}."]
    return "\n".join(lines)
