"""equivar.book.sweep and the units of the studies: what a sweep computes, that its keys do not
depend on how it is split, and that Dask workers fill the cache exactly as a serial run."""
from __future__ import annotations

import pytest

from equivar import cache, settings
from equivar.book import notebooks, sweep
from equivar.studies import baselines, robustness, threats, transfer
from equivar.studies.units import Unit, unique


def _plan(chapter_ids, profile="smoke", **overrides):
    chapters = [notebooks.find(c) for c in chapter_ids]
    return sweep.plan(chapters, profile, {ch: overrides for ch in chapters})


def test_plan_lists_each_unit_once_across_chapters():
    units = _plan(["sector-reliance", "transfer", "suppression"])
    keys = [u.key for u in units]
    assert len(keys) == len(set(keys))
    stages = [u.stage for u in units]
    assert stages == sorted(stages)
    # chapter 4 reuses chapter 3's surrogates: listed once although both chapters need them
    surrogate_units = [u for u in units if u.label.startswith("surrogate ")]
    assert len(surrogate_units) == len({u.args for u in surrogate_units})


def test_suppression_needs_only_the_surrogate_attacks_of_chapter_three():
    s = settings.SuppressionSettings.for_profile("smoke")
    crafted = {u.args[3] for u in robustness.units(s) if u.fn is transfer.adversarial_sets}
    assert crafted == set(s.transfer_settings().surrogates)


def test_unit_keys_do_not_depend_on_how_seeds_are_split():
    # regression: chapters 3-4 drew the attacked images with the first seed of the run
    whole = {u.key for u in _plan(["transfer"], seed=0, n_seeds=2)}
    split = {u.key for u in _plan(["transfer"], seed=0, n_seeds=1)} | \
        {u.key for u in _plan(["transfer"], seed=1, n_seeds=1)}
    # the classical baselines take the run's first seeds only (BaselineSettings.for_chapter),
    # so a split run may list baseline seeds the whole run leaves out, never the reverse
    baseline = {u.key for u in baselines.units(settings.BaselineSettings.for_profile(
        "smoke", seed=1, n_seeds=1))}
    assert whole <= split and split - whole <= baseline
    first = settings.TransferSettings.for_profile("smoke", seed=0)
    second = settings.TransferSettings.for_profile("smoke", seed=1)
    a, _ = transfer.attacked_images(first, "digits")
    b, _ = transfer.attacked_images(second, "digits")
    assert (a == b).all()


def test_unique_keeps_the_first_and_orders_by_stage():
    def work(x):
        return x

    units = [Unit(2, "b", work, (1,)), Unit(1, "a", work, (2,)), Unit(1, "a again", work, (2,))]
    assert [u.label for u in unique(units)] == ["a", "b"]


def test_bad_worker_count():
    with pytest.raises(ValueError, match="workers must be a positive integer, got 0"):
        sweep.compute([], workers=0)


def _entries():
    """(kind, key, content digest) of every entry; a trained model's wall-clock ``seconds``
    is the one field that may differ between runs, so it is left out of the digest."""
    import hashlib
    from pathlib import Path

    import torch

    out = []
    for e in cache.entries():
        if e["status"] != "ok":
            continue
        digest = e["sha256"]
        if e["format"] == "pt":
            content = torch.load(Path(e["path"]), weights_only=True)
            content.pop("seconds", None)
            digest = hashlib.sha256(repr(sorted((k, v.tolist() if torch.is_tensor(v) else v)
                                                for k, v in content.items())).encode()).hexdigest()
        out.append((e["kind"], e["key"], digest))
    return sorted(out)


@pytest.mark.slow
def test_two_dask_workers_fill_the_cache_exactly_as_a_serial_run(tmp_path, monkeypatch):
    units = _plan(["transfer"], datasets=("digits",))
    monkeypatch.setenv("EQUIVAR_CACHE_DIR", str(tmp_path / "serial"))
    sweep.serial(units, progress=False)
    serial = _entries()
    monkeypatch.setenv("EQUIVAR_CACHE_DIR", str(tmp_path / "dask"))
    sweep.compute(units, workers=2, progress=False)
    assert _entries() == serial
    assert sum(kind == "adversarial" for kind, _, _ in serial) == _n_sets(units)


def _n_sets(units):
    """Cache entries a transfer plan writes beyond one per unit: one per attack and ε."""
    s = next(u.args[0] for u in units if u.fn is transfer.adversarial_sets)
    n = sum(u.fn is transfer.adversarial_sets for u in units) * len(s.attacks) * len(s.epsilons)
    for unit in units:  # the threat study's sets: large-ε transfer and the strong attacks
        if unit.fn is threats.transfer_sets:
            sup = unit.args[0]
            ts = sup.transfer_settings()
            large = [e for e in threats.epsilons(sup) if e not in {float(v) for v in ts.epsilons}]
            n += len(ts.surrogates) * len(ts.attacks) * len(large)
            n += len(threats.STRONG) * sum(e > 0 for e in threats.epsilons(sup))
    return n


