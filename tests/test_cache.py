"""equivar.cache: atomic writes, keyed results, interrupted writes leave nothing."""
from __future__ import annotations

import pytest
import torch

from equivar import cache


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUIVAR_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_atomic_path_interrupted_leaves_old_content(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with cache.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_cached_computes_once_and_keys_on_params(cache_dir):
    calls = []

    def compute():
        calls.append(1)
        return {"w": torch.arange(3.0), "loss": [1.0, 0.5]}

    first, hit1 = cache.cached("model", {"a": 1}, compute)
    second, hit2 = cache.cached("model", {"a": 1}, compute)
    third, hit3 = cache.cached("model", {"a": 2}, compute)
    assert (hit1, hit2, hit3) == (False, True, False) and len(calls) == 2
    assert torch.equal(first["w"], second["w"]) and second["loss"] == [1.0, 0.5]
    assert len(cache.entries()) == 2


def test_interrupted_computation_leaves_no_entry(cache_dir):
    def compute():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.cached("model", {"a": 1}, compute)
    assert cache.entries() == [] and not list(cache_dir.rglob("*.pt"))


def test_interrupted_write_leaves_no_entry(cache_dir, monkeypatch):
    def broken_save(obj, path):
        with open(path, "wb") as handle:
            handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        cache.cached("model", {"a": 1}, lambda: {"w": torch.zeros(2)})
    assert not list(cache_dir.rglob("*.pt")) and not list(cache_dir.rglob("*.part"))


def test_corrupt_entry_is_recomputed(cache_dir):
    cache.cached("model", {"a": 1}, lambda: {"w": torch.ones(2)})
    (entry,) = cache_dir.rglob("*.pt")
    entry.write_bytes(b"garbage")
    result, hit = cache.cached("model", {"a": 1}, lambda: {"w": torch.zeros(2)})
    assert not hit and torch.equal(result["w"], torch.zeros(2))


def test_npz_entries_are_checksummed(cache_dir):
    import numpy as np

    arrays = {"images": np.arange(12, dtype=np.float32).reshape(3, 4), "labels": np.arange(3)}
    first, hit = cache.cached("adversarial", {"eps": 0.1}, lambda: arrays, fmt="npz")
    again, hit2 = cache.cached("adversarial", {"eps": 0.1}, lambda: arrays, fmt="npz")
    assert not hit and hit2 and np.array_equal(again["images"], arrays["images"])
    (entry,) = cache_dir.rglob("*.npz")
    record = __import__("json").loads(entry.with_suffix(".json").read_text())
    assert record["sha256"] == cache.sha256_file(entry)
    # a changed file (same size, different bytes) fails the checksum and is recomputed
    raw = bytearray(entry.read_bytes())
    raw[-30] ^= 0xFF
    entry.write_bytes(bytes(raw))
    calls = []
    result, hit3 = cache.cached("adversarial", {"eps": 0.1},
                                lambda: calls.append(1) or arrays, fmt="npz")
    assert not hit3 and calls == [1]


def test_bad_format(cache_dir):
    with pytest.raises(ValueError, match="fmt must be 'pt' or 'npz'"):
        cache.cached("x", {}, dict, fmt="csv")


def test_key_depends_on_code(monkeypatch):
    key = cache.cache_key("model", {"a": 1})
    monkeypatch.setattr(cache, "code_digest", lambda: "different")
    assert cache.cache_key("model", {"a": 1}) != key


def test_clear(cache_dir):
    cache.cached("model", {"a": 1}, lambda: {"w": torch.ones(1)})
    cache.cached("attack", {"a": 1}, lambda: {"w": torch.ones(1)})
    assert cache.clear("model") == 1 and len(cache.entries()) == 1
    assert cache.clear() == 1 and cache.entries() == []
