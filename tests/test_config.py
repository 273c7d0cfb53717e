"""equivar.config and equivar.provenance: profiles, overrides, type checks, provenance."""
from __future__ import annotations

import dataclasses

import pytest

from equivar import config
from equivar.provenance import SOURCES, provenance_table, setting


def all_settings_classes():
    return [c for c in vars(config).values() if isinstance(c, type)
            and issubclass(c, config.Settings) and c is not config.Settings]


@pytest.mark.parametrize("cls", all_settings_classes())
@pytest.mark.parametrize("profile", config.PROFILES)
def test_every_profile_builds(cls, profile):
    settings = cls.for_profile(profile)
    assert settings.profile == profile


@pytest.mark.parametrize("cls", all_settings_classes() + [config.Sampling])
def test_every_field_has_a_known_source_and_a_reason(cls):
    for f in dataclasses.fields(cls):
        assert f.metadata.get("source") in SOURCES, f.name
        assert len(f.metadata.get("why", "")) > 10, f.name


def test_overrides_and_none():
    s = config.TwirlSettings.for_profile("smoke", n_per_class=7, seed=None,
                                         datasets=["digits"])
    assert s.n_per_class == 7 and s.seed == 0 and s.datasets == ("digits",)


def test_smoke_is_smaller_than_paper():
    smoke, paper = (config.TwirlSettings.for_profile(p) for p in ("smoke", "paper"))
    assert smoke.n_per_class < paper.n_per_class and smoke.n_check < paper.n_check


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_per_klass=3), r"has no setting\(s\) \['n_per_klass'\]"),
    (dict(n_per_class="many"), "n_per_class must be int, got 'many'"),
    (dict(n_per_class=True), "n_per_class must be int"),
    (dict(datasets=["cifar"]), "unknown dataset 'cifar'"),
])
def test_bad_overrides(kwargs, match):
    with pytest.raises(ValueError, match=match):
        config.TwirlSettings.for_profile("smoke", **kwargs)


def test_unknown_profile():
    with pytest.raises(ValueError, match="profile must be one of"):
        config.TwirlSettings.for_profile("fast")


def test_provenance_table_lists_every_field():
    s = config.TwirlSettings.for_profile("default")
    table = provenance_table(s, config.SAMPLING)
    names = {f.name for f in dataclasses.fields(s)} | {f.name for f in dataclasses.fields(config.Sampling)}
    assert set(table["setting"]) == names
    assert table.loc[table["setting"] == "n_angles", "source"].item() == "west"


def test_setting_rejects_unknown_source():
    with pytest.raises(ValueError, match="unknown source 'paper'"):
        setting(1, "paper", "a reason")


def test_sampling_settings_sample_images():
    import numpy as np

    grids = config.SAMPLING.sample(np.ones((2, 8, 8)))
    assert grids.shape == (2, config.SAMPLING.n_rings, config.SAMPLING.n_angles)


@pytest.mark.parametrize("cls,kwargs,match", [
    (config.RelianceSettings, dict(n_seeds=0), "n_seeds must be at least 1"),
    (config.RelianceSettings, dict(variants=("cnn",)), r"variants may only contain"),
    (config.RelianceSettings, dict(planted_k=5), "planted_k must be 1, 2 or 3"),
    (config.RelianceSettings, dict(lr=-1.0), "lr and scale must be positive"),
    (config.TransferSettings, dict(pgd_steps=0), "pgd_steps must be at least 1"),
    (config.TransferSettings, dict(epsilons=(0.0, 5.0)), r"epsilons must lie in \[0, 1\]"),
    (config.TransferSettings, dict(epsilons=(0.0, 0.2)), "must contain 0 and reference_eps=0.1"),
    (config.TransferSettings, dict(surrogates=("resnet",)), "surrogates may only contain"),
    (config.SuppressionSettings, dict(alphas=(1.0, 0.5)), "alphas must contain 1"),
    (config.SuppressionSettings, dict(alphas=(1.0, -0.5, 0.0)), r"alphas must lie in \[0, 1\]"),
    (config.SuppressionSettings, dict(control_sectors=(0, 7)), "control_sectors may only contain"),
    (config.SuppressionSettings, dict(variants=("baseline",)), "variants may only contain"),
])
def test_range_checks(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls.for_profile("default", **kwargs)


def test_whole_numbers_are_accepted_as_floats():
    s = config.TransferSettings.for_profile("default", epsilons=(0, 0.1, 1))
    assert s.epsilons == (0, 0.1, 1)
