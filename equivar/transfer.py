"""Chapter 3's study: classical transfer attacks on the quantum models, sector by sector.

:func:`study` trains (or loads) the surrogates and the quantum models of chapter 2, crafts
every adversarial set once (cached), scores every target on it, and records the sector view
of each perturbation. The summaries and the generated conclusion live here too.
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd

from equivar import attacks, data
from equivar.reliance import summarise

QUANTUM = ("west", "sector", "baseline")
PARTS = ("full", "k=0 only", "k>=1 only")


def _success(pred_clean, pred_adv, labels) -> float:
    """Share of inputs classified correctly when clean that the perturbation flips."""
    correct = pred_clean == labels
    return float((pred_adv[correct] != labels[correct]).mean()) if correct.any() else np.nan


def study(settings, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Run chapter 3 for :class:`equivar.config.TransferSettings`; DataFrames keyed by
    ``clean``, ``transfer``, ``noise``, ``energy``, ``restricted``, ``logit_change``,
    ``surrogates``, ``notes``."""
    from tqdm import tqdm

    from equivar.model import amplitudes
    from equivar.train import predict, trained

    models = settings.model_settings()
    names, notes = data.resolve(settings.datasets, fallbacks={"mnist": "mnist-5k"})
    seeds = [settings.seed + i for i in range(settings.n_seeds)]
    rows = {k: [] for k in ("clean", "transfer", "noise", "energy", "restricted",
                            "logit_change", "surrogates")}
    jobs = [(d, s) for d in names for s in seeds]
    bar = tqdm(total=len(jobs) * (len(settings.surrogates) + len(QUANTUM)) * len(settings.attacks)
               * len(settings.epsilons), desc="attacks", disable=not progress)
    for dataset, seed in jobs:
        n = min(settings.n_attack, _test_size(dataset))
        images, labels = data.load(dataset, "test", n=n, seed=settings.seed)
        classifiers, quantum, source_ids = {}, {}, {}
        for kind in settings.surrogates:
            spec = attacks.SurrogateSpec(dataset, kind, seed, settings.surrogate_n_train,
                                         settings.surrogate_epochs)
            model, record = attacks.train_surrogate(spec)
            classifiers[kind], source_ids[kind] = model, asdict(spec)
            rows["surrogates"].append({"dataset": dataset, "seed": seed, "surrogate": kind,
                                       "n_train": record["n_train"]})
        for variant in QUANTUM:
            spec = models.model_spec(dataset, variant, seed)
            model, _ = trained(spec, progress=False)
            quantum[variant] = model
            classifiers[variant] = attacks.QuantumPipeline(model)
            source_ids[variant] = asdict(spec)
        clean_pred = {t: attacks.predict_images(m, images) for t, m in classifiers.items()}
        tag = {"dataset": dataset, "seed": seed}
        for target, pred in clean_pred.items():
            rows["clean"].append({**tag, "target": target, "accuracy": float((pred == labels).mean())})

        def score(perturbed, extra, table):
            for target, model in classifiers.items():
                pred = attacks.predict_images(model, perturbed)
                rows[table].append({**tag, **extra, "target": target,
                                    "accuracy": float((pred == labels).mean()),
                                    "success_rate": _success(clean_pred[target], pred, labels)})

        def energy(perturbed, extra):
            share = attacks.sector_energy_share(images, perturbed).mean(0)
            for k, value in enumerate(share):
                rows["energy"].append({**tag, **extra, "k": k, "share": float(value)})

        for eps in settings.epsilons:
            for kind in attacks.NOISES:
                noisy = attacks.noise(images, eps, kind, seed)
                score(noisy, {"noise": kind, "eps": eps}, "noise")
                if eps > 0:
                    energy(noisy, {"source": f"{kind} noise", "attack": "noise", "eps": eps})
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
                        for part, keep in zip(PARTS, (range(5), [0], range(1, 5))):
                            grids = attacks.restricted(images, adv, keep)
                            for variant, model in quantum.items():
                                pred = predict(model, amplitudes(grids))
                                rows["restricted"].append(
                                    {**extra, **tag, "target": variant, "part": part,
                                     "accuracy": float((pred == labels).mean())})
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


def _test_size(dataset: str) -> int:
    return 10 ** 9 if dataset == "synthetic" else len(data.load(dataset, "test")[1])


def transfer_matrix(results: dict[str, pd.DataFrame], attack: str, eps: float) -> pd.DataFrame:
    """Mean target accuracy per dataset, source and target at one (attack, ε)."""
    t = results["transfer"]
    part = t[(t["attack"] == attack) & np.isclose(t["eps"], eps)]
    return summarise(part, ["dataset", "source", "target"], "accuracy")


