"""Units of work: the expensive, cached pieces of a chapter (trained models, surrogates,
adversarial sets), named so that a sweep can compute them anywhere before the notebooks run.

Each study module lists its units (``units(settings)``). A unit's result lands in the result
cache (:mod:`equivar.cache`), keyed only by what the unit computes, so it does not matter which
process computed it or how a sweep was split; the notebooks then find every entry there.
``stage`` orders units whose inputs other units produce (surrogates before the attacks crafted
on them); units of one stage are independent.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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

    def __call__(self) -> None:
        self.fn(*self.args)


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
