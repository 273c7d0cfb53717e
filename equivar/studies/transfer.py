"""Chapter 3's study: classical transfer attacks on the quantum models, sector by sector.

:func:`study` trains (or loads) the surrogates and the quantum models of chapter 2, crafts
every adversarial set once (cached), scores every target on it, and records the sector view
of each perturbation. The summaries and the generated conclusion live here too.
"""
from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pandas as pd


from equivar import data
from equivar.adversary import attacks
from equivar.core import rings, sectors
from equivar.core.model import amplitudes
from equivar.core.pipeline import QuantumPipeline
from equivar.learn import surrogates
from equivar.learn.train import predict, trained
from equivar.settings import SAMPLING, VARIANT_LABELS
from equivar.studies import ladder
from equivar.studies.reliance import summarise
from equivar.runtime import progress as progress_bar
from equivar.studies.units import Unit, train_surrogate

QUANTUM = ("west", "sector", "baseline")
PARTS = ("full", "k=0 only", "k>=1 only")


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
    """Chapter 3's expensive work: the quantum targets, the surrogates (stage 1) and every
    adversarial set (stage 2)."""
    names, _ = data.resolve(settings.datasets, fallbacks={"mnist": "mnist-5k"})
    models = settings.model_settings()
    out = []
    for dataset in names:
        for seed in range(settings.seed, settings.seed + settings.n_seeds):
            own_models = replace(models, seed=seed, n_seeds=1)
            for variant in QUANTUM:
                out.append(Unit(1, f"model {dataset}/{variant}/seed {seed}",
                                ladder.train_chapter_model, (own_models, dataset, variant, seed)))
            for kind in settings.surrogates:
                spec = surrogates.SurrogateSpec(dataset, kind, seed, settings.surrogate_n_train,
                                                settings.surrogate_epochs)
                out.append(Unit(1, f"surrogate {dataset}/{kind}/seed {seed}", train_surrogate,
                                (spec,)))
            # the unit's settings name its own seed only: keys do not depend on the split
            own = replace(settings, seed=seed, n_seeds=1)
            for source in list(settings.surrogates) + list(QUANTUM):
                out.append(Unit(2, f"attacks from {source} on {dataset}/seed {seed}",
                                adversarial_sets, (own, dataset, seed, source)))
    return out


def study(settings, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Run chapter 3 for :class:`equivar.settings.TransferSettings`; DataFrames keyed by
    ``clean``, ``transfer``, ``noise``, ``energy``, ``restricted``, ``logit_change``,
    ``surrogates``, ``notes``."""
    models = settings.model_settings()
    names, notes = data.resolve(settings.datasets, fallbacks={"mnist": "mnist-5k"})
    seeds = [settings.seed + i for i in range(settings.n_seeds)]
    rows = {k: [] for k in ("clean", "transfer", "noise", "energy", "restricted",
                            "logit_change", "surrogates")}
    jobs = [(d, s) for d in names for s in seeds]
    bar = progress_bar(total=len(jobs) * (len(settings.surrogates) + len(QUANTUM)) * len(settings.attacks)
               * len(settings.epsilons), desc="attacks", disable=not progress)
    for dataset, seed in jobs:
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
        for target, pred in clean_pred.items():
            rows["clean"].append({**tag, "target": target, "accuracy": float((pred == labels).mean())})

        def score(perturbed, extra, table):
            for target, model in classifiers.items():
                pred = surrogates.predict_images(model, perturbed)
                rows[table].append({**tag, **extra, "target": target,
                                    "accuracy": float((pred == labels).mean()),
                                    "success_rate": attacks.success_rate(clean_pred[target], pred, labels)})

        def energy(perturbed, extra):
            share = attacks.sector_energy_share(images, perturbed).mean(0)
            for k, value in enumerate(share):
                rows["energy"].append({**tag, **extra, "k": k, "share": float(value)})

        sectors_all = sectors.independent_sectors(SAMPLING.n_angles)

        def restrict(perturbed, extra):
            for part, keep in zip(PARTS, (sectors_all, [0], sectors_all[1:])):
                grids = attacks.restricted(images, perturbed, keep)
                for variant, model in quantum.items():
                    pred = predict(model, amplitudes(grids))
                    rows["restricted"].append({**extra, **tag, "target": variant, "part": part,
                                               "accuracy": float((pred == labels).mean())})

        for eps in settings.epsilons:
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
                    bar.update(1)
                    if eps == 0:
                        continue
                    energy(adv, extra)
                    if source in settings.surrogates and attack == "pgd":
                        restrict(adv, extra)
                        for variant in ("west", "sector"):
                            change = attacks.logit_change_by_sector(quantum[variant], images,
                                                                    adv, labels).mean(0)
                            for k, value in enumerate(change):
                                rows["logit_change"].append({**extra, **tag, "target": variant,
                                                             "k": k, "change": float(value)})
    bar.close()
    out = {k: pd.DataFrame(v) for k, v in rows.items()}
    out["notes"] = pd.DataFrame([{"dataset": k, "note": v} for k, v in notes.items()],
                                columns=["dataset", "note"])
    return out


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
    """The chapter's conclusion, generated from :func:`conclusion_table`.

    A combination counts as "through the ring means" when the k = 0 part of the transferred
    perturbation alone reproduces at least half of the transfer damage (mean over surrogates
    and seeds) and more than the k = 0 part of sign noise reproduces of the noise's damage.
    """
    def pct(v, spread=None):
        if not np.isfinite(v):
            return "n/a"
        return f"{v:.0%}" + (f" ± {spread:.0%}" if spread is not None and np.isfinite(spread)
                             else "")

    lines, through_k0 = [], []
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
        share, noise_share = row["damage from k=0 part"], row["noise damage from its k=0 part"]
        if np.isfinite(share):
            through_k0.append(share >= 0.5 and (not np.isfinite(noise_share)
                                                or share > noise_share))
    if through_k0:
        lines += ["", f"In {sum(through_k0)} of {len(through_k0)} dataset–model combinations "
                      "the ring-mean part of the transferred perturbation alone does at least "
                      "half of the damage, and more of it than the ring-mean part of sign noise "
                      f"does of the noise's (profile `{settings.profile}`, ± spread over "
                      f"{len(settings.surrogates)} surrogates × {settings.n_seeds} seed(s))."]
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
