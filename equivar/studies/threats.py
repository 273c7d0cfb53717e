"""Chapter 4's threat models: is a ring-mean-suppressed model more robust against an attacker
who knows it?

Five threat models, each an attacker who may try every attack of its family at every ε' ≤ ε
(an image counts as robust at ε only if no such attack fools the model):

* ``transfer``: chapter 3's FGSM and PGD crafted on the classical surrogates (weak transfer);
* ``transfer (strong)``: those, plus MI-FGSM, DI-FGSM and VMI-FGSM on the CNN surrogate, PGD on
  the ensemble of the surrogates (mean logits), and PGD on the ``ring`` surrogate, which sees
  the ring-sampled, mean-centred grid as a suppressed model does;
* ``white-box``: APGD-CE and APGD-DLR with restarts, then AutoAttack (standard), through the
  whole pipeline pixels → rings → the model's sector filter → circuit;
* ``adaptive``: white-box plus PGD restricted to perturbations that keep every ring mean (the
  budget spent on what a suppressed model still reads); for the reference defences, the same;
* ``black-box``: Square (score-based, needs only logits).

The expensive pieces are units of the sweep (cached): the crafted transfer sets per dataset and
seed (:func:`transfer_sets`), the white-box/adaptive/black-box evaluation of every model
(:func:`model_record`) and the convergence curves (:func:`convergence_record`). Scoring,
tables, verdicts (:mod:`equivar.stats`) and the generated conclusion live here; the study that
walks chapter 4's models is :func:`equivar.studies.robustness.threat_study`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict

import numpy as np
import pandas as pd

from equivar import data, stats
from equivar.adversary import attacks, checks
from equivar.adversary import threats as attackers
from equivar.adversary.defences import trained_defended
from equivar.cache import cached
from equivar.core.pipeline import QuantumPipeline
from equivar.learn import surrogates
from equivar.settings import SAMPLING
from equivar.studies import transfer

THREATS = ("transfer", "transfer (strong)", "white-box", "adaptive", "black-box")
# the stronger transfer attacks: (source, attack); "ensemble" is the mean of chapter 3's
# surrogates, "ring" the network on the ring-sampled, mean-centred grid
STRONG = (("cnn", "mifgsm"), ("cnn", "difgsm"), ("cnn", "vmifgsm"), ("ensemble", "pgd"),
          ("ring", "pgd"))
PLAIN, SUPPRESSED = "none", "k=0 × 0"
CLAIMS = {"transfer": "C4-transfer", "transfer (strong)": "C4-transfer-strong",
          "white-box": "C4-white-box", "adaptive": "C4-adaptive", "black-box": "C4-black-box"}
# stats.RULES judges one transfer claim; the strong transfer attacker gets the same rule
RULES = {**stats.RULES, "C4-transfer-strong": dataclasses.replace(
    stats.RULES["C4-transfer"], claim="C4-transfer-strong",
    description=stats.RULES["C4-transfer"].description.replace("transfer attack",
                                                                "strong transfer attack"),
    statistic=stats.RULES["C4-transfer"].statistic.replace("transfer", "strong transfer"))}


# ----------------------------------------------------------------- what is attacked, and how

def select(grid, alphas) -> list:
    """The models of chapter 4's grid (label, group, spec) that every threat model attacks: the
    unsuppressed model, the ring-mean sector down-weighted by each α in ``alphas``, and the
    reference defences."""
    keep = {PLAIN} | {f"k=0 × {a:g}" for a in alphas}
    return [(label, group, spec) for label, group, spec in grid
            if label in keep or group == "reference defence"]


def threat_images(settings, dataset: str):
    """The first ``settings.n_threat`` of chapter 3's attacked test images of ``dataset``."""
    images, labels = transfer.attacked_images(settings.transfer_settings(), dataset)
    return images[:settings.n_threat], labels[:settings.n_threat]


def epsilons(settings) -> tuple[float, ...]:
    """Every ε of the threat study: chapter 3's budgets and ``settings.large_epsilons``."""
    return tuple(sorted({float(e) for e in settings.transfer_settings().epsilons}
                        | {float(e) for e in settings.large_epsilons} | {0.0}))


