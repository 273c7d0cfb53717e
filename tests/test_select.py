"""equivar.learn.select: the declared space, a search that never touches the test split,
the choice rule."""
from __future__ import annotations

import pandas as pd
import pytest

from equivar import data
from equivar.learn import select
from equivar.learn.train import ModelSpec

TINY = select.SearchSpace(n_layers=(1, 2), lr=(0.05,), scale=(10.0, 30.0),
                          schedule=("constant",), budget=3, max_epochs=3, patience=1,
                          n_train=120, n_valid=60, batch_size=32)


def test_configurations_are_a_fixed_sample_of_the_product():
    configs = TINY.configurations()
    assert len(configs) == 3 and configs == TINY.configurations()
    assert all(c["n_layers"] in (1, 2) and c["scale"] in (10.0, 30.0) for c in configs)
    assert len(select.SearchSpace(budget=1000).configurations()) == 4 * 3 * 3 * 2


def test_search_never_reads_the_test_split(monkeypatch):
    real_load = data.load

    def guarded(name, split, *args, **kwargs):
        if split == "test":
            raise AssertionError("model selection read the test split")
        return real_load(name, split, *args, **kwargs)

    monkeypatch.setattr(data, "load", guarded)
    table = select.search(TINY, "digits", "sector")
    assert len(table) == 3 and table["valid_accuracy"].between(0, 1).all()
    assert (table["epoch"] <= table["epochs_run"]).all()


def test_choose_takes_best_validation_accuracy_then_loss_then_fewer_layers():
    table = pd.DataFrame([
        dict(n_layers=8, lr=0.1, scale=10.0, schedule="constant", valid_accuracy=0.7,
             valid_loss=1.0, epoch=3),
        dict(n_layers=4, lr=0.1, scale=10.0, schedule="cosine", valid_accuracy=0.7,
             valid_loss=1.0, epoch=5),
        dict(n_layers=12, lr=0.1, scale=10.0, schedule="constant", valid_accuracy=0.6,
             valid_loss=0.5, epoch=9)])
    chosen = select.choose(table)
    assert chosen["n_layers"] == 4 and chosen["schedule"] == "cosine" and chosen["epochs"] == 5


def test_selected_spec_keeps_the_chapter_settings_it_does_not_choose():
    base = ModelSpec("digits", "sector", 3, 200, 10, 64, 0.03, 6, 30.0)
    spec = select.selected_spec(base, TINY)
    assert (spec.dataset, spec.seed, spec.n_train, spec.batch_size) == ("digits", 3, 200, 64)
    assert spec.n_layers in (1, 2) and spec.epochs <= 3


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_layers=()), "search space n_layers is empty"),
    (dict(budget=0), "budget must be at least 1"),
    (dict(lr=(0.1, "fast")), "lr must be"),
])
def test_bad_space(kwargs, match):
    with pytest.raises(ValueError, match=match):
        select.SearchSpace(**kwargs)
