"""equivar.adversary.defences: augmentation of the training set."""
from __future__ import annotations

import numpy as np
import pytest

from equivar import data
from equivar.adversary import defences


def test_gaussian_augmentation():
    x, y = data.load("digits", "train", n=20)
    ax, ay = defences.augmented_training_set(x, y, "gaussian", 0.1, seed=0)
    assert ax.shape == (40, 8, 8) and np.array_equal(ay, np.concatenate([y, y]))
    assert np.array_equal(ax[:20], x) and 0 <= ax.min() and ax.max() <= 1
    assert 0.05 < np.std(ax[20:] - x) < 0.12
    again, _ = defences.augmented_training_set(x, y, "gaussian", 0.1, seed=0)
    assert np.array_equal(ax, again)


def test_augmentation_errors():
    x, y = data.load("digits", "train", n=4)
    with pytest.raises(ValueError, match="needs a surrogate"):
        defences.augmented_training_set(x, y, "pgd", 0.1, seed=0)
    with pytest.raises(ValueError, match="augmentation must be"):
        defences.augmented_training_set(x, y, "mixup", 0.1, seed=0)
