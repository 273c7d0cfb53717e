"""equivar.settings and equivar.provenance: profiles, overrides, type checks, provenance."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from equivar import settings
from equivar.provenance import SOURCES, provenance_table, setting


def all_settings_classes():
    return [c for c in vars(settings).values() if isinstance(c, type)
            and issubclass(c, settings.Settings) and c is not settings.Settings]


@pytest.mark.parametrize("cls", all_settings_classes())
@pytest.mark.parametrize("profile", settings.PROFILES)
def test_every_profile_builds(cls, profile):
    settings = cls.for_profile(profile)
    assert settings.profile == profile


@pytest.mark.parametrize("cls", all_settings_classes() + [settings.Sampling])
def test_every_field_has_a_known_source_and_a_reason(cls):
    for f in dataclasses.fields(cls):
        assert f.metadata.get("source") in SOURCES, f.name
        assert len(f.metadata.get("why", "")) > 10, f.name


def test_overrides_and_none():
    s = settings.TwirlSettings.for_profile("smoke", n_per_class=7, seed=None,
                                         datasets=["digits"])
    assert s.n_per_class == 7 and s.seed == 0 and s.datasets == ("digits",)


def test_smoke_is_smaller_than_paper():
    smoke, paper = (settings.TwirlSettings.for_profile(p) for p in ("smoke", "paper"))
    assert smoke.n_per_class < paper.n_per_class and smoke.n_check < paper.n_check


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_per_klass=3), r"has no setting\(s\) \['n_per_klass'\]"),
    (dict(n_per_class="many"), "n_per_class must be int, got 'many'"),
    (dict(n_per_class=True), "n_per_class must be int"),
    (dict(datasets=["cifar"]), "unknown dataset 'cifar'"),
])
def test_bad_overrides(kwargs, match):
    with pytest.raises(ValueError, match=match):
        settings.TwirlSettings.for_profile("smoke", **kwargs)


def test_unknown_profile():
    with pytest.raises(ValueError, match="profile must be one of"):
        settings.TwirlSettings.for_profile("fast")


def test_provenance_table_lists_every_field():
    s = settings.TwirlSettings.for_profile("default")
    table = provenance_table(s, settings.SAMPLING)
    names = {f.name for f in dataclasses.fields(s)} | {f.name for f in dataclasses.fields(settings.Sampling)}
    assert set(table["setting"]) == names
    assert table.loc[table["setting"] == "n_angles", "source"].item() == "west"


def test_setting_rejects_unknown_source():
    with pytest.raises(ValueError, match="unknown source 'paper'"):
        setting(1, "paper", "a reason")


def test_sampling_settings_sample_images():
    import numpy as np

    from equivar.core.rings import sample_grid

    grids = sample_grid(np.ones((2, 8, 8)), settings.SAMPLING)
    assert grids.shape == (2, settings.SAMPLING.n_rings, settings.SAMPLING.n_angles)


@pytest.mark.parametrize("cls,kwargs,match", [
    (settings.RelianceSettings, dict(n_seeds=0), "n_seeds must be at least 1"),
    (settings.RelianceSettings, dict(variants=("cnn",)), r"variants may only contain"),
    (settings.RelianceSettings, dict(planted_k=5), "planted_k must be 1, 2 or 3"),
    (settings.RelianceSettings, dict(lr=-1.0), "lr and scale must be positive"),
    (settings.TransferSettings, dict(pgd_steps=0), "pgd_steps must be at least 1"),
    (settings.TransferSettings, dict(epsilons=(0.0, 5.0)), r"epsilons must lie in \[0, 1\]"),
    (settings.TransferSettings, dict(epsilons=(0.0, 0.2)), "must contain 0 and reference_eps=0.1"),
    (settings.TransferSettings, dict(surrogates=("resnet",)), "surrogates may only contain"),
    (settings.SuppressionSettings, dict(alphas=(1.0, 0.5)), "alphas must contain 1"),
    (settings.SuppressionSettings, dict(alphas=(1.0, -0.5, 0.0)), r"alphas must lie in \[0, 1\]"),
    (settings.SuppressionSettings, dict(control_sectors=(0, 7)), "control_sectors may only contain"),
    (settings.SuppressionSettings, dict(variants=("baseline",)), "variants may only contain"),
])
def test_range_checks(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls.for_profile("default", **kwargs)


def test_whole_numbers_are_accepted_as_floats():
    s = settings.TransferSettings.for_profile("default", epsilons=(0, 0.1, 1))
    assert s.epsilons == (0, 0.1, 1)


def test_declared_names_match_the_implementations():
    """The settings declare names without importing the mechanisms; they must agree."""
    from equivar import data
    from equivar.core import model
    from equivar.learn import surrogates

    assert set(settings.ALL_DATASETS) == set(data.DATASETS)
    assert model.VARIANTS == settings.VARIANTS
    for kind in settings.SURROGATES:
        assert isinstance(surrogates.SurrogateSpec("digits", kind, 0, 10, 1).build(),
                          torch.nn.Module)
    assert set(settings.VARIANT_LABELS) == set(settings.VARIANTS)


def test_chapter_3_baselines_take_the_first_seeds_up_to_their_profiles_count():
    from equivar.settings import BaselineSettings, TransferSettings

    paper = TransferSettings.for_profile("paper")
    b = BaselineSettings.for_chapter(paper)
    assert (b.seed, b.n_seeds, b.datasets) == (0, 4, paper.datasets)
    few = TransferSettings.for_profile("paper", seed=3, n_seeds=2, datasets=["digits"])
    b = BaselineSettings.for_chapter(few)
    assert (b.seed, b.n_seeds, b.datasets, b.profile) == (3, 2, ("digits",), "paper")
