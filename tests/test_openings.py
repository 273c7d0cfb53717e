"""equivar.studies.openings (chapter 5): rotations at any angle and the rules of the chapter."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from equivar.core import rings
from equivar.core.model import ModelConfig, QuantumClassifier, amplitudes
from equivar.data import rotated
from equivar.settings import SAMPLING, OpenSettings, Sampling
from equivar.studies import openings


def images(n=4, size=12, seed=0):
    return np.random.default_rng(seed).random((n, size, size))


def test_turned_sampling_is_the_ring_grid_at_zero_and_a_cyclic_shift_on_c8():
    x = images()
    base = rings.sample_grid(x)
    assert np.abs(openings.sample_turned(x, 0.0) - base).max() < 1e-12
    for m in range(1, 8):
        turned = openings.sample_turned(x, 2 * np.pi * m / 8)
        assert np.abs(turned - rings.rotate(base, m)).max() < 1e-12
    # a quarter turn of the pixels is a quarter turn of the interpolant: both ways agree
    pixels = rings.sample_grid(rotated.rotate_images(x, np.pi / 2))
    assert np.abs(openings.sample_turned(x, np.pi / 2) - pixels).max() < 1e-12
    # between the multiples the samples are new points (a negative control)
    assert np.abs(openings.sample_turned(x, np.pi / 8) - base).max() > 1e-3
    offset = Sampling(n_rings=8, n_angles=16, ring_offset=0.1)
    g = rings.sample_grid(x, offset)
    assert np.abs(openings.sample_turned(x, 2 * np.pi * 3 / 16, offset) - rings.rotate(g, 3)) \
        .max() < 1e-12


@pytest.mark.parametrize("variant", ["west", "sector"])
def test_invariant_models_are_exact_on_c8_and_move_between(variant):
    cfg = ModelConfig(n_rad=3, n_ang=3, n_layers=3, variant=variant, n_classes=8)
    model = QuantumClassifier(cfg, seed=3)
    x = images(6, 16, 1)
    sampling = Sampling(n_rings=8, n_angles=8)
    with torch.no_grad():
        f = lambda a: model(torch.as_tensor(amplitudes(openings.sample_turned(x, a, sampling))))
        base = f(0.0)
        assert max(float((f(2 * np.pi * m / 8) - base).abs().max()) for m in range(8)) < 1e-10
        assert float((f(np.pi / 8) - base).abs().max()) > 1e-4


def gap_table(on_group_change, between_change):
    angles = 2 * np.pi * np.arange(17) / 16
    rows = []
    for a in angles:
        on = np.isclose((a / (np.pi / 4)) % 1, 0) or np.isclose((a / (np.pi / 4)) % 1, 1)
        change = on_group_change if on else between_change
        rows.append({"dataset": "d", "model": "west", "rotation": "ring grid", "angle": a,
                     "degrees": np.degrees(a), "logit_change": change,
                     "logit_change_max": change, "prediction_change": 0.0 if on else 0.2})
    return pd.DataFrame(rows)


def test_exactness_rule_separates_the_group_from_the_angles_between():
    table = gap_table(1e-14, 0.5)
    pixels = table.assign(rotation="pixels", logit_change_max=table["angle"] % (np.pi / 2))
    ok = openings.exactness(pd.concat([table, pixels])).iloc[0]
    assert ok["max on quarter turns (pixels)"] < 1e-12
    assert ok["exact on C_N"] and ok["max on C_N"] == 1e-14 and ok["max between"] == 0.5
    assert ok["prediction change between"] == pytest.approx(0.2)
    bad = openings.exactness(gap_table(1e-6, 0.5)).iloc[0]
    assert not bad["exact on C_N"]


def test_first_stable_needs_every_larger_count_to_be_good():
    shots = [10, 100, 1000, 10000]
    assert openings._first_stable(shots, [100, 1000, 10000]) == 100
    assert openings._first_stable(shots, [10, 1000, 10000]) == 1000  # 100 failed after 10
    assert np.isnan(openings._first_stable(shots, [10, 100]))


def test_shots_needed_reads_accuracy_and_margins():
    acc = pd.DataFrame([{"dataset": "d", "model": "west", "data": "clean", "shots": s,
                         "accuracy": a} for s, a in ((0, 0.80), (10, 0.5), (100, 0.795),
                                                     (1000, 0.80))])
    margins = pd.DataFrame([{"dataset": "d", "variant": "west", "shots": s,
                             "top sector identified": r, "ordering resolved": o}
                            for s, r, o in ((10, 0.5, False), (100, 0.92, True),
                                            (1000, 0.99, True))])
    row = openings.shots_needed({"accuracy": acc, "margins": margins}).iloc[0]
    assert row["shots for accuracy"] == 100
    assert row["shots for per-image top sector"] == 100
    assert row["shots for mean ordering"] == 100


def test_rotated_names_and_settings_are_checked():
    assert openings.rotated_name("mnist-5k") == "mnist-5k+rot"
    with pytest.raises(ValueError, match="not a rotated dataset"):
        openings.rotated_name("synthetic")
    with pytest.raises(ValueError, match="gap_angles"):
        OpenSettings.for_profile("smoke", gap_angles=10)
    with pytest.raises(ValueError, match="upright"):
        OpenSettings.for_profile("smoke", datasets=("digits+rot",))
    with pytest.raises(ValueError, match="shots"):
        OpenSettings.for_profile("smoke", shots=(100, 10))
    assert len(openings.gap_angles(OpenSettings.for_profile("smoke"))) == 17


def test_noise_sweep_lists_every_kind_at_every_rate():
    settings = OpenSettings.for_profile("smoke")
    sweep = openings.noise_models(settings)
    assert sweep[0][0] == "none" and sweep[0][2].rate == 0 and sweep[0][2].readout_error == 0
    kinds = {(label, rate) for label, rate, _ in sweep[1:]}
    assert kinds == {(k, r) for k in ("depolarizing", "amplitude damping", "readout error")
                     for r in settings.noise_rates}
    readout = [nm for label, _, nm in sweep if label == "readout error"]
    assert all(nm.rate == 0 and nm.readout_error > 0 for nm in readout)
    assert SAMPLING.n_angles == 8  # the chapter's C_8 (gap_angles are checked against it)
