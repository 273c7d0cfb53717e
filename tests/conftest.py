"""Shared fixtures: tolerances, seeds, RNG hygiene, isolated caches."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from equivar.runtime import pin_threads

# the project's thread policy (equivar.runtime) in the test process too: results are bitwise
# reproducible only under one policy, and the sweep test compares with worker processes
pin_threads()
torch.set_num_threads(1)

ATOL = 1e-10  # exact identities (invariance, twirl, sector closed forms, fast path)


@pytest.fixture
def atol() -> float:
    return ATOL


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded numpy generator for each test."""
    return np.random.default_rng(20260416)


@pytest.fixture(autouse=True)
def _restore_rng_state():
    """Tests may seed global RNGs; put them back so test order never matters."""
    np_state, py_state, torch_state = np.random.get_state(), random.getstate(), torch.get_rng_state()
    yield
    np.random.set_state(np_state)
    random.setstate(py_state)
    torch.set_rng_state(torch_state)


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Result caches of a test session live in a temporary directory."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EQUIVAR_CACHE_DIR", str(tmp_path_factory.mktemp("equivar-cache")))
    yield
    mp.undo()


def random_state(rng, dim: int, complex_: bool = False) -> np.ndarray:
    """A random unit vector of dimension ``dim``."""
    v = rng.standard_normal(dim) + (1j * rng.standard_normal(dim) if complex_ else 0)
    return v / np.linalg.norm(v)