def budget(settings, seed: int) -> attackers.Budget:
    """The attacker's budget of ``settings`` for the models of ``seed``."""
    return attackers.Budget(steps=settings.white_box_steps, restarts=settings.white_box_restarts,
                            square_queries=settings.square_queries, seed=seed)


def ring_surrogate(transfer_settings, dataset: str, seed: int) -> surrogates.SurrogateSpec:
    """The ``ring`` surrogate of ``seed`` (chapter 3's surrogate training settings)."""
    return surrogates.SurrogateSpec(dataset, "ring", seed, transfer_settings.surrogate_n_train,
                                    transfer_settings.surrogate_epochs)


def _source(transfer_settings, dataset: str, seed: int, source: str):
    """A classical source model of the strong transfer attacks and its identity."""
    if source == "ensemble":
        members, ids = [], []
        for kind in transfer_settings.surrogates:
            spec = surrogates.SurrogateSpec(dataset, kind, seed,
                                            transfer_settings.surrogate_n_train,
                                            transfer_settings.surrogate_epochs)
            members.append(surrogates.train_surrogate(spec)[0])
            ids.append(asdict(spec))
        return surrogates.Ensemble(members), {"ensemble": ids}
    spec = ring_surrogate(transfer_settings, dataset, seed) if source == "ring" else \
        surrogates.SurrogateSpec(dataset, source, seed, transfer_settings.surrogate_n_train,
                                 transfer_settings.surrogate_epochs)
    return surrogates.train_surrogate(spec)[0], asdict(spec)


def transfer_sets(settings, dataset: str, seed: int) -> dict:
    """Every transfer set of the threat study for the models of ``seed`` (cached crafting):
    ``{(threat, source, attack, eps): images}`` on :func:`threat_images`.

    ``transfer``: chapter 3's stored sets (its ε; their first ``n_threat`` images) and, at the
    large ε, the same attacks crafted on the threat images. ``transfer (strong)``: the attacks
    of :data:`STRONG` at every ε > 0 (PGD with chapter 3's iterations and step; MI-, DI- and
    VMI-FGSM with ``settings.transfer_iterations``).
    """
    ts = dataclasses.replace(settings.transfer_settings(), seed=seed, n_seeds=1)
    images, labels = threat_images(settings, dataset)
    out = {}
    for kind in ts.surrogates:
        for (attack, eps), adv in transfer.adversarial_sets(ts, dataset, seed, kind).items():
            if eps > 0:
                out[("transfer", kind, attack, float(eps))] = adv[:len(images)]
    large = [e for e in epsilons(settings) if e not in {float(v) for v in ts.epsilons}]
    for kind in ts.surrogates:
        model, source_id = _source(ts, dataset, seed, kind)
        for attack in ts.attacks:
            for eps in large:
                out[("transfer", kind, attack, eps)] = attacks.adversarial_set(
                    model, source_id, images, labels, attack, eps, ts.pgd_steps,
                    ts.pgd_step_factor, seed)
    for source, attack in STRONG:
        model, source_id = _source(ts, dataset, seed, source)
        steps = ts.pgd_steps if attack == "pgd" else settings.transfer_iterations
        for eps in epsilons(settings):
            if eps > 0:
                out[("transfer (strong)", source, attack, eps)] = attacks.adversarial_set(
                    model, source_id, images, labels, attack, eps, steps, ts.pgd_step_factor,
                    seed)
    return out


def _pipeline(spec) -> QuantumPipeline:
    model, _ = trained_defended(spec, progress=False)
    return QuantumPipeline(model, spec.grid_filter())


def model_record(settings, dataset: str, spec) -> dict[str, np.ndarray]:
    """White-box, ring-mean-restricted and black-box attacks on the model of ``spec`` (through
    its sector filter) over every ε (cached): :func:`equivar.adversary.threats.evaluate`."""
    images, labels = threat_images(settings, dataset)
    return attackers.cached_evaluation(_pipeline(spec), asdict(spec), images, labels,
                                       epsilons(settings), budget(settings, spec.seed),
                                       len(data.info(dataset).classes))


def convergence_epsilons(settings) -> tuple[float, ...]:
    """The ε of the step and restart curves: the smallest ε > 0 (where accuracy is far from 0,
    so a better attack would show) and the reference ε (where the verdicts are made)."""
    smallest = min(e for e in epsilons(settings) if e > 0)
    return tuple(sorted({smallest, float(settings.reference_eps)}))


