"""Chapter 5's study: what the paper leaves open.

Four questions, with the models, surrogates, attacks and functions of chapters 2-4:

1. **Rotations at any angle** (:func:`invariance_gap`, :func:`train_test_matrix`,
   :func:`rotated_reliance`, :func:`rotated_transfer`): the models are exactly invariant under
   C_8 only. How much do logits and predictions move between the multiples of 2π/8; what does
   training upright or on rotated data (``<name>+rot``) do to accuracy, ring-mean reliance and
   transfer attacks?
2. **Finer sampling** (:func:`grid_table`): chapter 2's capacity-ladder models (16 angles,
   per-ring offsets, more rings), scored for pixel coverage, reliance on k = 0 and transfer.
3. **Finite shots** (:func:`shot_study`): accuracy and chapter 2's per-sector margins with the
   readout estimated from S shots (:mod:`equivar.core.shots`).
4. **Noise** (:func:`commutation_table`, :func:`noise_study`): which channels commute with the
   rotation, and accuracy, reliance on k = 0 and the suppression gain versus the noise rate
   (:mod:`equivar.core.noise`).

Every rule that turns numbers into a sentence is a constant below, fixed before the run.
"""
from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import torch

from equivar import data, stats
from equivar.adversary import attacks
from equivar.core import noise, rings, sectors, shots
from equivar.core.model import amplitudes
from equivar.core.pipeline import QuantumPipeline
from equivar.data import rotated
from equivar.learn import surrogates
from equivar.learn.train import accuracy, predict, trained
from equivar.settings import SAMPLING, LadderSettings, VARIANT_LABELS
from equivar.studies import ladder, transfer
from equivar.studies.reliance import follow_rates, transform_accuracies
from equivar.studies.units import Unit, cached_rows, train_model, train_surrogate

QUANTUM = ("west", "sector", "baseline")
INVARIANT = ("west", "sector")
CLASSICAL = ("cnn", "cnn-rot")           # chapter 3's surrogates seen as classifiers
EXACT_TOL = 1e-10                        # "exact" invariance at multiples of 2π/8
RESOLVED_SHARE = 0.9                     # a sector ordering is "resolved" per image when the
                                         # top sector is identified in ≥ 90 % of images
ACCURACY_POINTS = 0.01                   # "as accurate as exact": within 1 point
N_RESAMPLES = 2000                       # bootstrap resamples of the paired image-level CIs
CONDITIONS = ("upright → upright", "upright → rotated", "rotated → rotated")
GRID_MAX_RINGS = 64                      # finer-sampling rungs scored here (the 10-qubit
                                         # rungs are scored by chapter 2: too slow here)


# ----------------------------------------------------------------------------- plumbing

def datasets(settings) -> tuple[list[str], dict]:
    """The upright datasets that can be loaded here (mnist → mnist-5k without network)."""
    return data.resolve(settings.datasets, fallbacks={"mnist": "mnist-5k"})


def rotated_name(dataset: str) -> str:
    """The package's rotated version of an upright dataset (``digits`` → ``digits+rot``)."""
    name = f"{dataset}{rotated.SUFFIX}"
    rotated.base_name(name)
    return name


def quantum_spec(settings, dataset: str, variant: str, train_rotated: bool = False):
    """Chapter 2's (selected) model of ``variant`` on ``dataset``; trained on the rotated
    dataset instead if ``train_rotated`` (same settings, another training set)."""
    spec = ladder.model_spec(settings.model_settings(), dataset, variant, settings.seed)
    return replace(spec, dataset=rotated_name(dataset)) if train_rotated else spec


def surrogate_spec(settings, dataset: str, kind: str) -> surrogates.SurrogateSpec:
    """Chapter 3's surrogate ``kind`` on ``dataset`` (upright or rotated name)."""
    ts = settings.transfer_settings()
    return surrogates.SurrogateSpec(dataset, kind, settings.seed, ts.surrogate_n_train,
                                    ts.surrogate_epochs)


def eval_images(settings, dataset: str, n: int | None = None):
    """``n`` (default ``n_eval``) test images of ``dataset`` drawn with the seed; for a
    rotated name the same images (same indices), each turned by its own angle."""
    n = settings.n_eval if n is None else n
    return data.load(dataset, "test", n=min(n, data.split_size(dataset, "test")),
                     seed=settings.seed)


def units(settings) -> list[Unit]:
    """The chapter's expensive work: the quantum models and the CNN trained on the rotated
    datasets, the α = 0 models and noisy evaluations of the noise study, and what it reuses
    from chapters 2-3 (the selection trials, the upright models, the upright surrogates, the
    CNN's adversarial sets, the ladder's finer-sampling rungs), so that ``equivar run open
    --workers N`` computes those on the workers too. Where the work is chapter 2's or 3's,
    the unit is that chapter's own (one key in a joint sweep); the α = 0 models are chapter
    4's cache entries under units of their own (a cache hit when chapter 4 ran first)."""
    names, _ = datasets(settings)
    upright = settings.model_settings()
    ladder_settings = LadderSettings.for_profile(settings.profile, seed=settings.seed)
    out = ladder.selection_units(LadderSettings.for_profile(settings.profile), names) \
        if upright.models == "selected" else []
    for name in names:
        for variant in QUANTUM:
            out.append(ladder.chapter_model_unit(upright, name, variant, upright.seed))
            out.append(Unit(2, f"rotated model {name}/{variant}", train_rotated_model,
                            (settings, name, variant)))
        for kind in CLASSICAL:
            out.append(Unit(0, f"surrogate {name}/{kind}", train_surrogate,
                            (surrogate_spec(settings, name, kind),)))
        out.append(Unit(0, f"surrogate {rotated_name(name)}/cnn", train_surrogate,
                        (surrogate_spec(settings, rotated_name(name), "cnn"),)))
        out.append(transfer.attack_unit(settings.transfer_settings(), name, settings.seed,
                                        "cnn"))
        if settings.grids and name in ladder.selection_datasets(ladder_settings)[0]:
            # the rungs' own selection (the same units as above unless the seed is overridden)
            out += ladder.selection_units(ladder_settings, [name])
            out += ladder.rung_units(ladder_settings, name, max_rings=GRID_MAX_RINGS)
    for variant in INVARIANT:
        out.append(Unit(2, f"k=0-projected model {names[0]}/{variant}",
                        train_projected_model, (settings, names[0], variant)))
        out.append(Unit(3, f"noise {names[0]}/{variant}", noise_rows, (settings, variant)))
    return out