def test_cached_rows_are_computed_once_as_plain_numbers_and_keyed_by_the_study_code(
        tmp_path, monkeypatch):
    import numpy as np

    from equivar.studies.units import cached_rows

    monkeypatch.setenv("EQUIVAR_CACHE_DIR", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"t": [{"a": np.float64(0.5), "k": np.int64(3), "s": "x"}]}

    first = cached_rows("test", {"x": 1}, compute)
    second = cached_rows("test", {"x": 1}, compute)
    assert len(calls) == 1
    assert first == second == {"t": [{"a": 0.5, "k": 3, "s": "x"}]}
    assert type(second["t"][0]["k"]) is int
    # a change in a study module (outside the cache's code packages) is a new entry
    digest = cache.code_digest
    monkeypatch.setattr(cache, "code_digest", lambda packages=cache.CODE_PACKAGES:
                        "edited" if packages == ("studies",) else digest(packages))
    cached_rows("test", {"x": 1}, compute)
    assert len(calls) == 2


def test_the_transfer_plan_scores_every_seed_after_its_sets():
    units = _plan(["transfer"], n_seeds=2)
    scores = [u for u in units if u.fn is transfer.score_unit]
    sets = [u for u in units if u.fn is transfer.adversarial_sets]
    assert sorted(u.args[2] for u in scores) == [0, 1]
    assert min(u.stage for u in scores) > max(u.stage for u in sets)
    # chapter 4 scores nothing of chapter 3's
    assert not [u for u in _plan(["suppression"]) if u.fn is transfer.score_unit]


def test_chapter_five_alone_sweeps_what_it_reuses_from_chapters_two_and_three():
    # regression: `equivar run open --workers 2` left the upright models, the selection and
    # the upright surrogates to the notebook, which then computed them serially (slower than
    # no workers at all)
    from equivar.studies import ladder, openings

    s = settings.OpenSettings.for_profile("default")
    names, _ = openings.datasets(s)
    alone = _plan(["open"], profile="default")
    models = {u.args for u in alone if u.fn is ladder.train_chapter_model}
    up = s.model_settings()
    assert models == {(up, n, v, up.seed) for n in names for v in openings.QUANTUM}
    trials = {u.key for u in alone if u.fn is ladder.train_trial}
    space = ladder.search_space(settings.LadderSettings.for_profile("default"))
    real = [n for n in names if n != "synthetic"]
    assert len(trials) == len(real) * len(ladder.SELECTED_VARIANTS) * len(space.configurations())
    trained_specs = {u.args[0] for u in alone if u.label.startswith("surrogate ")}
    for name in names:
        for kind in openings.CLASSICAL:
            assert openings.surrogate_spec(s, name, kind) in trained_specs
    # with chapters 2 and 3 in the same sweep, nothing is listed twice
    joint = _plan(["sector-reliance", "transfer", "open"], profile="default")
    keys = [u.key for u in joint]
    assert len(keys) == len(set(keys))
    assert trials <= {u.key for u in _plan(["sector-reliance"], profile="default")}


def test_chapter_five_alone_sweeps_its_finer_grids_attacks_and_noise_study():
    # regression: under default, `equivar run open` spent about 5 minutes in the notebook on
    # the ladder's finer-sampling rungs, the α = 0 models and the noisy evaluations
    from equivar.studies import ladder, openings, transfer

    s = settings.OpenSettings.for_profile("default")
    names, _ = openings.datasets(s)
    alone = _plan(["open"], profile="default")
    ladder_s = settings.LadderSettings.for_profile("default")
    plan = ladder.rung_plan(ladder_s)
    rung_units = [u for u in alone if u.fn is ladder.train_rung]
    shared = [n for n in ladder.selection_datasets(ladder_s)[0] if n in names]
    assert shared and {u.args[1] for u in rung_units} == set(shared)
    indices = {u.args[2] for u in rung_units}
    assert indices == {i for i, (_, _, c) in enumerate(plan)
                       if c.get("n_rings", 16) <= openings.GRID_MAX_RINGS}
    assert any(c.get("n_rings", 16) > openings.GRID_MAX_RINGS for _, _, c in plan)  # left out
    # chapter 2's and chapter 3's own units (one key in a joint sweep)
    assert {u.key for u in rung_units} <= {u.key for u in _plan(["sector-reliance"],
                                                                  profile="default")}
    attacks = {u.key for u in alone if u.fn is transfer.adversarial_sets}
    assert len(attacks) == len(names)
    assert attacks <= {u.key for u in _plan(["transfer"], profile="default")}
    projected = [u for u in alone if u.fn is openings.train_projected_model]
    noisy = [u for u in alone if u.fn is openings.noise_rows]
    assert sorted(u.args[2] for u in projected) == sorted(u.args[1] for u in noisy) \
        == sorted(openings.INVARIANT)
    assert min(u.stage for u in noisy) > max(u.stage for u in projected + rung_units)

