"""Units of work: the expensive, cached pieces of a chapter (trained models, surrogates,
adversarial sets), named so that a sweep can compute them anywhere before the notebooks run.

Each study module lists its units (``units(settings)``). A unit's result lands in the result
cache (:mod:`equivar.cache`), keyed only by what the unit computes, so it does not matter which
process computed it or how a sweep was split; the notebooks then find every entry there.
``stage`` orders units whose inputs other units produce (surrogates before the attacks crafted
on them); units of one stage are independent.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from equivar import cache
from equivar.adversary.defences import trained_defended
from equivar.learn import surrogates
from equivar.learn.train import ModelSpec


@dataclass(frozen=True)
class Unit:
    """One cached piece of work: ``fn(*args)`` (module-level, picklable), in ``stage``."""

    stage: int
    label: str
    fn: Callable
    args: tuple

    @property
    def key(self) -> tuple:
        """Identity of the work (two chapters that need the same unit list it once)."""
        return (self.fn.__module__, self.fn.__qualname__, repr(self.args))

    @property
    def kind(self) -> str:
        """What the unit does (its function's name), to add up costs by."""
        return self.fn.__name__.lstrip("_")

    def __call__(self) -> float:
        """Run the unit; seconds it took (near 0 when its results were cached)."""
        start = time.perf_counter()
        self.fn(*self.args)
        return time.perf_counter() - start


def train_model(spec: ModelSpec) -> None:
    """Train (or find cached) the quantum model of ``spec``, defences included."""
    trained_defended(spec, progress=False)


def train_surrogate(spec: surrogates.SurrogateSpec) -> None:
    """Train (or find cached) the classical surrogate of ``spec``."""
    surrogates.train_surrogate(spec)


def unique(units) -> list[Unit]:
    """``units`` without repeats (by :attr:`Unit.key`), in stage order, first listing kept."""
    seen = {}
    for unit in units:
        seen.setdefault(unit.key, unit)
    return sorted(seen.values(), key=lambda u: u.stage)


def cached_rows(study: str, params: dict, compute: Callable[[], dict]) -> dict[str, list[dict]]:
    """Table rows ``compute()`` -> {table: [row dict]} of one piece of a study's scoring, cached
    (kind ``score``) under ``params`` and a digest of the study code, which (unlike the models
    and sets it scores) lies outside :data:`equivar.cache.CODE_PACKAGES`: any change to a
    study module recomputes the scores, never serves stale rows."""
    params = {**params, "study": study, "studies": cache.code_digest(("studies",))}
    return cache.cached("score", params, lambda: _plain(compute()))[0]


def _plain(value):
    """``value`` with numpy scalars as Python numbers (the cache loads plain types only)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return value