def projected_spec(settings, dataset: str, variant: str):
    """Chapter 4's α = 0 model: :func:`quantum_spec` with the ring-mean sector projected out."""
    return replace(quantum_spec(settings, dataset, variant), suppress_k=0, suppress_alpha=0.0)


def train_projected_model(settings, dataset: str, variant: str) -> None:
    """Train (or find cached) :func:`projected_spec`, resolved in the sweep's worker."""
    train_model(projected_spec(settings, dataset, variant))


def train_rotated_model(settings, dataset: str, variant: str) -> None:
    """Train (or find cached) the model of ``variant`` trained on the rotated ``dataset``; its
    spec is resolved here, in the sweep's worker, after the model selection it depends on."""
    train_model(quantum_spec(settings, dataset, variant, train_rotated=True))


# ----------------------------------------------------------------------------- 1. rotations

def sample_turned(images, angle: float, sampling=SAMPLING) -> np.ndarray:
    """Ring grids (n, R, N) of ``images`` (n, H, W) turned counter-clockwise by ``angle``
    (radians): the bilinear interpolant of each image, turned exactly, read at the ring points
    (equivalently, the image read at the ring points turned back by -angle). At
    ``angle = 2πm/N`` this is ``rings.rotate(sample_grid(images), m)`` to rounding."""
    x = np.asarray(images, dtype=np.float64)
    height, width = x.shape[1:]
    rows, cols = rings.grid(sampling.n_rings, sampling.n_angles, height, width,
                            sampling.ring_offset)
    cy, cx = (height - 1) / 2, (width - 1) / 2
    dy, dx = cy - rows, cols - cx
    cos, sin = np.cos(angle), np.sin(angle)
    src_rows = cy - (-sin * dx + cos * dy)
    src_cols = cx + (cos * dx + sin * dy)
    shape = (len(x),) + rows.shape
    return rotated.bilinear_at(x, np.broadcast_to(src_rows, shape),
                               np.broadcast_to(src_cols, shape))


def gap_angles(settings) -> np.ndarray:
    """The angles of the invariance-gap curve: 2π i / (gap_angles - 1), i = 0..gap_angles-1."""
    n = settings.gap_angles - 1
    return 2 * np.pi * np.arange(n + 1) / n


def _logits(model, states) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(states)).numpy()


def _classifier_logits(model, images) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(images, dtype=np.float32))).double().numpy()


def invariance_gap(settings, progress: bool = False) -> pd.DataFrame:
    """Per dataset, model, kind of rotation and angle: the mean (over test images) and largest
    change of the logits (max over classes of |Δ logit|) and the share of changed predictions,
    against the upright image.

    Rotations: ``"ring grid"``: the exact rotation of each image's bilinear interpolant, read
    at the ring points (:func:`sample_turned`; quantum models only); ``"pixels"``: the image
    resampled on its pixel grid (:func:`equivar.data.rotated.rotate_images`), as a rotated
    dataset is made. Models: the three quantum variants and chapter 3's CNN and rotation-
    trained CNN, all trained upright.
    """
    names, _ = datasets(settings)
    rows = []
    for name in names:
        images, _ = eval_images(settings, name)
        models = {v: trained(quantum_spec(settings, name, v), progress=progress)[0]
                  for v in QUANTUM}
        classical = {k: surrogates.train_surrogate(surrogate_spec(settings, name, k))[0]
                     for k in CLASSICAL}
        base_grid = amplitudes(rings.sample_grid(images))
        base = {v: _logits(m, base_grid) for v, m in models.items()}
        pipes = {v: QuantumPipeline(m) for v, m in models.items()}
        base_pix = {**{v: _classifier_logits(p, images) for v, p in pipes.items()},
                    **{k: _classifier_logits(m, images) for k, m in classical.items()}}
        for angle in gap_angles(settings):
            turned = amplitudes(sample_turned(images, angle))
            for variant, model in models.items():
                rows.append(_gap_row(name, variant, "ring grid", angle, base[variant],
                                     _logits(model, turned)))
            pixels = rotated.rotate_images(images, angle)
            for key, clf in {**pipes, **classical}.items():
                rows.append(_gap_row(name, key, "pixels", angle, base_pix[key],
                                     _classifier_logits(clf, pixels)))
    return pd.DataFrame(rows)


def _gap_row(dataset, model, rotation, angle, before, after) -> dict:
    change = np.abs(after - before).max(1)
    return {"dataset": dataset, "model": model, "rotation": rotation, "angle": float(angle),
            "degrees": float(np.degrees(angle)), "logit_change": float(change.mean()),
            "logit_change_max": float(change.max()),
            "prediction_change": float((after.argmax(1) != before.argmax(1)).mean())}