def convergence_record(settings, dataset: str, spec) -> pd.DataFrame:
    """Accuracy versus PGD/APGD-CE iterations and restarts on the model of ``spec`` at each
    :func:`convergence_epsilons` (:func:`equivar.adversary.checks.convergence`, cached); one
    more restart than the white-box budget."""
    images, labels = threat_images(settings, dataset)
    eps_list = convergence_epsilons(settings)
    params = {"model": asdict(spec), "eps": list(eps_list),
              "steps": list(settings.convergence_steps),
              "restarts": settings.white_box_restarts + 1, "sampling": asdict(SAMPLING),
              "data": data.fingerprint(images, labels), "what": "convergence"}

    def compute():
        pipe = _pipeline(spec)
        curves = [checks.convergence(pipe, images, labels, eps, settings.convergence_steps,
                                     settings.white_box_restarts + 1, seed=spec.seed)
                  .assign(eps=eps) for eps in eps_list]
        return {"table": pd.concat(curves, ignore_index=True).to_dict("list")}

    result, _ = cached("threat", params, compute)
    return pd.DataFrame(result["table"])


# ----------------------------------------------------------------- scoring one model

def envelope(correct_by_eps: dict[float, np.ndarray], clean: np.ndarray,
             eps_list) -> np.ndarray:
    """(E, N) bool: correct when clean and under every set at every ε' ≤ ε.
    ``correct_by_eps[eps]``: (n_sets, N) bool correctness under the sets crafted at ``eps``."""
    alive = clean.copy()
    out = np.zeros((len(eps_list), len(clean)), dtype=bool)
    for e, eps in enumerate(eps_list):
        for row in correct_by_eps.get(float(eps), []):
            alive &= row
        out[e] = alive
    return out


def score(pipe, images, labels, sets: dict, record: dict, eps_list):
    """Per-image correctness (E, N) of one model under every threat model, and the accuracy of
    every single attack: (``{threat: array}``, rows of ``attack``, ``eps``, ``accuracy``).

    Clean correctness is the record's (row ε = 0 of every threat model), so that robust ⊆ clean
    holds for every family alike."""
    clean = np.asarray(record["clean"], dtype=bool)
    if clean.shape != (len(labels),):
        raise ValueError(f"the threat record holds {clean.shape[0]} images, not {len(labels)}")
    per_threat = {"transfer": {}, "transfer (strong)": {}}
    rows = []
    for (threat, source, attack, eps), adv in sets.items():
        ok = surrogates.predict_images(pipe, adv) == labels
        rows.append({"threat": threat, "attack": f"{attack} from {source}", "eps": eps,
                     "accuracy": float(ok.mean())})
        per_threat[threat].setdefault(float(eps), []).append(ok)
    # the strong transfer attacker may also use every weak transfer set
    for eps, found in per_threat["transfer"].items():
        per_threat["transfer (strong)"].setdefault(eps, []).extend(found)
    out = {t: envelope(per_threat[t], clean, eps_list) for t in ("transfer", "transfer (strong)")}
    out["white-box"] = record["white-box"]
    out["adaptive"] = record["white-box"] & record["restricted"]
    out["black-box"] = record["black-box"]
    for e, eps in enumerate(eps_list):
        for name, acc in zip(record["stage_names"], record["stages"][e]):
            rows.append({"threat": "white-box", "attack": str(name), "eps": float(eps),
                         "accuracy": float(acc)})
        rows.append({"threat": "adaptive", "attack": "ring-mean-preserving PGD (alone)",
                     "eps": float(eps), "accuracy": float(record["restricted"][e].mean())})
        rows.append({"threat": "black-box", "attack": "Square", "eps": float(eps),
                     "accuracy": float(record["black-box"][e].mean())})
    return out, rows


# ----------------------------------------------------------------- tables and verdicts

def correctness(results, dataset: str, variant: str, model: str, threat: str,
                eps: float) -> np.ndarray:
    """(n_seeds, n_images) correctness under ``threat`` at ``eps`` (ε = 0: clean)."""
    eps_list = list(results["epsilons"])
    matches = [i for i, e in enumerate(eps_list) if np.isclose(e, eps)]
    if not matches:
        raise ValueError(f"eps={eps!r} is not one of the study's {eps_list}")
    key = (dataset, variant, model, threat)
    if key not in results["correct"]:
        raise ValueError(f"no results for {key}")
    return results["correct"][key][:, matches[0]]


