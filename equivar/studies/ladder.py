"""Chapter 2's first section: how the models were chosen, and what they can reach.

:func:`selection` runs the recorded model selection (:mod:`equivar.learn.select`) for West's
ansatz and the sector-resolved variant on every dataset; :func:`ladder` scores, on the same
data, a ladder of classifiers from the information ceiling down to West's model as published:
logistic probes on each feature set a model can access, the ideal measurement of each kind,
and quantum models with the selected settings on finer grids, more angles, per-ring offsets
and deeper circuits. Every choice is made on the validation split; the test split only scores.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from equivar import data
from equivar.cache import cached
from equivar.core import rings, sectors
from equivar.learn import probes, select
from equivar.learn.train import ModelSpec, accuracy, encode, trained, validation_data
from equivar.runtime import progress as progress_bar
from equivar.studies.units import Unit, train_model

VARIANTS = ("west", "sector")            # the invariant models of the ladder
SELECTED_VARIANTS = ("west", "sector", "baseline")  # every chapter model is selected
# West et al. (2024) as published: lr 1e-3, 8 epochs, batch 16, 50 × <Z> on 10 radial qubits
WEST_PUBLISHED = dict(lr=1e-3, epochs=8, batch_size=16, scale=50.0, readout="z", n_rings=1024)


def search_space(settings) -> select.SearchSpace:
    """The selection's search space for :class:`equivar.settings.LadderSettings`."""
    return select.SearchSpace(budget=settings.selection_budget,
                              max_epochs=settings.selection_epochs,
                              n_train=min(settings.n_train, 2000),
                              n_valid=settings.n_valid, seed=settings.seed)


def selection_datasets(settings, also=()) -> tuple[list[str], dict]:
    """The datasets whose models are selected: the ladder's and ``also`` (a chapter's real
    datasets whose models use the selection), resolved, in order, each once; and notes."""
    wanted = list(dict.fromkeys([*settings.datasets, *(d for d in also if d != "synthetic")]))
    return data.resolve(wanted, fallbacks={"mnist": "mnist-5k"})