def exactness(gap: pd.DataFrame, n_angles: int = SAMPLING.n_angles) -> pd.DataFrame:
    """Per dataset and quantum model: the largest logit change at the multiples of 2π/N
    (ring-grid rotation) and between them, whether the former is below :data:`EXACT_TOL`, and
    the largest change at the quarter turns of the *pixel* rotation (exact too: a quarter turn
    of the pixels is a cyclic shift of the ring samples by N/4)."""
    part = gap[gap["rotation"] == "ring grid"].copy()
    steps = part["angle"] / (2 * np.pi / n_angles)
    part["on_group"] = np.isclose(steps, np.round(steps), atol=1e-9)
    out = part.groupby(["dataset", "model"], sort=False).apply(
        lambda g: pd.Series({"max on C_N": g.loc[g["on_group"], "logit_change_max"].max(),
                             "max between": g.loc[~g["on_group"], "logit_change_max"].max(),
                             "mean between": g.loc[~g["on_group"], "logit_change"].mean(),
                             "prediction change between": g.loc[~g["on_group"],
                                                                "prediction_change"].mean()}),
        include_groups=False).reset_index()
    out["exact on C_N"] = out["max on C_N"] <= EXACT_TOL
    pixels = gap[(gap["rotation"] == "pixels")].copy()
    quarters = pixels["angle"] / (np.pi / 2)
    pixels = pixels[np.isclose(quarters, np.round(quarters), atol=1e-9)]
    on_quarters = pixels.groupby(["dataset", "model"])["logit_change_max"].max()
    out["max on quarter turns (pixels)"] = [on_quarters.get((d, m), np.nan)
                                            for d, m in zip(out["dataset"], out["model"])]
    return out


def _quantum_accuracy(model, images, labels, sampling=SAMPLING) -> float:
    return accuracy(model, amplitudes(rings.sample_grid(images, sampling)), labels)


def train_test_matrix(settings, progress: bool = False) -> pd.DataFrame:
    """Accuracy of every model trained upright or on the rotated dataset, tested upright or on
    the rotated test images (the same images, turned): one row per dataset, model, training
    data and test data. Classical rows: chapter 3's CNN (upright), the CNN trained on the
    rotated data, and chapter 3's rotation-augmented CNN (``cnn-rot``)."""
    names, _ = datasets(settings)
    rows = []
    for name in names:
        tests = {"upright": eval_images(settings, name), "rotated": eval_images(settings,
                                                                          rotated_name(name))}
        for variant in QUANTUM:
            for train in ("upright", "rotated"):
                model, _ = trained(quantum_spec(settings, name, variant, train == "rotated"),
                                   progress=progress)
                for test, (x, y) in tests.items():
                    rows.append({"dataset": name, "model": variant, "train": train,
                                 "test": test, "accuracy": _quantum_accuracy(model, x, y)})
        classical = {("cnn", "upright"): surrogate_spec(settings, name, "cnn"),
                     ("cnn", "rotated"): surrogate_spec(settings, rotated_name(name), "cnn"),
                     ("cnn", "upright + random rotations"): surrogate_spec(settings, name,
                                                                            "cnn-rot")}
        for (kind, train), spec in classical.items():
            clf, _ = surrogates.train_surrogate(spec)
            for test, (x, y) in tests.items():
                pred = surrogates.predict_images(clf, x)
                rows.append({"dataset": name, "model": kind, "train": train, "test": test,
                             "accuracy": float((pred == y).mean())})
    return pd.DataFrame(rows)


def _quantum_correct(model, images, labels, sampling=SAMPLING) -> np.ndarray:
    states = amplitudes(rings.sample_grid(images, sampling))
    return (predict(model, states) == np.asarray(labels)).astype(float)


def _paired(a, b, seed) -> dict:
    """Accuracy difference a − b on the same images (one seed): the estimate, a 95 % paired
    bootstrap CI over images and McNemar's exact p (:mod:`equivar.stats`)."""
    ci = stats.bootstrap_difference(a[None], b[None], n_resamples=N_RESAMPLES, rng=seed)
    return {"difference": ci.estimate, "low": ci.low, "high": ci.high,
            "p (McNemar)": stats.mcnemar_exact(a, b).pvalue}


def rotation_effects(settings, progress: bool = False) -> pd.DataFrame:
    """The two comparisons of the classic test, per dataset and model, paired on the same test
    images: (a) trained upright, tested rotated − tested upright (what rotation costs);
    (b) tested rotated, trained rotated − trained upright (what training on rotations buys).
    Columns: dataset, model, comparison, difference, low, high (95 % CI), p (McNemar)."""
    names, _ = datasets(settings)
    rows = []
    for name in names:
        x, y = eval_images(settings, name)
        xr, yr = eval_images(settings, rotated_name(name))
        correct = {}
        for variant in QUANTUM:
            for train in ("upright", "rotated"):
                model, _ = trained(quantum_spec(settings, name, variant, train == "rotated"),
                                   progress=progress)
                correct[variant, train, "upright"] = _quantum_correct(model, x, y)
                correct[variant, train, "rotated"] = _quantum_correct(model, xr, yr)
        for train, dataset in (("upright", name), ("rotated", rotated_name(name))):
            clf, _ = surrogates.train_surrogate(surrogate_spec(settings, dataset, "cnn"))
            for test, (xx, yy) in (("upright", (x, y)), ("rotated", (xr, yr))):
                correct["cnn", train, test] = (surrogates.predict_images(clf, xx) == yy) \
                    .astype(float)
        for model in QUANTUM + ("cnn",):
            rows.append({"dataset": name, "model": model,
                         "comparison": "trained upright: rotated − upright test",
                         **_paired(correct[model, "upright", "rotated"],
                                   correct[model, "upright", "upright"], settings.seed)})
            rows.append({"dataset": name, "model": model,
                         "comparison": "rotated test: trained rotated − trained upright",
                         **_paired(correct[model, "rotated", "rotated"],
                                   correct[model, "upright", "rotated"], settings.seed)})
    return pd.DataFrame(rows)