def curve_means(results) -> pd.DataFrame:
    """Accuracy per dataset, variant, model, group, threat and ε: mean and spread over seeds
    (columns ``mean``, ``std``: population standard deviation over seeds)."""
    c = results["curves"]
    keys = ["dataset", "variant", "model", "group", "threat", "eps"]
    return c.groupby(keys, sort=False)["accuracy"].agg(
        mean="mean", std=lambda v: v.std(ddof=0)).reset_index()


def at_eps(results, eps: float) -> pd.DataFrame:
    """Clean accuracy and accuracy under every threat model at ``eps`` per dataset, variant and
    model (mean over seeds), one column per threat model."""
    c = results["curves"]
    part = c[np.isclose(c["eps"], eps)]
    wide = part.pivot_table(index=["dataset", "variant", "model"], columns="threat",
                            values="accuracy", aggfunc="mean", sort=False)
    clean = results["clean"].groupby(["dataset", "variant", "model"], sort=False)[
        "accuracy"].mean().rename("clean")
    wide = wide[[t for t in THREATS if t in wide.columns]]
    return pd.concat([clean, wide], axis=1).reset_index()


def comparison(results, eps: float, n_resamples: int = 10_000) -> pd.DataFrame:
    """Every attacked model against the unsuppressed one, per dataset, variant and threat model
    at ``eps``: clean, robust accuracy and attack-induced drop (clean - robust) of both, with
    paired two-level bootstrap CIs (seeds × images) of the robust and drop differences, and the
    two-sided seed-level sign-flip p of the robust difference (raw)."""
    rows = []
    models = results["clean"].drop_duplicates(["model"])[["model", "group"]]
    for (dataset, variant), _ in results["clean"].groupby(["dataset", "variant"], sort=False):
        clean_plain = correctness(results, dataset, variant, PLAIN, "white-box", 0.0)
        for threat in THREATS:
            plain = correctness(results, dataset, variant, PLAIN, threat, eps)
            for model, group in models.itertuples(index=False):
                if model == PLAIN:
                    continue
                other = correctness(results, dataset, variant, model, threat, eps)
                clean_other = correctness(results, dataset, variant, model, "white-box", 0.0)
                robust_ci = stats.bootstrap_difference(other, plain, n_resamples=n_resamples)
                drop_ci = stats.bootstrap_difference(clean_other & ~other, clean_plain & ~plain,
                                                     n_resamples=n_resamples)
                p = seed_pvalue(other, plain)
                rows.append({"dataset": dataset, "variant": variant, "threat": threat,
                             "model": model, "group": group,
                             "clean none": clean_plain.mean(), "clean": clean_other.mean(),
                             "robust none": plain.mean(), "robust": other.mean(),
                             "robust change": robust_ci.estimate, "robust low": robust_ci.low,
                             "robust high": robust_ci.high,
                             "drop change": drop_ci.estimate, "drop low": drop_ci.low,
                             "drop high": drop_ci.high, "p (seeds, raw)": p,
                             "CI": robust_ci.what})
    return pd.DataFrame(rows)


def seed_pvalue(a, b) -> float:
    """Two-sided p of the seed-level sign-flip test (:func:`equivar.stats.permutation_test_seeds`);
    1 with a single seed, where no sign pattern can be flipped (scipy needs two)."""
    return 1.0 if np.shape(a)[0] < 2 else float(stats.permutation_test_seeds(a, b).pvalue)


def pooled(results, model: str, threat: str, eps: float) -> np.ndarray:
    """(n_seeds, Σ images) correctness of ``model`` under ``threat`` at ``eps``, the images of
    every dataset and variant side by side (columns pair across models; rows are seeds)."""
    parts = [correctness(results, d, v, model, threat, eps) for (d, v), _ in
             results["clean"].groupby(["dataset", "variant"], sort=False)]
    return np.concatenate(parts, axis=1)