def conclusion_table(results: dict[str, pd.DataFrame], eps: float) -> pd.DataFrame:
    """Per dataset and invariant target, at ``eps`` with PGD from the classical surrogates:

    clean accuracy; accuracy under the transferred attack (mean over surrogates) and under
    sign noise; the share of the transfer damage reproduced by the k = 0 part alone and by
    the k ≥ 1 part alone; the k = 0 energy share of the perturbation against sign noise's.
    Means over seeds.
    """
    rows = []
    t, nz, r, e = (results[k] for k in ("transfer", "noise", "restricted", "energy"))
    for (dataset, target), _ in results["clean"].groupby(["dataset", "target"], sort=False):
        if target not in ("west", "sector"):
            continue
        sel = (t["dataset"] == dataset) & (t["target"] == target) & (t["attack"] == "pgd")
        classical = t["source"].isin(results["surrogates"]["surrogate"].unique())
        clean = t[sel & classical & (t["eps"] == 0)]["accuracy"].mean()
        attacked = t[sel & classical & np.isclose(t["eps"], eps)]["accuracy"].mean()
        noise = nz[(nz["dataset"] == dataset) & (nz["target"] == target)
                   & (nz["noise"] == "sign") & np.isclose(nz["eps"], eps)]["accuracy"].mean()
        rr = r[(r["dataset"] == dataset) & (r["target"] == target) & np.isclose(r["eps"], eps)]
        acc = rr.groupby("part")["accuracy"].mean()
        damage = clean - acc.get("full", np.nan)
        share = (lambda part: (clean - acc.get(part, np.nan)) / damage
                 if damage and damage > 0.02 else np.nan)
        ee = e[(e["dataset"] == dataset) & np.isclose(e["eps"], eps) & (e["k"] == 0)]
        adv_k0 = ee[ee["attack"] == "pgd"]["share"].mean()
        noise_k0 = ee[ee["source"] == "sign noise"]["share"].mean()
        rows.append({"dataset": dataset, "target": target, "clean": clean,
                     "transferred PGD": attacked, "sign noise": noise,
                     "damage from k=0 part": share("k=0 only"),
                     "damage from k>=1 part": share("k>=1 only"),
                     "k=0 energy (attack)": adv_k0, "k=0 energy (noise)": noise_k0})
    return pd.DataFrame(rows)


def conclusion_markdown(table: pd.DataFrame, eps: float, settings) -> str:
    """The chapter's conclusion, generated from :func:`conclusion_table`."""
    from equivar.plots import VARIANT_LABELS

    def pct(v):
        return "n/a" if not np.isfinite(v) else f"{v:.0%}"

    lines = []
    through_k0 = []
    for _, row in table.iterrows():
        beyond_noise = row["sign noise"] - row["transferred PGD"]
        lines.append(
            f"- **{row['dataset']}, {VARIANT_LABELS[row['target']]}**: clean {row['clean']:.2f}; "
            f"PGD transferred from the classical surrogates at ε = {eps} leaves "
            f"{row['transferred PGD']:.2f} (sign noise of the same budget: "
            f"{row['sign noise']:.2f}, so the attack costs {beyond_noise:+.2f} beyond noise). "
            f"The k = 0 part of the perturbation alone reproduces "
            f"{pct(row['damage from k=0 part'])} of the transferred damage, the k ≥ 1 part "
            f"{pct(row['damage from k>=1 part'])}; k = 0 holds "
            f"{pct(row['k=0 energy (attack)'])} of the perturbation's energy "
            f"(sign noise: {pct(row['k=0 energy (noise)'])}).")
        if np.isfinite(row["damage from k=0 part"]):
            through_k0.append(row["damage from k=0 part"] >= 0.5)
    if through_k0:
        lines.append("")
        lines.append(
            f"In {sum(through_k0)} of {len(through_k0)} dataset–model combinations the ring-mean "
            f"part of the transferred perturbation alone does at least half of the damage "
            f"(profile `{settings.profile}`, {settings.n_seeds} seed(s)).")
    return "\n".join(lines)


def examples(settings, dataset: str, n: int = 3, source: str = "cnn", attack: str = "pgd"):
    """A few attacked test images of ``dataset`` (from the cached adversarial set of
    ``source`` at the reference ε) with predictions: dict of arrays and row captions."""
    from equivar.train import trained

    images, labels = data.load(dataset, "test", n=min(settings.n_attack, _test_size(dataset)),
                               seed=settings.seed)
    spec = attacks.SurrogateSpec(dataset, source, settings.seed, settings.surrogate_n_train,
                                 settings.surrogate_epochs)
    surrogate, _ = attacks.train_surrogate(spec)
    adv = attacks.adversarial_set(surrogate, asdict(spec), images, labels, attack,
                                  settings.reference_eps, settings.pgd_steps,
                                  settings.pgd_step_factor, settings.seed)
    quantum, _ = trained(settings.model_settings().model_spec(dataset, "sector", settings.seed),
                         progress=False)
    pipe = attacks.QuantumPipeline(quantum)
    pred = {name: (attacks.predict_images(m, images), attacks.predict_images(m, adv))
            for name, m in (("surrogate", surrogate), ("sector", pipe))}
    # prefer images the quantum model got right and the attack flipped
    flipped = np.flatnonzero((pred["sector"][0] == labels) & (pred["sector"][1] != labels))
    rest = np.setdiff1d(np.arange(len(labels)), flipped)
    pick = np.concatenate([flipped, rest])[:n]
    names = data.info(dataset).classes
    captions = [f"{names[labels[i]]}\n{source}: {names[pred['surrogate'][1][i]]}\n"
                f"sector-res.: {names[pred['sector'][0][i]]} → {names[pred['sector'][1][i]]}"
                for i in pick]
    from equivar.config import SAMPLING
    means = lambda x: SAMPLING.sample(x).mean(-1)
    return {"clean": images[pick], "adversarial": adv[pick], "labels": labels[pick],
            "means_clean": means(images[pick]), "means_adversarial": means(adv[pick]),
            "captions": captions}