def rotated_reliance(settings, progress: bool = False) -> pd.DataFrame:
    """Chapter 2's ring-mean reliance (targeted transformations and the k = 0 sector swap,
    :mod:`equivar.studies.reliance`) of the invariant models in three conditions
    (:data:`CONDITIONS`: training data → test data). Columns: dataset, variant, condition,
    clean, ring means only, ring means removed, sufficiency, necessity, follows_k0,
    follows_best_other (definitions of chapter 2)."""
    names, _ = datasets(settings)
    n_pairs = settings.model_settings().n_pairs
    rows = []
    for name in names:
        chance = 1 / len(data.info(name).classes)
        tests = {"upright": eval_images(settings, name), "rotated": eval_images(settings,
                                                                          rotated_name(name))}
        for variant in INVARIANT:
            for condition in CONDITIONS:
                train, test = condition.split(" → ")
                model, _ = trained(quantum_spec(settings, name, variant, train == "rotated"),
                                   progress=progress)
                x, y = tests[test]
                grids = rings.sample_grid(x)
                acc = transform_accuracies(model, grids, y, settings.seed)
                follow = follow_rates(model, grids, y, n_pairs, settings.seed)
                gain = acc["none"] - chance
                ok = gain >= 0.05  # ratios are undefined near chance (chapter 2's rule)
                rows.append({
                    "dataset": name, "variant": variant, "condition": condition,
                    "clean": acc["none"], "ring means only": acc["ring means only"],
                    "ring means removed": acc["ring means removed"],
                    "sufficiency": (acc["ring means only"] - chance) / gain if ok else np.nan,
                    "necessity": (acc["none"] - acc["ring means removed"]) / gain if ok
                    else np.nan,
                    "follows_k0": float(follow.loc[follow["k"] == 0, "follows_b"].iloc[0]),
                    "follows_best_other": float(follow.loc[follow["k"] > 0, "follows_b"].max())})
    return pd.DataFrame(rows)


def _adversarial(settings, dataset: str, kind: str = "cnn"):
    """Chapter 3's attacked test images of ``dataset`` and the PGD set crafted on the CNN
    surrogate trained on the same data, at the reference ε (the very cache entry chapter 3
    stores for upright data): (images, labels, adversarial images)."""
    ts = settings.transfer_settings()
    images, labels = transfer.attacked_images(ts, dataset)
    spec = surrogate_spec(settings, dataset, kind)
    source, _ = surrogates.train_surrogate(spec)
    adv = attacks.adversarial_set(source, asdict(spec), images, labels, "pgd",
                                  settings.reference_eps, ts.pgd_steps, ts.pgd_step_factor,
                                  settings.seed)
    return images, labels, adv


def rotated_transfer(settings, progress: bool = False) -> pd.DataFrame:
    """PGD at the reference ε crafted on the CNN trained on the same data as the targets:
    upright (chapter 3's setting) and rotated (CNN and quantum models trained on the rotated
    dataset, attacked rotated test images). Per dataset, condition and target: clean accuracy,
    accuracy under the transferred attack and under its k = 0 part alone (on the ring grid)."""
    names, _ = datasets(settings)
    rows = []
    for name in names:
        for condition, dataset in (("upright", name), ("rotated", rotated_name(name))):
            images, labels, adv = _adversarial(settings, dataset)
            k0_part = attacks.restricted(images, adv, [0])
            for variant in QUANTUM:
                model, _ = trained(quantum_spec(settings, name, variant, condition == "rotated"),
                                   progress=progress)
                rows.append({"dataset": name, "condition": condition, "target": variant,
                             "clean": _quantum_accuracy(model, images, labels),
                             "attacked": _quantum_accuracy(model, adv, labels),
                             "k=0 part only": accuracy(model, amplitudes(k0_part), labels)})
            cnn, _ = surrogates.train_surrogate(surrogate_spec(settings, dataset, "cnn"))
            rows.append({"dataset": name, "condition": condition, "target": "cnn (source)",
                         "clean": float((surrogates.predict_images(cnn, images) == labels).mean()),
                         "attacked": float((surrogates.predict_images(cnn, adv) == labels).mean()),
                         "k=0 part only": np.nan})
    out = pd.DataFrame(rows)
    out["drop"] = out["clean"] - out["attacked"]
    return out


# ----------------------------------------------------------------------------- 2. grids

def grid_table(settings, progress: bool = False) -> pd.DataFrame:
    """Chapter 2's capacity-ladder quantum models (:func:`equivar.studies.ladder.rungs`: the
    selected 16×8 grid, deeper, more rings, 16 angles, per-ring offsets) on the datasets both
    chapters use, each scored on the chapter's test images: pixels read, clean accuracy, accuracy with the ring means removed
    (necessity of k = 0) and under chapter 3's transferred PGD at the reference ε."""
    ladder_settings = LadderSettings.for_profile(settings.profile, seed=settings.seed)
    ours, _ = datasets(settings)
    names = [n for n in ladder.selection_datasets(ladder_settings)[0] if n in ours]
    rows = []
    for name in names:
        h, w = data.info(name).image_shape
        chance = 1 / len(data.info(name).classes)
        x, y = eval_images(settings, name)
        images, labels, adv = _adversarial(settings, name)
        for label, spec in ladder.rungs(ladder_settings, name):
            if spec.n_rings > GRID_MAX_RINGS:
                continue
            model, _ = trained(spec, progress=progress)
            sampling = spec.sampling()
            grids = rings.sample_grid(x, sampling)
            filt = spec.grid_filter()
            clean = accuracy(model, filt.states(grids), y)
            removed = accuracy(model, filt.states(sectors.keep_sectors(
                grids, range(1, grids.shape[-1]))), y)
            gain = clean - chance
            rows.append({"dataset": name, "rung": label, "variant": spec.variant,
                         "n_rings": spec.n_rings, "n_angles": spec.n_angles,
                         "ring_offset": spec.ring_offset, "n_layers": spec.n_layers,
                         "pixels_read": ladder.pixel_coverage(spec.n_rings, spec.n_angles, h, w,
                                                              spec.ring_offset),
                         "clean": clean, "ring means removed": removed,
                         "necessity": (clean - removed) / gain if gain >= 0.05 else np.nan,
                         "robust_clean": accuracy(model, filt.states(
                             rings.sample_grid(images, sampling)), labels),
                         "robust": accuracy(model, filt.states(rings.sample_grid(adv, sampling)),
                                            labels)})
    out = pd.DataFrame(rows)
    if len(out):
        out["drop"] = out["robust_clean"] - out["robust"]
    return out


