"""A chapter run's expensive work, fanned out over Dask workers before the notebooks run.

``equivar run --workers N`` (a local cluster of N single-threaded worker processes) or
``--scheduler ADDRESS`` (any running ``dask.distributed`` scheduler, e.g. one started by
``dask-jobqueue`` on SLURM/PBS) first computes every unit the chosen chapters list
(:mod:`equivar.studies.units`) as a task; the units fill the shared result cache, whose
per-key lock keeps two workers from computing one entry. The notebooks then run once, in this
process, and find every entry cached. Workers must see the same ``EQUIVAR_CACHE_DIR`` (a shared
file system on a cluster) and the same equivar checkout.
"""
from __future__ import annotations

import logging
import time

from equivar.book import notebooks
from equivar.settings import BaselineSettings
from equivar.studies import baselines, openings, reliance, robustness, strong_transfer, transfer
from equivar.studies.units import Unit, unique


def _transfer_units(settings) -> list[Unit]:
    """Chapter 3's units, its stronger transfer sets (chapter 4's, listed once) and its
    classical-baselines section (:meth:`BaselineSettings.for_chapter`)."""
    return (transfer.units(settings) + strong_transfer.units(settings)
            + baselines.units(BaselineSettings.for_chapter(settings)))


# chapter id -> the function listing its units (chapter 1 has nothing worth caching)
UNITS = {"sector-reliance": reliance.units, "transfer": _transfer_units,
         "suppression": robustness.units, "open": openings.units}


def plan(chapters, profile: str, params: dict[str, dict]) -> list[Unit]:
    """Every unit of ``chapters`` (:class:`equivar.book.notebooks.Chapter`) under ``profile``
    with each chapter's checked parameters ``params[chapter]``, without repeats."""
    out = []
    for chapter in chapters:
        if chapter.id not in UNITS:
            continue
        cls = notebooks.CHAPTER_SETTINGS[chapter.id]
        fields = {f for f in cls.__dataclass_fields__ if f != "profile"}
        overrides = {k: v for k, v in params.get(chapter, {}).items() if k in fields}
        out.extend(UNITS[chapter.id](cls.for_profile(profile, **overrides)))
    return unique(out)


def compute(units: list[Unit], workers: int | None = None, scheduler: str | None = None,
            progress: bool = True) -> dict[str, dict]:
    """Run ``units`` as Dask tasks, stage by stage; returns ``{"stages": {stage: wall
    seconds}, "units": {label: seconds in its worker}}``.

    ``workers``: size of a local cluster (one thread per worker process); ``scheduler``: the
    address of an existing scheduler instead. The first failing unit is re-raised, named.
    """
    from dask.distributed import Client, LocalCluster, as_completed
    from tqdm import tqdm

    if scheduler is None and (workers is None or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if scheduler is not None:
        client, cluster = Client(scheduler), None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    timings, seconds = {}, {}
    try:
        for stage in sorted({u.stage for u in units}):
            batch = [u for u in units if u.stage == stage]
            start = time.perf_counter()
            futures = {client.submit(u, key=f"unit-{stage}-{i}", pure=False): u
                       for i, u in enumerate(batch)}
            with tqdm(total=len(batch), desc=f"stage {stage}", disable=not progress) as bar:
                for future in as_completed(futures):
                    if future.status == "error":
                        unit = futures[future]
                        error = future.exception()
                        raise RuntimeError(f"unit {unit.label!r} failed: "
                                           f"{type(error).__name__}: {error}") from error
                    seconds[futures[future].label] = future.result()
                    bar.set_postfix_str(futures[future].label[:40])
                    bar.update(1)
            timings[f"stage {stage}"] = time.perf_counter() - start
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return {"stages": timings, "units": seconds}


def cost_table(units: list[Unit], seconds: dict[str, float]) -> dict[str, dict]:
    """Per unit kind: how many units, their summed and largest worker seconds (what each part
    of a sweep costs, for ``run-info.json``), most expensive first."""
    rows = {}
    for unit in units:
        if unit.label not in seconds:
            continue
        row = rows.setdefault(unit.kind, {"units": 0, "seconds": 0.0, "largest": 0.0})
        row["units"] += 1
        row["seconds"] += seconds[unit.label]
        row["largest"] = max(row["largest"], seconds[unit.label])
    rounded = {k: {**v, "seconds": round(v["seconds"], 1), "largest": round(v["largest"], 1)}
               for k, v in rows.items()}
    return dict(sorted(rounded.items(), key=lambda kv: -kv[1]["seconds"]))


def serial(units: list[Unit], progress: bool = True) -> None:
    """Run ``units`` one after another in this process (the reference for :func:`compute`)."""
    from tqdm import tqdm

    for unit in tqdm(units, desc="units", disable=not progress):
        unit()