def pooled_image_ids(results, model: str, threat: str, eps: float) -> np.ndarray:
    """One id per column of :func:`pooled`: the variants of one dataset are attacked on the
    same images, which the bootstrap must draw together."""
    return np.concatenate([[f"{d}/{j}" for j in range(correctness(results, d, v, model, threat,
                                                                  eps).shape[1])]
                           for (d, v), _ in results["clean"].groupby(["dataset", "variant"],
                                                                     sort=False)])


def verdicts(results, eps: float, n_resamples: int = 10_000) -> pd.DataFrame:
    """C4's verdict per threat model at ``eps`` (:data:`RULES`, one Holm family over the threat
    models): the statistic is accuracy(k = 0 projected out) - accuracy(unsuppressed), pooled
    over datasets and variants, paired over seeds × images (two-level bootstrap CI) with the
    seed-level sign-flip test; the change of the attack-induced drop is shown beside it."""
    found, rows = {}, []
    clean_s, clean_p = (pooled(results, m, "white-box", 0.0) for m in (SUPPRESSED, PLAIN))
    for threat in THREATS:
        a, b = pooled(results, SUPPRESSED, threat, eps), pooled(results, PLAIN, threat, eps)
        ids = pooled_image_ids(results, PLAIN, threat, eps)
        ci = stats.bootstrap_difference(a, b, n_resamples=n_resamples, image_ids=ids)
        drop = stats.bootstrap_difference(clean_s & ~a, clean_p & ~b, n_resamples=n_resamples,
                                          image_ids=ids)
        p = seed_pvalue(a, b)
        found[CLAIMS[threat]] = (ci, p)
        rows.append({"threat": threat, "claim": CLAIMS[threat], "robust none": b.mean(),
                     "robust k=0 removed": a.mean(), "change": ci.estimate, "low": ci.low,
                     "high": ci.high, "drop change": drop.estimate, "drop low": drop.low,
                     "drop high": drop.high, "p (seeds)": p, "CI": ci.what})
    judged = stats.judge_family(found, RULES)
    adjusted = stats.holm([found[c][1] for c in found])
    for row, p_holm in zip(rows, adjusted):
        row["p (Holm)"] = float(p_holm)
        row["verdict"] = str(judged[row["claim"]])
        row["why"] = stats.explain(RULES[row["claim"]], found[row["claim"]][0], float(p_holm))
    table = pd.DataFrame(rows)
    table.attrs["min p"] = stats.min_pvalue(int(clean_s.shape[0]))
    return table


def sanity(results, tol: float = 0.02) -> dict[str, pd.DataFrame]:
    """The checks of Carlini et al. on the study's curves (means over seeds): ``zero`` (every
    model and threat model reaches accuracy ≤ ``tol`` at some ε), ``zero per attack`` (the
    same for every single attack alone: each transfer set, each white-box stage, the
    ring-mean-preserving PGD, Square), ``dominance`` (white-box accuracy minus the lowest
    transfer/black-box accuracy, per model and ε; passes when ≤ ``tol``)."""
    means = curve_means(results).rename(columns={"mean": "accuracy"})
    keys = ["dataset", "variant", "model"]
    single = results["attacks"].groupby(keys + ["threat", "attack", "eps"], sort=False)[
        "accuracy"].mean().reset_index()
    return {"zero": checks.reaches_zero(means, keys + ["threat"], tol),
            "zero per attack": checks.reaches_zero(single, keys + ["threat", "attack"], tol),
            "dominance": checks.dominance(means, keys, tol=tol)}