# ----------------------------------------------------------------------------- 3. shots

def shot_study(settings, progress: bool = False) -> dict[str, pd.DataFrame]:
    """Accuracy and per-sector margins with S shots, for every dataset and invariant model
    (the baseline for accuracy too). Returns ``accuracy`` (dataset, model, data, shots, accuracy;
    shots 0 = exact; data: clean, ring means removed (for the necessity of k = 0), transferred
    PGD) and ``margins`` (dataset, variant, shots, per-image identification rate of
    the top sector, the shot standard error of the mean margins, and whether the ordering of
    the two largest mean margins is resolved)."""
    names, _ = datasets(settings)
    acc_rows, margin_rows, mean_rows = [], [], []
    for name in names:
        x, y = eval_images(settings, name)
        images, labels, adv = _adversarial(settings, name)
        clean_grids = rings.sample_grid(x)
        sets = {"clean": (amplitudes(clean_grids), y),
                "ring means removed": (amplitudes(sectors.keep_sectors(
                    clean_grids, range(1, clean_grids.shape[-1]))), y),
                "transferred PGD": (amplitudes(rings.sample_grid(adv)), labels)}
        for variant in QUANTUM:
            model, _ = trained(quantum_spec(settings, name, variant), progress=progress)
            for what, (states, labs) in sets.items():
                acc_rows.append({"dataset": name, "model": variant, "data": what, "shots": 0,
                                 "accuracy": shots.shot_accuracy(model, states, labs, None, 0)})
                for s in settings.shots:
                    acc_rows.append({"dataset": name, "model": variant, "data": what,
                                     "shots": s, "accuracy": shots.shot_accuracy(
                                         model, states, labs, s, [settings.seed, s])})
            if variant not in INVARIANT:
                continue
            grids = rings.sample_grid(x)
            exact = shots.sector_contributions(model, grids)
            exact_m, order = shots.margin_contributions(exact)
            top = exact_m.argmax(1)
            means = exact_m.mean(0)
            first, second = np.argsort(-means)[:2]
            for k, value in enumerate(means):
                mean_rows.append({"dataset": name, "variant": variant, "k": k, "shots": 0,
                                  "margin": float(value), "se": 0.0})
            for s in settings.shots:
                est = shots.sector_contributions(model, grids, s, [settings.seed, s])
                est_m, _ = shots.margin_contributions(est, order)
                error = est_m - exact_m            # shot noise only (same images)
                se = error.std(0, ddof=1) / np.sqrt(len(error))
                diff_se = (error[:, first] - error[:, second]).std(ddof=1) / np.sqrt(len(error))
                est_means = est_m.mean(0)
                for k, value in enumerate(est_means):
                    mean_rows.append({"dataset": name, "variant": variant, "k": k, "shots": s,
                                      "margin": float(value), "se": float(se[k])})
                margin_rows.append({
                    "dataset": name, "variant": variant, "shots": s,
                    "shots per image": s * exact.shape[-1],
                    "top sector identified": float((est_m.argmax(1) == top).mean()),
                    "top mean sector": int(first), "second mean sector": int(second),
                    "mean gap": float(means[first] - means[second]),
                    "gap shot se": float(diff_se),
                    "ordering resolved": bool(np.argsort(-est_means)[0] == first
                                              and means[first] - means[second] > 2 * diff_se)})
    return {"accuracy": pd.DataFrame(acc_rows), "margins": pd.DataFrame(margin_rows),
            "means": pd.DataFrame(mean_rows)}


def shot_necessity(result: dict[str, pd.DataFrame], n_classes: dict[str, int]) -> pd.DataFrame:
    """Necessity of the ring means (chapter 2's definition) versus shots, per dataset and model:
    (clean − ring means removed) / (clean − chance), NaN within 5 points of chance."""
    acc = result["accuracy"].pivot_table(index=["dataset", "model", "shots"], columns="data",
                                         values="accuracy").reset_index()
    chance = acc["dataset"].map(lambda d: 1 / n_classes[d])
    gain = (acc["clean"] - chance).where(acc["clean"] - chance >= 0.05)
    acc["necessity"] = (acc["clean"] - acc["ring means removed"]) / gain
    return acc[["dataset", "model", "shots", "clean", "ring means removed", "necessity"]]


