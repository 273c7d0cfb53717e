"""Chapter 4's study: suppressed and defended models on chapter 3's stored adversarial sets,
and under every threat model a referee would run.

For every dataset and seed, :func:`study` trains (or loads) the quantum models with sector 0
down-weighted by each α, with each other independent sector projected out (controls), and the
two reference defences (Gaussian-noise augmentation, adversarial training on surrogate PGD),
all with chapter 2's training settings; then scores them on the very adversarial sets chapter 3
crafted (same cache entries) for every attack and ε. :func:`threat_study` attacks the
unsuppressed, the suppressed and the defended models under weak and strong transfer, white-box,
adaptive and black-box threat models (:mod:`equivar.studies.threats`), keeping per-image
correctness for the statistics.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from equivar import data, stats
from equivar.adversary import attacks
from equivar.adversary.defences import trained_defended
from equivar.adversary.threats import FAMILIES
from equivar.core.filters import SectorFilter, projector_off_sector
from equivar.core.model import amplitudes
from equivar.core.pipeline import QuantumPipeline
from equivar.core.rings import sample_grid
from equivar.learn import surrogates
from equivar.learn.train import ModelSpec
from equivar.runtime import progress as progress_bar
from equivar.settings import VARIANT_LABELS
from equivar.studies import controls, ladder, threats, transfer
from equivar.studies.reliance import decode_classes, encode_classes, summarise
from equivar.studies.units import Unit, train_model, train_surrogate


def model_grid(settings, dataset: str, variant: str, seed: int,
               resolve: bool = True) -> list[tuple[str, str, object]]:
    """(label, group, ModelSpec) of every model of the study for one dataset/variant/seed.
    ``resolve=False`` lists the same models with chapter 2's fixed settings, without running
    the model selection (a sweep's plan needs only the labels)."""
    base = ladder.model_spec(settings.model_settings(), dataset, variant, seed) if resolve \
        else ModelSpec.from_settings(settings.model_settings(), dataset, variant, seed)
    transfer_settings = settings.transfer_settings()
    out = [("none", "k=0 down-weighting", base)]
    for alpha in settings.alphas:
        if alpha < 1:
            out.append((f"k=0 × {alpha:g}", "k=0 down-weighting",
                        replace(base, suppress_k=0, suppress_alpha=alpha)))
    for k in settings.control_sectors:
        out.append((f"project out k={k}", "control sector", replace(base, suppress_k=k,
                                                                    suppress_alpha=0.0)))
    out.append(("Gaussian-noise training", "reference defence",
                replace(base, augment="gaussian", augment_strength=settings.noise_sigma)))
    out.append(("adversarial training", "reference defence",
                replace(base, augment="pgd", augment_strength=settings.adversarial_eps,
                        augment_surrogate=("cnn", transfer_settings.surrogate_n_train,
                                           transfer_settings.surrogate_epochs))))
    return out


def equivalence(model, grids) -> dict[str, float]:
    """Mechanisms (a) and (c) on one model: max |f^(c) - <ψ|PMP|ψ>|, max |f^(c) - ‖Pψ‖² f^(a)|,
    and the share of inputs whose predicted class agrees."""
    cfg = model.config
    with torch.no_grad():
        fa = model.readout(SectorFilter(0, 0.0, True).states(grids)).numpy()
        pc = SectorFilter(0, 0.0, False).states(grids)
        fc = model.readout(pc).numpy()
        proj = projector_off_sector(cfg.n_rad, cfg.n_ang, 0)
        M = model.observables().numpy()
    psi = amplitudes(grids)
    pmp = proj @ M @ proj                                    # (classes, D, D)
    fpmp = np.einsum("bi,cij,bj->bc", psi, pmp, psi).real
    norm = (np.abs(pc) ** 2).sum(1)
    return {"max |f(c) - <psi|PMP|psi>|": float(np.abs(fc - fpmp).max()),
            "max |f(c) - |P psi|^2 f(a)|": float(np.abs(fc - norm[:, None] * fa).max()),
            "same prediction": float((fc.argmax(1) == fa.argmax(1)).mean()),
            "mean |P psi|^2": float(norm.mean())}


def study(settings, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Run chapter 4 for :class:`equivar.settings.SuppressionSettings`: DataFrames ``clean``,
    ``robust``, ``equivalence``, ``predictions`` (every model's predicted class per attacked
    image, clean and on every adversarial set: ``condition`` is ``"clean"`` or
    ``"<attack> from <source> at <eps>"``), ``notes``."""
    transfer_settings = settings.transfer_settings()
    names, notes = data.resolve(settings.datasets, fallbacks={"mnist": "mnist-5k"})
    seeds = [settings.seed + i for i in range(settings.n_seeds)]
    rows = {"clean": [], "robust": [], "equivalence": [], "predictions": []}
    jobs = [(d, s, v) for d in names for s in seeds for v in settings.variants]
    loaded = {}  # (dataset, seed) -> test images, labels and chapter 3's adversarial sets
    for dataset, seed, variant in progress_bar(jobs, desc="models", disable=not progress):
        if (dataset, seed) not in loaded:
            loaded.clear()
            loaded[(dataset, seed)] = _adversarial_sets(transfer_settings, dataset, seed)
        images, labels, adversarial = loaded[(dataset, seed)]
        for label, group, spec in model_grid(settings, dataset, variant, seed):
            model, record = trained_defended(spec, progress=False)
            pipe = QuantumPipeline(model, spec.grid_filter())
            tag = {"dataset": dataset, "seed": seed, "variant": variant, "model": label,
                   "group": group, "k": spec.suppress_k, "alpha": spec.suppress_alpha}
            clean_pred = surrogates.predict_images(pipe, images)
            rows["clean"].append({**tag, "accuracy": float((clean_pred == labels).mean()),
                                  "n_train": record["n_train"]})
            keep = {"dataset": dataset, "seed": seed, "variant": variant, "model": label,
                    "labels": encode_classes(labels)}
            rows["predictions"].append({**keep, "condition": "clean",
                                        "predicted": encode_classes(clean_pred)})
            for (source, attack, eps), adv in adversarial.items():
                pred = surrogates.predict_images(pipe, adv)
                if eps > 0:
                    rows["predictions"].append({**keep, "condition": f"{attack} from {source} "
                                                                     f"at {eps:g}",
                                                "predicted": encode_classes(pred)})
                rows["robust"].append({**tag, "source": source, "attack": attack, "eps": eps,
                                       "accuracy": float((pred == labels).mean()),
                                       "success_rate": attacks.success_rate(clean_pred, pred,
                                                                            labels)})
            if spec.suppress_k == 0 and spec.suppress_alpha == 0 and spec.augment == "none":
                rows["equivalence"].append({"dataset": dataset, "seed": seed, "variant": variant,
                                            **equivalence(model, sample_grid(images))})
    out = {k: pd.DataFrame(v) for k, v in rows.items()}
    out["notes"] = pd.DataFrame([{"dataset": k, "note": v} for k, v in notes.items()],
                                columns=["dataset", "note"])
    return out


def _adversarial_sets(transfer_settings, dataset: str, seed: int):
    """Chapter 3's attacked test images of ``dataset`` and its stored adversarial sets from
    every classical surrogate of ``seed``: (images, labels, {(source, attack, eps): images})."""
    images, labels = transfer.attacked_images(transfer_settings, dataset)
    adversarial = {(kind, attack, eps): adv for kind in transfer_settings.surrogates
                   for (attack, eps), adv in transfer.adversarial_sets(
                       transfer_settings, dataset, seed, kind).items()}
    return images, labels, adversarial


def units(settings) -> list[Unit]:
    """Chapter 4's expensive work: every suppressed and defended model and the ring surrogates
    (stage 1), chapter 3's adversarial sets from the surrogates (stages 1-2), the white-box,
    adaptive and black-box evaluations and the convergence curves (stage 2) and the transfer
    sets of the threat study (stage 3)."""
    transfer_settings = settings.transfer_settings()
    names, _ = data.resolve(settings.datasets, fallbacks={"mnist": "mnist-5k"})
    out = [u for u in transfer.units(transfer_settings) if u.fn is not transfer.score_unit
           and (u.fn is not transfer.adversarial_sets or u.args[3] in transfer_settings.surrogates)]
    for dataset in names:
        for seed in range(settings.seed, settings.seed + settings.n_seeds):
            # the unit's settings name its own seed only: keys do not depend on the split
            own = replace(settings, seed=seed, n_seeds=1)
            tag = f"{dataset}/seed {seed}"
            out.append(Unit(0, f"surrogate {dataset}/ring/seed {seed}", train_surrogate,
                            (threats.ring_surrogate(transfer_settings, dataset, seed),)))
            out.append(Unit(3, f"threat-model transfer sets {tag}", threats.transfer_sets,
                            (own, dataset, seed)))
            for variant in settings.variants:
                # labels only: the selected specs are resolved in the worker (_grid_unit)
                where = (own, dataset, variant, seed)
                for i, (label, _, _) in enumerate(model_grid(*where, resolve=False)):
                    out.append(Unit(1, f"model {dataset}/{variant}/seed {seed}: {label}",
                                    _grid_unit, (*where, "models", i)))
                for i, (label, _, _) in enumerate(threat_grid(*where, resolve=False)):
                    out.append(Unit(2, f"attacks on {dataset}/{variant}/seed {seed}: {label}",
                                    _grid_unit, (*where, "threats", i)))
                for i, label in enumerate(BASELINE_LABELS):
                    out.append(Unit(1, f"baseline {dataset}/{variant}/seed {seed}: {label}",
                                    _baseline_unit, (*where, i)))
                if dataset == names[0] and seed == settings.seed:
                    for i, (label, _, _) in enumerate(convergence_grid(*where, resolve=False)):
                        out.append(Unit(2, f"convergence {dataset}/{variant}: {label}",
                                        _grid_unit, (*where, "convergence", i)))
    return out


# ----------------------------------------------------------------- threat models

def _grid_unit(settings, dataset: str, variant: str, seed: int, kind: str, index: int) -> None:
    """One unit of :func:`units`, resolved in the worker: train model ``index`` of the model
    grid, or compute the attacks (``"threats"``) or step curves (``"convergence"``) on it."""
    if kind == "models":
        train_model(model_grid(settings, dataset, variant, seed)[index][2])
    elif kind == "threats":
        threats.model_record(settings, dataset, threat_grid(settings, dataset, variant,
                                                            seed)[index][2])
    else:
        threats.convergence_record(settings, dataset, convergence_grid(settings, dataset,
                                                                       variant, seed)[index][2])


def threat_grid(settings, dataset: str, variant: str, seed: int,
                resolve: bool = True) -> list[tuple[str, str, object]]:
    """(label, group, ModelSpec) of the models attacked under every threat model: the
    unsuppressed one, k = 0 down-weighted by each of ``settings.threat_alphas``, the reference
    defences."""
    return threats.select(model_grid(settings, dataset, variant, seed, resolve),
                          settings.threat_alphas)


def convergence_grid(settings, dataset: str, variant: str, seed: int, resolve: bool = True):
    """The models whose step and restart curves are checked: unsuppressed and k = 0 removed."""
    return [m for m in threat_grid(settings, dataset, variant, seed, resolve)
            if m[0] in (threats.PLAIN, threats.SUPPRESSED)]


def threat_study(settings, progress: bool = True) -> dict:
    """Every threat model of :mod:`equivar.studies.threats` on the models of
    :func:`threat_grid`, for :class:`equivar.settings.SuppressionSettings`.

    Returns DataFrames ``clean`` (per dataset, seed, variant, model), ``curves`` (accuracy per
    threat model and ε: worst case over the family's attacks and every ε' ≤ ε), ``attacks``
    (accuracy of every single attack and white-box stage), ``residual`` (ring-mean change left
    by the ring-mean-preserving PGD), ``cost`` (seconds per family when first computed),
    ``convergence`` (accuracy vs iterations and restarts), ``notes``; ``epsilons``; and
    ``correct``: {(dataset, variant, model, threat): bool array (n_seeds, n_eps, n_images)}.
    """
    names, notes = data.resolve(settings.datasets, fallbacks={"mnist": "mnist-5k"})
    seeds = [settings.seed + i for i in range(settings.n_seeds)]
    eps_list = threats.epsilons(settings)
    rows = {k: [] for k in ("clean", "curves", "attacks", "residual", "cost", "convergence")}
    per_seed = {}
    jobs = [(d, s) for d in names for s in seeds]
    for dataset, seed in progress_bar(jobs, desc="threat models", disable=not progress):
        own = replace(settings, seed=seed, n_seeds=1)
        images, labels = threats.threat_images(settings, dataset)
        sets = threats.transfer_sets(own, dataset, seed)
        for variant in settings.variants:
            for label, group, spec in threat_grid(settings, dataset, variant, seed):
                pipe = QuantumPipeline(trained_defended(spec, progress=False)[0],
                                       spec.grid_filter())
                record = threats.model_record(own, dataset, spec)
                correct, attack_rows = threats.score(pipe, images, labels, sets, record,
                                                     eps_list)
                tag = {"dataset": dataset, "seed": seed, "variant": variant, "model": label,
                       "group": group}
                rows["clean"].append({**tag, "alpha": spec.suppress_alpha,
                                      "accuracy": float(record["clean"].mean()),
                                      "n_images": len(labels)})
                for threat, array in correct.items():
                    per_seed.setdefault((dataset, variant, label, threat), {})[seed] = array
                    rows["curves"].extend({**tag, "threat": threat, "eps": float(eps),
                                           "accuracy": float(array[e].mean())}
                                          for e, eps in enumerate(eps_list))
                rows["attacks"].extend({**tag, **r} for r in attack_rows)
                rows["residual"].extend({**tag, "eps": float(eps), "residual": float(res)}
                                        for eps, res in zip(eps_list, record["residual"]))
                rows["cost"].extend({**tag, "family": family, "seconds": float(sec)}
                                    for family, sec in zip(FAMILIES, record["seconds"]))
                if dataset == names[0] and seed == settings.seed and \
                        label in (threats.PLAIN, threats.SUPPRESSED):
                    curve = threats.convergence_record(own, dataset, spec)
                    rows["convergence"].extend({**tag, **r} for r in curve.to_dict("records"))
    out = {k: pd.DataFrame(v) for k, v in rows.items()}
    out["notes"] = pd.DataFrame([{"dataset": k, "note": v} for k, v in notes.items()],
                                columns=["dataset", "note"])
    out["epsilons"] = eps_list
    out["correct"] = {key: np.stack([arrays[s] for s in seeds]) for key, arrays in
                      per_seed.items()}
    return out


def robust_summary(results, eps: float, attack: str = "pgd") -> pd.DataFrame:
    """Clean and robust accuracy (at ``eps``, mean over the classical sources) per dataset,
    variant and model: mean ± std over seeds."""
    r = results["robust"]
    at = r[(r["attack"] == attack) & np.isclose(r["eps"], eps)]
    per_seed = at.groupby(["dataset", "variant", "model", "group", "seed"], sort=False)[
        "accuracy"].mean().rename("robust").reset_index()
    clean = results["clean"][["dataset", "variant", "model", "seed", "accuracy"]].rename(
        columns={"accuracy": "clean"})
    merged = per_seed.merge(clean, on=["dataset", "variant", "model", "seed"])
    merged["drop"] = merged["clean"] - merged["robust"]
    out = merged.groupby(["dataset", "variant", "model", "group"], sort=False).agg(
        clean=("clean", "mean"), clean_std=("clean", lambda v: v.std(ddof=0)),
        robust=("robust", "mean"), robust_std=("robust", lambda v: v.std(ddof=0)),
        drop=("drop", "mean"), drop_std=("drop", lambda v: v.std(ddof=0))).reset_index()
    return out


def conclusion_table(results, eps: float) -> pd.DataFrame:
    """Per dataset and variant, at ``eps`` (PGD, mean over the classical sources), comparing
    each model with the unsuppressed one seed by seed (mean and spread over seeds):

    change of robust accuracy, change of clean accuracy, and change of the attack-induced drop
    (clean - robust; negative = more robust), for the ring-mean sector projected out, for
    *every* control sector projected out (columns named by its model, e.g. ``"project out
    k=1: drop change"``; none is singled out, so nothing is picked on the test images), and
    for the two reference defences.
    """
    r = results["robust"]
    at = r[(r["attack"] == "pgd") & np.isclose(r["eps"], eps)]
    robust = at.groupby(["dataset", "variant", "model", "seed"])["accuracy"].mean().sort_index()
    clean = (results["clean"].set_index(["dataset", "variant", "model", "seed"])["accuracy"]
             .sort_index())
    rows = []
    for (dataset, variant), part in results["clean"].groupby(["dataset", "variant"], sort=False):
        def change(model, of):
            values = of.loc[(dataset, variant, model)] - of.loc[(dataset, variant, "none")]
            return float(values.mean()), float(values.std(ddof=0))

        def drop(model):
            d = (clean.loc[(dataset, variant, model)] - robust.loc[(dataset, variant, model)])
            return d

        def drop_change(model):
            values = drop(model) - drop("none")
            return float(values.mean()), float(values.std(ddof=0))

        row = {"dataset": dataset, "variant": variant,
               "clean none": float(clean.loc[(dataset, variant, "none")].mean()),
               "robust none": float(robust.loc[(dataset, variant, "none")].mean()),
               "drop none": float(drop("none").mean())}
        for name, model in (("k=0 removed", "k=0 × 0"),
                            *((c, c) for c in _control_models(part)),
                            ("noise training", "Gaussian-noise training"),
                            ("adversarial training", "adversarial training")):
            row[f"{name}: robust change"], row[f"{name}: robust spread"] = change(model, robust)
            row[f"{name}: clean change"] = change(model, clean)[0]
            row[f"{name}: drop change"], row[f"{name}: drop spread"] = drop_change(model)
        rows.append(row)
    return pd.DataFrame(rows)


def _control_models(frame: pd.DataFrame) -> list[str]:
    """The control-sector models (k ≠ 0 projected out) of a results frame, in its order."""
    return list(frame.loc[frame["group"] == "control sector", "model"].unique())


VERSUS = "k=0 removed vs "   # drop_tests' comparisons of k = 0 against one control sector


def _transfer_correct(pred: pd.DataFrame, dataset: str, variant: str, model: str,
                      eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(clean, robust) correctness (n_seeds, n_images) of ``model``; robust: correct under PGD
    from *every* classical surrogate at ``eps`` (the attacker may pick the surrogate)."""
    part = pred[(pred["dataset"] == dataset) & (pred["variant"] == variant)
                & (pred["model"] == model)]

    def correct(condition):
        rows = part[part["condition"] == condition].sort_values("seed")
        return np.stack([decode_classes(p) == decode_classes(y)
                         for p, y in zip(rows["predicted"], rows["labels"])])

    attacks_ = [c for c in part["condition"].unique()
                if c.startswith("pgd from ") and c.endswith(f" at {eps:g}")]
    if not attacks_:
        raise ValueError(f"no PGD predictions at eps={eps} for {dataset}/{variant}/{model}")
    robust = np.logical_and.reduce([correct(c) for c in attacks_])
    return correct("clean"), robust


def drop_tests(results, table: pd.DataFrame, eps: float,
               n_resamples: int = 10_000) -> pd.DataFrame:
    """Paired tests behind section 6's conclusion, per dataset and variant: the change of the
    attack-induced drop (clean and fooled by PGD from any classical surrogate at ``eps``)
    against the unsuppressed model for k = 0 projected out, for every control sector
    projected out and for the two defences, and k = 0 against *each* control sector
    (comparison ``"k=0 removed vs <control>"``: no control is selected on the test images);
    each with a paired two-level bootstrap 95 % CI over seeds × images and the seed-level
    sign-flip p, Holm-corrected over all rows (negative: the drop shrinks)."""
    pred = results["predictions"]
    frame = results["clean"]
    rows = []
    for _, row in table.iterrows():
        dataset, variant = row["dataset"], row["variant"]
        c0, r0 = _transfer_correct(pred, dataset, variant, threats.PLAIN, eps)
        drops = {threats.PLAIN: c0 & ~r0}
        controls_ = _control_models(frame[(frame["dataset"] == dataset)
                                          & (frame["variant"] == variant)])
        pairs = [("k=0 removed", "k=0 × 0", threats.PLAIN),
                 *((c, c, threats.PLAIN) for c in controls_),
                 ("noise training", "Gaussian-noise training", threats.PLAIN),
                 ("adversarial training", "adversarial training", threats.PLAIN),
                 *((VERSUS + c, "k=0 × 0", c) for c in controls_)]
        for name, model, against in pairs:
            for m in (model, against):
                if m not in drops:
                    c, r = _transfer_correct(pred, dataset, variant, m, eps)
                    drops[m] = c & ~r
            ci = stats.bootstrap_difference(drops[model], drops[against],
                                            n_resamples=n_resamples)
            rows.append({"dataset": dataset, "variant": variant, "comparison": name,
                         "model": model, "against": against, "drop change": ci.estimate,
                         "low": ci.low, "high": ci.high,
                         "p (seeds, raw)": threats.seed_pvalue(drops[model], drops[against]),
                         "CI": ci.what})
    out = pd.DataFrame(rows)
    out["p (Holm)"] = stats.holm(out["p (seeds, raw)"]) if len(out) else []
    return out


def conclusion_markdown(table: pd.DataFrame, tests: pd.DataFrame, eps: float, settings) -> str:
    """The chapter's section-6 conclusion, generated from :func:`conclusion_table` (means over
    seeds) and :func:`drop_tests` (paired CIs and Holm-corrected sign-flip tests)."""
    lines, shrank, specific = [], 0, 0
    significant = lambda r: bool(r["high"] < 0 and r["p (Holm)"] < 0.05)
    for _, row in table.iterrows():
        g = "k=0 removed"
        t = tests[(tests["dataset"] == row["dataset"]) & (tests["variant"] == row["variant"])] \
            .set_index("comparison")
        k0 = t.loc[g]
        versus = t[t.index.str.startswith(VERSUS)]
        against = "; ".join(f"{name[len(VERSUS):]} {r['drop change']:+.3f} [{r['low']:+.3f}, "
                            f"{r['high']:+.3f}], Holm p = {r['p (Holm)']:.3g}"
                            for name, r in versus.iterrows()) or "no control sector run"
        lines.append(
            f"- **{row['dataset']}, {VARIANT_LABELS[row['variant']]}**: projecting out the ring "
            f"means changes robust accuracy at ε = {eps} by {row[g + ': robust change']:+.3f} "
            f"(from {row['robust none']:.3f}; mean over surrogates and seeds) and clean "
            f"accuracy by {row[g + ': clean change']:+.3f} (from {row['clean none']:.3f}); the "
            f"attack-induced drop (fooled by any surrogate) changes by "
            f"{k0['drop change']:+.3f} [{k0['low']:+.3f}, {k0['high']:+.3f}], Holm p = "
            f"{k0['p (Holm)']:.3g}; against each control sector projected out ({against}). "
            f"Defences: "
            f"Gaussian-noise training {t.loc['noise training', 'drop change']:+.3f}, "
            f"adversarial training {t.loc['adversarial training', 'drop change']:+.3f}.")
        if significant(k0):
            shrank += 1
            # specific to the ring means only if k = 0 beats *every* control, not a chosen one
            specific += bool(len(versus)) and all(significant(r) for _, r in versus.iterrows())
    lines += ["",
              f"Projecting out the ring-mean sector shrank the attack-induced drop (95 % CI below "
              f"0 and Holm p < 0.05) in {shrank} of {len(table)} dataset–model combinations; in "
              f"{specific} of these it shrank it significantly more than every control sector "
              f"did, each projected out alone (CI below 0 and Holm p < 0.05 against each; "
              f"profile `{settings.profile}`, {settings.n_seeds} seed(s); "
              f"{tests['CI'].iloc[0] if len(tests) else ''}). The verdict on C4 is section 7.3's."]
    return "\n".join(lines)


def sector_effects(results, eps: float) -> pd.DataFrame:
    """Per dataset, variant and projected-out sector k (k = 0 and the controls): change of
    robust accuracy (PGD at ``eps``, mean over classical sources) and of clean accuracy
    relative to the unsuppressed model; mean and std over seeds (long format)."""
    r = results["robust"]
    at = r[(r["attack"] == "pgd") & np.isclose(r["eps"], eps)]
    robust = at.groupby(["dataset", "variant", "model", "seed"])["accuracy"].mean()
    clean = results["clean"].set_index(["dataset", "variant", "model", "seed"])["accuracy"]
    rows = []
    for quantity, values in (("robust", robust), ("clean", clean)):
        frame = values.rename("value").reset_index()
        base = frame[frame["model"] == "none"].set_index(["dataset", "variant", "seed"])["value"]
        for k in [0] + sorted(set(results["clean"]["k"]) - {0}):
            model = "k=0 × 0" if k == 0 else f"project out k={k}"
            sel = frame[frame["model"] == model].set_index(["dataset", "variant", "seed"])["value"]
            if sel.empty:
                continue
            diff = (sel - base.reindex(sel.index)).rename("change").reset_index()
            diff["k"], diff["quantity"] = k, quantity
            rows.append(diff)
    long = pd.concat(rows, ignore_index=True)
    return summarise(long, ["dataset", "variant", "quantity", "k"], "change")


# ----------------------------------------------------------------- plain baselines (controls)

BASELINE_REFERENCE = "k=0 × 0"   # per-ring mean-centring: the suppression the baselines face


# the models baseline_grid adds to model_grid's (trained by the sweep's units)
BASELINE_LABELS = ("global mean-centring", "background thresholding",
                   "Gaussian-noise training, equal steps", "adversarial training, equal steps")


def _baseline_unit(settings, dataset: str, variant: str, seed: int, index: int) -> None:
    """Train baseline ``BASELINE_LABELS[index]`` of :func:`baseline_grid` (in the worker)."""
    found = {label: (spec, pre) for label, spec, pre in
             baseline_grid(settings, dataset, variant, seed)}
    spec, pre = found[BASELINE_LABELS[index]]
    if pre is None:
        train_model(spec)
    else:
        controls.trained_preprocessed(spec, pre)


def baseline_grid(settings, dataset: str, variant: str, seed: int) -> list[tuple]:
    """(label, spec, preprocessing or None) of the baselines of the suppression: the plain and
    the k = 0-projected models, plain preprocessings (:class:`controls.Preprocess`) of the
    plain model, and the two defences with and without equal optimisation steps
    (:func:`controls.equal_steps`: capped at the steps the plain model actually took, so the
    plain model is trained, or loaded from the result cache, here)."""
    grid = {label: spec for label, _, spec in model_grid(settings, dataset, variant, seed)}
    base = grid[threats.PLAIN]
    plain = trained_defended(base, progress=False)[1]   # its record: images and steps taken
    n_plain = int(plain["n_train"])
    plain_steps = controls.realised_steps(plain, base.batch_size)
    out = [(threats.PLAIN, base, None), (BASELINE_REFERENCE, grid[BASELINE_REFERENCE], None),
           ("global mean-centring", base, controls.Preprocess("global mean-centring")),
           ("background thresholding", base,
            controls.Preprocess("background thresholding", settings.threshold_baseline))]
    for label in ("Gaussian-noise training", "adversarial training"):
        out.append((label, grid[label], None))
        out.append((f"{label}, equal steps",
                    controls.equal_steps(grid[label], plain_steps, n_plain), None))
    return out


def baseline_study(settings, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Score every model of :func:`baseline_grid` on chapter 3's attacked images, clean and
    under PGD from each classical surrogate at ``settings.reference_eps``; keep every
    per-image prediction. Returns ``predictions`` (dataset, variant, seed, model, condition,
    predicted, labels) and ``models`` (per model: training images, planned epochs, the step cap
    (0: none), and the epochs and optimiser steps it actually ran, from its training record)."""
    transfer_settings = settings.transfer_settings()
    names, _ = data.resolve(settings.datasets, fallbacks={"mnist": "mnist-5k"})
    eps = settings.reference_eps
    rows, models = [], []
    jobs = [(d, s, v) for d in names for s in range(settings.seed, settings.seed + settings.n_seeds)
            for v in settings.variants]
    for dataset, seed, variant in progress_bar(jobs, desc="baselines", disable=not progress):
        images, labels, adversarial = _adversarial_sets(transfer_settings, dataset, seed)
        sets = {f"pgd from {src}": adv for (src, attack, e), adv in adversarial.items()
                if attack == "pgd" and np.isclose(e, eps)}
        label_text = encode_classes(labels)
        for label, spec, pre in baseline_grid(settings, dataset, variant, seed):
            if pre is None:
                model, record = trained_defended(spec, progress=False)
                pipe = QuantumPipeline(model, spec.grid_filter())
            else:
                model, record = controls.trained_preprocessed(spec, pre)
                pipe = QuantumPipeline(model, pre)
            tag = {"dataset": dataset, "variant": variant, "seed": seed, "model": label}
            models.append({**tag, "n_train": record["n_train"], "epochs": spec.epochs,
                           "step cap": spec.max_steps, "epochs run": len(record["loss"]),
                           "steps": controls.realised_steps(record, spec.batch_size)})
            for condition, x in {"clean": images, **sets}.items():
                rows.append({**tag, "condition": condition, "predicted": encode_classes(
                    surrogates.predict_images(pipe, x)), "labels": label_text})
    return {"predictions": pd.DataFrame(rows), "models": pd.DataFrame(models)}


def _baseline_correct(pred: pd.DataFrame, model: str, conditions) -> np.ndarray:
    """(n_seeds, Σ images) correct under every one of ``conditions`` (pooled over datasets and
    variants, columns paired across models)."""
    blocks = []
    for (dataset, variant), part in pred[pred["model"] == model].groupby(
            ["dataset", "variant"], sort=False):
        ok = None
        for condition in conditions:
            rows = part[part["condition"] == condition].sort_values("seed")
            got = np.stack([decode_classes(p) == decode_classes(y)
                            for p, y in zip(rows["predicted"], rows["labels"])])
            ok = got if ok is None else ok & got
        blocks.append(ok)
    return np.concatenate(blocks, axis=1)


def baseline_table(results, n_resamples: int = 10_000) -> pd.DataFrame:
    """Per baseline, pooled over datasets and variants: clean accuracy and robust accuracy
    (correct under PGD from *every* classical surrogate), each with its 95 % CI, and the robust
    difference to per-ring centring (:data:`BASELINE_REFERENCE`) with its paired CI and the
    seed-level sign-flip p, Holm-corrected over the baselines (descriptive comparisons, not
    claims of the paper)."""
    pred = results["predictions"]
    attacks_ = sorted(c for c in pred["condition"].unique() if c != "clean")
    # robust = correct clean and under every attack (an image first wrong, then right by
    # chance under attack, is not robust), as in the threat study's envelope
    reference = _baseline_correct(pred, BASELINE_REFERENCE, ["clean", *attacks_])
    rows = []
    for model in dict.fromkeys(pred["model"]):
        clean = _baseline_correct(pred, model, ["clean"])
        robust = _baseline_correct(pred, model, ["clean", *attacks_])
        c_ci = stats.bootstrap_accuracy(clean, n_resamples=n_resamples)
        r_ci = stats.bootstrap_accuracy(robust, n_resamples=n_resamples)
        row = {"model": model, "clean": c_ci.estimate, "clean low": c_ci.low,
               "clean high": c_ci.high, "robust": r_ci.estimate, "robust low": r_ci.low,
               "robust high": r_ci.high}
        if model != BASELINE_REFERENCE:
            d = stats.bootstrap_difference(robust, reference, n_resamples=n_resamples)
            row.update({"robust − per-ring centring": d.estimate, "diff low": d.low,
                        "diff high": d.high, "p (seeds, raw)": threats.seed_pvalue(robust,
                                                                                  reference)})
        rows.append(row)
    table = pd.DataFrame(rows)
    tested = table["p (seeds, raw)"].notna()
    table.loc[tested, "p (Holm)"] = stats.holm(table.loc[tested, "p (seeds, raw)"])
    table.attrs["CI"] = c_ci.what
    return table