def conclusion_markdown(table: pd.DataFrame, comparison_table: pd.DataFrame, eps: float,
                        settings) -> str:
    """The per-threat-model conclusion, generated from :func:`verdicts` and
    :func:`comparison` (the defences' drop changes are quoted from the latter)."""
    lines = []
    for _, row in table.iterrows():
        part = comparison_table[(comparison_table["threat"] == row["threat"])]
        defences = part[part["group"] == "reference defence"].groupby("model")["drop change"] \
            .mean()
        defence_text = "; ".join(f"{m}: {v:+.3f}" for m, v in defences.items())
        lines.append(
            f"- **{row['threat']}** ({row['claim']}): at ε = {eps}, projecting out the ring "
            f"means changes robust accuracy by {row['change']:+.3f} [{row['low']:+.3f}, "
            f"{row['high']:+.3f}] (from {row['robust none']:.3f}) and the attack-induced drop "
            f"by {row['drop change']:+.3f} [{row['drop low']:+.3f}, {row['drop high']:+.3f}]; "
            f"sign-flip p = {row['p (seeds)']:.3g}, Holm {row['p (Holm)']:.3g}: "
            f"**{row['verdict']}**. Drop change of the reference defences (mean over datasets "
            f"and variants): {defence_text}.")
    helped = set(table.loc[table["low"] > 0, "threat"])  # the CI of the change lies above 0
    significant = set(table.loc[table["verdict"].isin(["reproduced", "partly reproduced"]),
                                "threat"])
    knows = {"white-box", "adaptive", "black-box"}
    if helped and helped <= {"transfer", "transfer (strong)"}:
        plain = (f"**Suppression helps only against transfer** ({', '.join(sorted(helped))}: "
                 f"the CI of the change of robust accuracy lies above 0); against the attackers "
                 f"who query the model (white-box, adaptive, black-box) it does not.")
    elif helped & knows:
        plain = (f"Suppression raises robust accuracy (CI above 0) against "
                 f"{', '.join(sorted(helped))}, including attackers who query the model.")
    else:
        plain = ("Suppression raises robust accuracy against no threat model here (no CI of "
                 "the change lies above 0).")
    lines += ["", plain + f" Verdicts reproduced or partly reproduced: "
              f"{', '.join(sorted(significant)) or 'none'} (profile `{settings.profile}`, "
              f"{settings.n_seeds} seed(s); {stats.floor_note(settings.n_seeds, len(table))}). "
              f"CIs: {table['CI'].iloc[0]}."]
    return "\n".join(lines)


def restricted_residual(results) -> pd.DataFrame:
    """Largest ring-mean change left by the ring-mean-preserving PGD, per dataset and variant
    (max over models, seeds and ε; pixel units), next to the largest ε."""
    r = results["residual"]
    return r.groupby(["dataset", "variant"], sort=False)["residual"].max().reset_index()


def reference_check(settings, dataset: str, spec) -> dict[str, float]:
    """torchattacks' PGD against the hand-written reference on one quantum model at the
    reference ε (:func:`equivar.adversary.checks.reference_agreement`)."""
    images, labels = threat_images(settings, dataset)
    return checks.reference_agreement(_pipeline(spec), images, labels, settings.reference_eps,
                                      steps=settings.transfer_settings().pgd_steps,
                                      seed=spec.seed)


VERDICT_FIGURE = "fig-suppression-verdicts"


def scorecard_rows(table: pd.DataFrame, eps: float) -> list[dict]:
    """:func:`verdicts`' table as rows of the claims scorecard
    (:func:`equivar.studies.scorecard.write_verdicts`; Holm over the threat models as there)."""
    rows = []
    for _, r in table.iterrows():
        rule = RULES[r["claim"]]
        rows.append({"claim": r["claim"], "verdict": r["verdict"], "statistic": rule.statistic,
                     "estimate": r["change"], "low": r["low"], "high": r["high"],
                     "ci": r["CI"], "p_raw": r["p (seeds)"], "p_holm": r["p (Holm)"],
                     "rule": rule.description, "threshold": rule.threshold,
                     "direction": rule.direction, "kind": rule.kind,
                     "figure": VERDICT_FIGURE, "chapter": "04",
                     "scope": f"{r['threat']} attacker at ε = {eps:g}; pooled over datasets "
                              f"and invariant models", "why": r["why"]})
    return rows


def correctness_table(results) -> pd.DataFrame:
    """The threat study's per-image correctness as a table for the record: one row per
    dataset, variant, model, threat model, seed and ε, the images as a string of 0/1."""
    rows = []
    for (dataset, variant, model, threat), arr in results["correct"].items():
        for s, per_seed in enumerate(np.asarray(arr, dtype=bool)):
            for e, eps in enumerate(results["epsilons"]):
                rows.append({"dataset": dataset, "variant": variant, "model": model,
                             "threat": threat, "seed index": s, "eps": float(eps),
                             "correct": "".join("1" if v else "0" for v in per_seed[e])})
    return pd.DataFrame(rows)