def shots_needed(result: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per dataset and model, the fewest shots at which clean accuracy is within
    :data:`ACCURACY_POINTS` of exact, the per-image top sector is identified in at least
    :data:`RESOLVED_SHARE` of images, and the mean-margin ordering is resolved (NaN: not within
    the shots tried)."""
    acc = result["accuracy"]
    acc = acc[acc["data"] == "clean"]
    rows = []
    for (dataset, model), part in acc.groupby(["dataset", "model"], sort=False):
        exact = part.loc[part["shots"] == 0, "accuracy"].iloc[0]
        sampled = part[part["shots"] > 0].sort_values("shots")
        close = sampled[(sampled["accuracy"] - exact).abs() <= ACCURACY_POINTS]["shots"]
        row = {"dataset": dataset, "model": model, "exact accuracy": exact,
               "shots for accuracy": _first_stable(sampled["shots"], close)}
        m = result["margins"]
        m = m[(m["dataset"] == dataset) & (m["variant"] == model)].sort_values("shots")
        if len(m):
            ok = m[m["top sector identified"] >= RESOLVED_SHARE]["shots"]
            row["shots for per-image top sector"] = _first_stable(m["shots"], ok)
            row["shots for mean ordering"] = _first_stable(m["shots"],
                                                           m[m["ordering resolved"]]["shots"])
        rows.append(row)
    return pd.DataFrame(rows)


def _first_stable(all_shots, good_shots) -> float:
    """The fewest shots from which every larger count tried is also good (NaN if none)."""
    good = set(good_shots)
    for s in sorted(all_shots):
        if all(t in good for t in all_shots if t >= s):
            return float(s)
    return float("nan")


# ----------------------------------------------------------------------------- 4. noise

def noise_models(settings) -> list[tuple[str, float, noise.NoiseModel]]:
    """(label, rate, noise model) of the noise sweep: depolarizing and amplitude damping after
    every layer on every qubit, and readout error, at each rate."""
    out = [("none", 0.0, noise.NOISELESS)]
    for rate in settings.noise_rates:
        out.append(("depolarizing", rate, noise.NoiseModel("depolarizing", rate)))
        out.append(("amplitude damping", rate, noise.NoiseModel("amplitude_damping", rate)))
        out.append(("readout error", rate, noise.NoiseModel(readout_error=rate)))
    return out


def commutation_table(settings, rate: float = 1e-2, n_states: int = 8,
                      progress: bool = False) -> pd.DataFrame:
    """Per channel and placement (after the layers, on the input, inside the transform) and
    wires (the angular register, where the rotation acts; or the radial one): the channel's
    distance from commuting with the rotation (:func:`equivar.core.noise.rotation_commutator`;
    angular wires after the layers or on the input; NaN inside the transform) and the largest
    change of the trained invariant models' readout under C_8 with that noise, on a few test
    images of the first dataset."""
    names, _ = datasets(settings)
    x, _ = eval_images(settings, names[0], n_states)
    states = torch.as_tensor(amplitudes(rings.sample_grid(x)))
    models = {v: trained(quantum_spec(settings, names[0], v), progress=progress)[0]
              for v in INVARIANT}
    rows = []
    for channel in noise.CHANNELS:
        for placement in noise.PLACEMENTS:
            for wires in ("angular", "radial"):
                nm = noise.NoiseModel(channel, rate, placement, wires)
                if wires == "radial":
                    commutator = 0.0          # the rotation acts on the angular wires only
                elif placement == "transform":
                    commutator = np.nan       # no single form of the rotation mid-transform
                else:
                    commutator = noise.rotation_commutator(
                        channel, rate, placement, SAMPLING.n_angles.bit_length() - 1)
                row = {"channel": channel, "placement": placement, "wires": wires,
                       "rate": rate, "commutator": commutator}
                for variant, model in models.items():
                    cfg = model.config
                    grid = states.reshape(-1, cfg.n_rings, cfg.n_angles)
                    # every element of C_N at once: (N·n, D), m = 0 first
                    turned = torch.cat([rings.rotate(grid, m) for m in range(cfg.n_angles)])
                    out = noise.noisy_readout(turned.reshape(-1, states.shape[1]),
                                              model.weights, cfg, nm)
                    out = out.reshape(cfg.n_angles, len(states), -1)
                    row[f"invariance deviation ({variant})"] = float((out - out[0]).abs().max())
                rows.append(row)
    return pd.DataFrame(rows)


def _noisy_correct(model, states, labels, nm) -> np.ndarray:
    """Per-image correctness (float 0/1) of ``model`` on ``states`` under noise ``nm``."""
    if nm is noise.NOISELESS:
        pred = predict(model, states)
    else:
        pred = noise.noisy_readout(torch.as_tensor(states), model.weights, model.config,
                                   nm).argmax(1).numpy()
    return (pred == np.asarray(labels)).astype(float)


def noise_study(settings, progress: bool = False) -> pd.DataFrame:
    """On the first dataset, for both invariant models, unsuppressed and with the ring-mean
    sector projected out (chapter 4's α = 0 model): accuracy on clean test images, with the
    ring means removed, and under chapter 3's transferred PGD, for every noise model of
    :func:`noise_models` (the first ``n_noise`` of chapter 3's attacked images). Adds the
    necessity of k = 0 and the suppression gain (robust accuracy of α = 0 minus unsuppressed)."""
    return pd.DataFrame([row for variant in INVARIANT
                         for row in noise_rows(settings, variant, progress)])


def noise_rows(settings, variant: str, progress: bool = False) -> list[dict]:
    """The rows of :func:`noise_study` for one invariant model (a sweep unit), cached under
    the settings and the images scored."""
    name = datasets(settings)[0][0]
    images, labels, adv = (a[:settings.n_noise] for a in _adversarial(settings, name))
    # keyed by what the rows are computed from: the two models' specs (their training and
    # selection settings live in other chapters' profiles) and the clean and attacked images
    specs = quantum_spec(settings, name, variant), projected_spec(settings, name, variant)
    params = {"settings": asdict(settings), "variant": variant,
              "models": [asdict(spec) for spec in specs],
              "data": data.fingerprint(images, labels),
              "attacked": data.fingerprint(adv, labels)}
    return cached_rows("noise", params, lambda: {"rows": _noise_rows(
        settings, name, variant, specs, images, labels, adv, progress)})["rows"]


def _noise_rows(settings, name, variant, specs, images, labels, adv, progress) -> list[dict]:
    chance = 1 / len(data.info(name).classes)
    grids, adv_grids = rings.sample_grid(images), rings.sample_grid(adv)
    removed = sectors.keep_sectors(grids, range(1, grids.shape[-1]))
    none, _ = trained(specs[0], progress=progress)
    suppressed, _ = trained(specs[1], progress=progress)
    project = specs[1].grid_filter()
    inputs = {"clean": amplitudes(grids), "removed": amplitudes(removed),
              "attacked": amplitudes(adv_grids), "clean α=0": project.states(grids),
              "attacked α=0": project.states(adv_grids)}
    rows = []
    for label, rate, nm in noise_models(settings):
        correct = {key: _noisy_correct(suppressed if "α=0" in key else none, value, labels, nm)
                   for key, value in inputs.items()}
        acc = {key: float(value.mean()) for key, value in correct.items()}
        ci = stats.bootstrap_difference(correct["attacked α=0"][None], correct["attacked"][None],
                                        n_resamples=N_RESAMPLES, rng=settings.seed)
        gain = acc["clean"] - chance
        rows.append({"dataset": name, "variant": variant, "noise": label, "rate": rate,
                     "clean": acc["clean"], "ring means removed": acc["removed"],
                     "necessity": (acc["clean"] - acc["removed"]) / gain if gain >= 0.05
                     else np.nan,
                     "robust": acc["attacked"], "clean (k=0 projected out)": acc["clean α=0"],
                     "robust (k=0 projected out)": acc["attacked α=0"],
                     "suppression gain": acc["attacked α=0"] - acc["attacked"],
                     "gain low": ci.low, "gain high": ci.high})
    return rows


# ----------------------------------------------------------------------------- the chapter

def study(settings, progress: bool = False) -> dict[str, pd.DataFrame]:
    """Everything chapter 5 shows, for :class:`equivar.settings.OpenSettings`, with the
    seconds each part took (``cost``)."""
    import time

    out, cost = {}, []
    parts = [("gap", invariance_gap), ("matrix", train_test_matrix),
             ("effects", rotation_effects), ("reliance", rotated_reliance),
             ("transfer", rotated_transfer)]
    if settings.grids:
        parts.append(("grids", grid_table))
    parts += [("shots", shot_study), ("commutation", commutation_table),
              ("noise", noise_study)]
    for key, fn in parts:
        start = time.perf_counter()
        out[key] = fn(settings, progress=progress)
        cost.append({"part": key, "seconds": time.perf_counter() - start})
    names, notes = datasets(settings)
    out["notes"] = pd.DataFrame([{"dataset": k, "note": v} for k, v in notes.items()],
                                columns=["dataset", "note"])
    out["cost"] = pd.DataFrame(cost)
    return out


def _pct(value) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.0%}"


def _shots(value) -> str:
    return "not within the shots tried" if not np.isfinite(value) else f"S = {value:,.0f}"


def _effects_sentence(effects) -> str:
    """The paired rotation effects (:func:`rotation_effects`) as one sentence, or ''."""
    if effects is None or not len(effects):
        return ""
    parts = []
    for comparison, lead in (("trained upright: rotated − upright test",
                              "Rotating the test images changes accuracy (trained upright) by"),
                             ("rotated test: trained rotated − trained upright",
                              "training on rotated images changes accuracy on them by")):
        part = effects[effects["comparison"] == comparison]
        items = [f"{VARIANT_LABELS.get(r.model, 'CNN' if r.model == 'cnn' else r.model)} "
                 f"{r.difference:+.2f} [{r.low:+.2f}, {r.high:+.2f}]"
                 + (f" ({r.dataset})" if part["dataset"].nunique() > 1 else "")
                 for r in part.itertuples()]
        parts.append(f"{lead} {'; '.join(items)}")
    return " " + "; ".join(parts) + " (95 % paired bootstrap CIs over test images)."


def what_this_adds(results: dict[str, pd.DataFrame], settings) -> str:
    """The chapter's closing lines, one per question, generated from this run's numbers."""
    label = lambda v: VARIANT_LABELS.get(v, v)
    lines = []
    # 1. rotations
    exact = exactness(results["gap"])
    inv = exact[exact["model"].isin(INVARIANT)]
    gap = results["gap"]
    pix = gap[(gap["rotation"] == "pixels")]
    pix_pred = pix[~np.isclose(pix["angle"] % (2 * np.pi), 0)].groupby("model")[
        "prediction_change"].mean()
    m = results["matrix"]
    acc = lambda model, train, test: m[(m["model"] == model) & (m["train"] == train)
                                       & (m["test"] == test)]["accuracy"].mean()
    r = results["reliance"]
    nec = r.groupby("condition")["necessity"].mean()
    t = results["transfer"]
    drop = t[t["target"].isin(INVARIANT)].groupby("condition")["drop"].mean()
    lines.append(
        f"1. **Rotations at any angle.** Invariance is exact on C_8 (largest logit change at "
        f"multiples of 45°: {inv['max on C_N'].max():.1e}, rule ≤ {EXACT_TOL:g}, "
        f"{'met' if inv['exact on C_N'].all() else 'NOT met'}; at quarter turns of the pixels: "
        f"{inv['max on quarter turns (pixels)'].max():.1e}) and not between: the invariant "
        f"models' logits move by up to {inv['max between'].max():.2f} (mean "
        f"{inv['mean between'].mean():.2f}) and "
        f"{_pct(inv['prediction change between'].mean())} of predictions change at angles off "
        f"C_8 under the exact (ring-grid) rotation; with pixel-resampled rotations predictions "
        f"change for {_pct(pix_pred.get('west', np.nan))} (West), "
        f"{_pct(pix_pred.get('sector', np.nan))} (sector-resolved), "
        f"{_pct(pix_pred.get('baseline', np.nan))} (non-equivariant) and "
        f"{_pct(pix_pred.get('cnn', np.nan))} (CNN) of images. Trained upright and tested on "
        f"rotated images, accuracy is {acc('west', 'upright', 'rotated'):.2f} / "
        f"{acc('sector', 'upright', 'rotated'):.2f} / {acc('baseline', 'upright', 'rotated'):.2f}"
        f" / {acc('cnn', 'upright', 'rotated'):.2f} (West / sector-resolved / non-equivariant / "
        f"CNN; upright test: {acc('west', 'upright', 'upright'):.2f} / "
        f"{acc('sector', 'upright', 'upright'):.2f} / {acc('baseline', 'upright', 'upright'):.2f}"
        f" / {acc('cnn', 'upright', 'upright'):.2f}); trained and tested rotated: "
        f"{acc('west', 'rotated', 'rotated'):.2f} / {acc('sector', 'rotated', 'rotated'):.2f} / "
        f"{acc('baseline', 'rotated', 'rotated'):.2f} / {acc('cnn', 'rotated', 'rotated'):.2f}."
        + _effects_sentence(results.get("effects")) +
        f" Necessity of the ring means (invariant models, mean over datasets): "
        f"{_pct(nec.get(CONDITIONS[0]))} upright, {_pct(nec.get(CONDITIONS[1]))} upright-trained "
        f"on rotated tests, {_pct(nec.get(CONDITIONS[2]))} rotated-trained; transferred PGD "
        f"(ε = {settings.reference_eps}) costs the invariant models {drop.get('upright', np.nan):.2f}"
        f" upright and {drop.get('rotated', np.nan):.2f} on rotated data.")
    # 2. grids
    if "grids" in results and len(results["grids"]):
        g = results["grids"]
        sel = g[g["rung"].str.contains("selected")]
        finer = g[~g["rung"].str.contains("selected|deeper")]
        best = finer.loc[finer["clean"].idxmax()] if len(finer) else None
        lines.append(
            f"2. **Finer sampling.** The book's 16×8 grid reads "
            f"{int(sel['pixels_read'].iloc[0]) if len(sel) else 0} pixels; the finer grids read "
            f"up to {int(finer['pixels_read'].max()) if len(finer) else 0}. "
            + (f"The best finer grid ({best['rung']}, {best['dataset']}) reaches {best['clean']:.2f} "
               f"against {sel[sel['dataset'] == best['dataset']]['clean'].max():.2f} for the "
               f"selected 16×8 models; " if best is not None else "")
            + f"necessity of k = 0 ranges {g['necessity'].min():.0%}–{g['necessity'].max():.0%} "
              f"over the grids (16×8: {sel['necessity'].mean():.0%}) and the transferred-PGD drop "
              f"{g['drop'].min():.2f}–{g['drop'].max():.2f} (16×8: {sel['drop'].mean():.2f}).")
    else:
        lines.append("2. **Finer sampling.** Not run (`grids=False`).")
    # 3. shots
    need = shots_needed(results["shots"])
    inv_need = need[need["model"].isin(INVARIANT)]
    parts = []
    for _, row in inv_need.iterrows():
        parts.append(f"{row['dataset']}, {label(row['model'])}: accuracy within "
                     f"{ACCURACY_POINTS:.0%} of exact from {_shots(row['shots for accuracy'])}; "
                     f"top margin sector per image in ≥ {RESOLVED_SHARE:.0%} of images from "
                     f"{_shots(row['shots for per-image top sector'])} per sector; mean ordering "
                     f"resolved from {_shots(row['shots for mean ordering'])}")
    nec = shot_necessity(results["shots"], {d: len(data.info(d).classes)
                                            for d in results["shots"]["accuracy"]["dataset"]})
    nec = nec[nec["model"].isin(INVARIANT)].groupby("shots")["necessity"].mean()
    smallest = min(settings.shots)
    lines.append("3. **Finite shots.** " + "; ".join(parts) + ". Necessity of the ring means "
                 f"(invariant models, mean over datasets): {_pct(nec.get(0))} exact, "
                 f"{_pct(nec.get(smallest))} at S = {smallest}, "
                 f"{_pct(nec.get(max(settings.shots)))} at S = {max(settings.shots):,}.")
    # 4. noise
    c = results["commutation"]
    n = results["noise"]
    top = max(settings.noise_rates)
    at = lambda label_, col: n[(n["noise"] == label_) & np.isclose(n["rate"], top)][col].mean()
    base = lambda col: n[n["noise"] == "none"][col].mean()
    noiseless = n[n["noise"] == "none"]
    noiseless_gain = ", ".join(
        f"{VARIANT_LABELS.get(v, v)} {row['suppression gain']:+.2f} "
        f"[{row['gain low']:+.2f}, {row['gain high']:+.2f}]"
        for v, row in noiseless.set_index("variant").iterrows())
    keeps = c[(c["wires"] == "angular") & (c["commutator"] <= EXACT_TOL)]
    where = {"layers": "after the layers", "input": "on the input",
             "transform": "inside the transform"}
    dev_cols = [col for col in c if col.startswith("invariance")]
    broken = c[c[dev_cols].max(axis=1) > EXACT_TOL]
    broken_text = "; ".join(
        f"{r_['channel'].replace('_', ' ')} {where[r_['placement']]} on the {r_['wires']} "
        f"wires (largest readout change: West {r_['invariance deviation (west)']:.1e}, "
        f"sector-resolved {r_['invariance deviation (sector)']:.1e})"
        for _, r_ in broken.iterrows())
    lines.append(
        f"4. **Noise.** On the angular register, "
        + ", ".join(f"{r_.channel.replace('_', ' ')} {where[r_.placement]}"
                    for r_ in keeps.itertuples())
        + f" commute with the rotation (≤ {EXACT_TOL:g}); the others do not (up to "
        f"{c['commutator'].max():.1e} at rate {c['rate'].iloc[0]:g}). The trained models stay "
        f"invariant under every channel after the layers (largest deviation "
        f"{c[c['placement'] == 'layers'][dev_cols].max().max():.1e}); invariance breaks for "
        + (broken_text if broken_text else "no placement")
        + f". At rate {top:g} "
        f"({n['dataset'].iloc[0]}, mean of both models): accuracy {base('clean'):.2f} → "
        f"{at('depolarizing', 'clean'):.2f} (depolarizing), {at('amplitude damping', 'clean'):.2f} "
        f"(amplitude damping), {at('readout error', 'clean'):.2f} (readout error); necessity of "
        f"k = 0 {_pct(base('necessity'))} → {_pct(at('depolarizing', 'necessity'))} / "
        f"{_pct(at('amplitude damping', 'necessity'))} / {_pct(at('readout error', 'necessity'))};"
        f" suppression gain without noise {noiseless_gain} → "
        f"{at('depolarizing', 'suppression gain'):+.2f} / "
        f"{at('amplitude damping', 'suppression gain'):+.2f} / "
        f"{at('readout error', 'suppression gain'):+.2f} (mean of both models; on "
        f"{settings.n_noise} images; brackets: each model's 95 % paired bootstrap CI over "
        f"images).")
    return "\n\n".join(lines)