def selection(settings, also=()) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Every configuration tried (one row each), the chosen ones (one row per dataset and
    variant), and notes on datasets replaced or skipped; for the ladder's datasets and
    ``also`` (see :func:`selection_datasets`)."""
    names, notes = selection_datasets(settings, also)
    space = search_space(settings)
    tables = [select.search(space, name, variant) for name in names
              for variant in SELECTED_VARIANTS]
    tried = pd.concat(tables, ignore_index=True)
    chosen = pd.DataFrame([{"dataset": t["dataset"].iloc[0], "variant": t["variant"].iloc[0],
                            **select.choose(t)} for t in tables])
    return tried, chosen, notes


def chosen_spec(settings, dataset: str, variant: str, **changes) -> ModelSpec:
    """The selected model of ``variant`` on ``dataset``, trained on the ladder's ``n_train``
    images with early stopping, with ``changes`` applied (another grid, depth, ...)."""
    base = ModelSpec(dataset, variant, settings.seed, settings.n_train,
                     settings.selection_epochs, 64, 0.03, 4, 30.0, patience=4,
                     n_valid=settings.n_valid)
    spec = select.selected_spec(base, search_space(settings))
    # the selected depth, step, scale and schedule; early stopping chooses the epoch again
    return replace(spec, epochs=settings.selection_epochs, **changes)


def model_spec(chapter_settings, dataset: str, variant: str, seed: int) -> ModelSpec:
    """The model chapters 2-4 train for ``variant`` on ``dataset`` with ``seed``: chapter 2's
    settings (a :class:`equivar.settings.RelianceSettings`) with, when its ``models`` is
    ``"selected"``, the depth, step, scale, schedule and epochs chosen on validation (the
    selection of this profile; synthetic data keeps the chapter's settings)."""
    base = ModelSpec.from_settings(chapter_settings, dataset, variant, seed)
    if chapter_settings.models != "selected" or dataset == "synthetic":
        return base
    from equivar.settings import LadderSettings

    return select.selected_spec(base, search_space(LadderSettings.for_profile(
        chapter_settings.profile)))


def chapter_model_unit(chapter_settings, dataset: str, variant: str, seed: int) -> Unit:
    """Stage 1: training the model of chapters 2-4 for ``variant`` on ``dataset`` with
    ``seed`` (every chapter that needs it lists this unit, so a joint sweep has one key); its
    settings name that one seed, so the key does not depend on how seeds were split."""
    return Unit(1, f"model {dataset}/{variant}/seed {seed}", train_chapter_model,
                (replace(chapter_settings, seed=seed, n_seeds=1), dataset, variant, seed))


def train_chapter_model(chapter_settings, dataset: str, variant: str, seed: int) -> None:
    """Train (or find cached) a model of chapters 2-4; its spec is resolved here, in the sweep's
    worker, because a selected model's spec needs the selection's trials (an earlier stage)."""
    train_model(model_spec(chapter_settings, dataset, variant, seed))


PUBLISHED = "West as published (1024×8, ⟨Z⟩, lr 1e-3, 8 epochs)"


def rung_plan(settings) -> list[tuple[str, str | None, dict]]:
    """(name, variant, changes to the selected spec) of every quantum rung, in the order of
    :func:`rungs`, without resolving the selection; ``changes["deeper"]`` multiplies the
    selected depth; variant ``None`` is West's model as published (1024 rings)."""
    out = []
    for variant in VARIANTS:
        label = "West" if variant == "west" else "sector-resolved"
        out.append((f"{label}, selected (16×8)", variant, {}))
        out.append((f"{label}, {settings.deeper}× deeper", variant,
                    {"deeper": settings.deeper}))
        for n_rings in settings.rings:
            if n_rings != 16 and (variant == "west" or n_rings <= 64):
                out.append((f"{label}, {n_rings} rings", variant, {"n_rings": n_rings}))
        for n_angles in settings.angles:
            if n_angles != 8:
                out.append((f"{label}, {n_angles} angles", variant, {"n_angles": n_angles}))
        out.append((f"{label}, ring offset", variant, {"ring_offset": settings.ring_offset}))
    if 1024 in settings.rings:
        out.append((PUBLISHED, None, {"n_rings": WEST_PUBLISHED["n_rings"]}))
    return out


def rungs(settings, dataset: str) -> list[tuple[str, ModelSpec]]:
    """(name, spec) of every quantum rung on ``dataset`` (:func:`rung_plan`, resolved)."""
    out = []
    for name, variant, changes in rung_plan(settings):
        if variant is None:
            out.append((name, ModelSpec(dataset, "west", settings.seed, settings.n_train,
                                        WEST_PUBLISHED["epochs"], WEST_PUBLISHED["batch_size"],
                                        WEST_PUBLISHED["lr"], 4, WEST_PUBLISHED["scale"],
                                        readout=WEST_PUBLISHED["readout"],
                                        n_rings=WEST_PUBLISHED["n_rings"])))
            continue
        changes = dict(changes)
        if "deeper" in changes:
            changes["n_layers"] = chosen_spec(settings, dataset, variant).n_layers \
                * changes.pop("deeper")
        out.append((name, chosen_spec(settings, dataset, variant, **changes)))
    return out


def units(settings, also=()) -> list[Unit]:
    """The ladder's expensive work: the selection trials of its datasets and ``also`` and the
    probes (stage 0), then every rung of its own datasets (stage 1)."""
    selected, _ = selection_datasets(settings, also)
    names, _ = data.resolve(settings.datasets, fallbacks={"mnist": "mnist-5k"})
    out = selection_units(settings, selected)
    out += [Unit(0, f"ladder {name}: probes and ideal measurements", reference_rows,
                 (settings, name)) for name in names]
    for name in names:
        out += rung_units(settings, name)
    return out


def rung_units(settings, dataset: str, max_rings: int | None = None) -> list[Unit]:
    """Stage 1: training every rung of ``dataset`` (at most ``max_rings`` rings if given)."""
    return [Unit(1, f"ladder {dataset}: rung {i}", train_rung, (settings, dataset, i))
            for i, (_, _, changes) in enumerate(rung_plan(settings))
            if max_rings is None or changes.get("n_rings", 16) <= max_rings]


def selection_units(settings, datasets) -> list[Unit]:
    """Stage 0: every trial of the selection search of ``settings`` (a
    :class:`equivar.settings.LadderSettings`) on each of ``datasets`` (resolved names; synthetic
    data is never selected)."""
    space = search_space(settings)
    # one unit per trial (not per search): the trials are independent, and a few long
    # searches on two workers would leave one idle for most of stage 0
    return [Unit(0, f"selection {name}/{variant} trial {i}", train_trial,
                 (space, name, variant, i))
            for name in datasets if name != "synthetic" for variant in SELECTED_VARIANTS
            for i in range(len(space.configurations()))]


def train_trial(space, dataset: str, variant: str, index: int) -> None:
    """Train (or find cached) trial ``index`` of the selection search (what
    :func:`equivar.learn.select.search` then reads from the cache)."""
    config = space.configurations()[index]
    train_model(select.trial_spec(space, dataset, variant, config))


def n_rungs(settings) -> int:
    """How many quantum rungs :func:`rungs` lists per dataset (without resolving them)."""
    return len(rung_plan(settings))


def train_rung(settings, dataset: str, index: int) -> None:
    """Train (or find cached) rung ``index`` of :func:`rungs`; resolved in the worker, after
    the selection it depends on."""
    train_model(rungs(settings, dataset)[index][1])


def pixel_coverage(n_rings: int, n_angles: int, height: int, width: int,
                   ring_offset: float = 0.0) -> int:
    """How many pixels the bilinear ring samples read (a non-zero weight)."""
    rows, cols = rings.grid(n_rings, n_angles, height, width, ring_offset)
    hit = set()
    for r, c in zip(rows.ravel(), cols.ravel()):
        r0, c0 = math.floor(r), math.floor(c)
        for dr, wr in ((0, 1 - (r - r0)), (1, r - r0)):
            for dc, wc in ((0, 1 - (c - c0)), (1, c - c0)):
                rr, cc = r0 + dr, c0 + dc
                if wr * wc > 0 and 0 <= rr < height and 0 <= cc < width:
                    hit.add((rr, cc))
    return len(hit)


def reference_rows(settings, dataset: str) -> list[dict]:
    """The ladder's non-quantum rungs on ``dataset``: a logistic probe on every feature set
    (:data:`equivar.learn.probes.FEATURE_SETS`) and the ideal measurement of each invariant
    kind, fitted on the training images, regularised on validation, scored on test; one row
    each. Cached (kind ``probe``), so a sweep computes them beside the quantum rungs."""
    params = {"what": "ladder reference rungs", "dataset": dataset, "seed": settings.seed,
              "n_train": settings.n_train, "n_valid": settings.n_valid,
              "n_test": settings.n_test, "epochs": settings.selection_epochs}

    def compute():
        n_classes = len(data.info(dataset).classes)
        train = data.load(dataset, "train", seed=settings.seed,
                          n=min(settings.n_train, data.split_size(dataset, "train")))
        valid = validation_data(dataset, settings.n_valid)
        test = data.load(dataset, "test", seed=settings.seed,
                         n=min(settings.n_test, data.split_size(dataset, "test")))
        splits = {"train": train, "valid": valid, "test": test}
        grids = {k: encode(v[0])[0] for k, v in splits.items()}
        tag, rows = {"dataset": dataset}, []
        for kind, what in probes.FEATURE_SETS.items():
            f = {k: probes.features(v[0], grids[k], kind) for k, v in splits.items()}
            out = probes.fit_probe((f["train"], train[1]), (f["valid"], valid[1]),
                                   (f["test"], test[1]), seed=settings.seed)
            rows.append({**tag, "family": "linear probe", "rung": f"probe: {kind}",
                         "what": what, "n_params": (f["train"].shape[1] + 1) * n_classes,
                         "valid_accuracy": float(out["valid_accuracy"]),
                         "test_accuracy": float(out["test_accuracy"])})
        for variant in VARIANTS:
            out = probes.fit_ideal((grids["train"], train[1]), (grids["valid"], valid[1]),
                                   variant, n_classes, epochs=settings.selection_epochs,
                                   seed=settings.seed)
            with torch.no_grad():
                logits = out["model"](torch.as_tensor(sectors.sector_blocks(grids["test"])))
            rows.append({**tag, "family": "ideal measurement", "rung": f"ideal: {variant}",
                         "what": "a free unitary on the radial register per "
                                 + ("parity of k" if variant == "west" else "sector k"),
                         "n_params": int(out["model"].generator.numel() * 2),
                         "valid_accuracy": float(out["valid_accuracy"]),
                         "test_accuracy": float((logits.argmax(1).numpy() == test[1]).mean())})
        return {"rows": rows}

    return cached("probe", params, compute)[0]["rows"]


def ladder(settings, progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """One row per dataset and rung: family, grid, parameters, pixel coverage, validation and
    test accuracy, training seconds. Returns (table, notes)."""
    names, notes = data.resolve(settings.datasets, fallbacks={"mnist": "mnist-5k"})
    rows = []
    for name in progress_bar(names, desc="ladder", disable=not progress):
        h, w = data.info(name).image_shape
        valid = validation_data(name, settings.n_valid)
        test = data.load(name, "test", n=min(settings.n_test, data.split_size(name, "test")),
                         seed=settings.seed)
        tag = {"dataset": name}
        rows += reference_rows(settings, name)
        for label, spec in rungs(settings, name):
            model, record = trained(spec, progress=False)
            sampling = spec.sampling()
            states = {k: spec.grid_filter().states(rings.sample_grid(v[0], sampling))
                      for k, v in (("valid", valid), ("test", test))}
            rows.append({**tag, "family": "quantum", "rung": label, "variant": spec.variant,
                         "n_rings": spec.n_rings, "n_angles": spec.n_angles,
                         "ring_offset": spec.ring_offset, "n_layers": spec.n_layers,
                         "readout": spec.readout, "qubits": model.config.n_wires,
                         "n_params": int(np.prod(model.config.weight_shape)),
                         "pixels_read": pixel_coverage(spec.n_rings, spec.n_angles, h, w,
                                                       spec.ring_offset),
                         "epochs": record["best_epoch"], "seconds": record.get("seconds"),
                         "valid_accuracy": accuracy(model, states["valid"], valid[1]),
                         "test_accuracy": accuracy(model, states["test"], test[1])})
    return pd.DataFrame(rows), notes


def ceiling_gaps(table: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and invariant variant: the selected model's test accuracy, the best quantum
    rung of that variant, the ideal measurement of its kind and the probe on its accessible
    information (West: the parity sums; sector-resolved: all sector blocks), and the gap of
    the selected model to that probe (positive: below it)."""
    own_probe = {"west": "probe: west-parity", "sector": "probe: sector-blocks"}
    rows = []
    for dataset, part in table.groupby("dataset", sort=False):
        by_rung = part.set_index("rung")["test_accuracy"]
        for variant in VARIANTS:
            quantum = part[(part["family"] == "quantum") & (part["variant"] == variant)]
            label = "West" if variant == "west" else "sector-resolved"
            selected = by_rung.get(f"{label}, selected (16×8)", np.nan)
            rows.append({"dataset": dataset, "variant": variant, "selected": selected,
                         "best rung": quantum["test_accuracy"].max(),
                         "ideal": by_rung.get(f"ideal: {variant}", np.nan),
                         "own probe": by_rung.get(own_probe[variant], np.nan),
                         "gap to probe": by_rung.get(own_probe[variant], np.nan) - selected})
    return pd.DataFrame(rows)
