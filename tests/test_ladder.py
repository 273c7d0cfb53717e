"""equivar.studies.ladder: the rungs it lists, pixel coverage, selected chapter models."""
from __future__ import annotations

import pandas as pd

from equivar import settings
from equivar.studies import ladder


def test_pixel_coverage_grows_with_rings_angles_and_offsets():
    base = ladder.pixel_coverage(16, 8, 28, 28)
    assert base < ladder.pixel_coverage(16, 8, 28, 28, ring_offset=0.2)
    # more rings on 8 rays read hardly any new pixel: the rays are the limit
    assert base <= ladder.pixel_coverage(32, 8, 28, 28) < base + 20
    assert base < ladder.pixel_coverage(16, 16, 28, 28)


def test_rung_count_is_known_without_training():
    s = settings.LadderSettings.for_profile("smoke")
    listed = ladder.rungs(s, "digits")
    assert len(listed) == ladder.n_rungs(s)
    assert len({spec for _, spec in listed}) == len(listed)  # every rung a different model


def test_chapter_models_follow_the_models_setting():
    fixed = settings.RelianceSettings.for_profile("smoke", models="fixed")
    spec = ladder.model_spec(fixed, "digits", "sector", 0)
    assert (spec.n_layers, spec.lr) == (fixed.n_layers, fixed.lr)
    chosen = ladder.model_spec(settings.RelianceSettings.for_profile("smoke"), "digits",
                               "sector", 0)
    tried, picked, _ = ladder.selection(settings.LadderSettings.for_profile("smoke"))
    row = picked[(picked["dataset"] == "digits") & (picked["variant"] == "sector")].iloc[0]
    assert (chosen.n_layers, chosen.lr, chosen.epochs) == (row["n_layers"], row["lr"],
                                                           row["epochs"])
    assert len(tried) == 3 * settings.LadderSettings.for_profile("smoke").selection_budget


def test_ceiling_gaps():
    table = pd.DataFrame([
        dict(dataset="d", family="linear probe", rung="probe: west-parity", test_accuracy=0.7),
        dict(dataset="d", family="linear probe", rung="probe: sector-blocks", test_accuracy=0.8),
        dict(dataset="d", family="ideal measurement", rung="ideal: west", test_accuracy=0.6),
        dict(dataset="d", family="ideal measurement", rung="ideal: sector", test_accuracy=0.7),
        dict(dataset="d", family="quantum", rung="West, selected (16×8)", variant="west",
             test_accuracy=0.5),
        dict(dataset="d", family="quantum", rung="West, 32 rings", variant="west",
             test_accuracy=0.55),
        dict(dataset="d", family="quantum", rung="sector-resolved, selected (16×8)",
             variant="sector", test_accuracy=0.65)])
    gaps = ladder.ceiling_gaps(table).set_index("variant")
    assert abs(gaps.loc["west", "gap to probe"] - 0.2) < 1e-12
    assert gaps.loc["west", "best rung"] == 0.55
    assert abs(gaps.loc["sector", "gap to probe"] - 0.15) < 1e-12


def test_reference_rungs_are_a_cached_unit_of_the_sweep():
    from equivar import cache

    s = settings.LadderSettings.for_profile("smoke", n_train=120, n_valid=60, n_test=60,
                                            selection_epochs=2)
    labels = [u.label for u in ladder.units(s)]
    assert "ladder digits: probes and ideal measurements" in labels
    first = ladder.reference_rows(s, "digits")
    kinds = {r["rung"] for r in first}
    assert kinds == {f"probe: {k}" for k in ladder.probes.FEATURE_SETS} | \
        {f"ideal: {v}" for v in ladder.VARIANTS}
    assert all(0 <= r["test_accuracy"] <= 1 for r in first)
    hits = [e for e in cache.entries() if e["kind"] == "probe"]
    assert len(hits) == 1 and hits[0]["status"] == "ok"
    assert ladder.reference_rows(s, "digits") == first     # read back, not refitted


def test_selection_covers_every_dataset_a_chapter_trains_on():
    s = settings.LadderSettings.for_profile("paper")
    names, _ = ladder.selection_datasets(s, also=("synthetic", "fashion-mnist", "mnist",
                                                  "digits"))
    # the ladder's own first, then the chapter's real datasets, each once; synthetic keeps the
    # chapter's settings (no selection)
    # (mnist is replaced by mnist-5k where it cannot be downloaded, as in every chapter)
    assert names in (["fashion-mnist", "mnist", "digits"], ["fashion-mnist", "mnist-5k", "digits"])
    listed = ladder.units(s, also=("digits",))
    assert "selection digits/west trial 0" in [u.label for u in listed if u.stage == 0]
    assert not any(u.label.startswith("ladder digits") for u in listed)


def test_selection_trial_units_train_exactly_what_the_search_reads(tmp_path, monkeypatch):
    from equivar import cache
    from equivar.learn import select

    monkeypatch.setenv("EQUIVAR_CACHE_DIR", str(tmp_path))
    space = select.SearchSpace(n_layers=(1, 2), lr=(0.05,), scale=(10.0,),
                               schedule=("constant",), budget=2, max_epochs=2, patience=1,
                               n_train=80, n_valid=40, batch_size=32)
    for i in range(len(space.configurations())):
        ladder.train_trial(space, "digits", "west", i)
    trained = {e["key"] for e in cache.entries() if e["kind"] == "model"}
    assert len(trained) == 2
    select.search(space, "digits", "west")       # every trial a cache hit: nothing new
    assert {e["key"] for e in cache.entries() if e["kind"] == "model"} == trained
