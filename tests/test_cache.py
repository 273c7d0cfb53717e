"""equivar.cache: atomic writes, keyed results, interrupted writes leave nothing."""
from __future__ import annotations

import os
import stat

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
    def broken_save(obj, target):
        target.write(b"partial")
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
        cache.cached("model", {}, dict, fmt="csv")
    with pytest.raises(ValueError, match="unknown cache kind 'x'; valid kinds: model"):
        cache.cached("x", {}, dict)


def test_key_depends_on_code(monkeypatch):
    key = cache.cache_key("model", {"a": 1})
    monkeypatch.setattr(cache, "code_digest", lambda: "different")
    assert cache.cache_key("model", {"a": 1}) != key


def test_clear(cache_dir):
    cache.cached("model", {"a": 1}, lambda: {"w": torch.ones(1)})
    cache.cached("surrogate", {"a": 1}, lambda: {"w": torch.ones(1)})
    assert cache.clear("model") == 1 and len(cache.entries()) == 1
    assert cache.clear() == 1 and cache.entries() == []


# ----------------------------------------------------------------- clear deletes only its own

@pytest.mark.parametrize("kind", ["../../foreign", "/abs/path", "model/..", "", "results"])
def test_clear_refuses_unknown_kinds(cache_dir, kind):
    with pytest.raises(ValueError, match="unknown cache kind"):
        cache.clear(kind)


def test_clear_never_leaves_the_cache(tmp_path, monkeypatch):
    # regression: `cache clear ../../foreign` deleted *.json (recursively) outside the cache
    monkeypatch.setenv("EQUIVAR_CACHE_DIR", str(tmp_path / "a" / "cache"))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.json").write_text("{}")
    (foreign / "notes.pt").write_bytes(b"mine")
    with pytest.raises(ValueError):
        cache.clear("../../foreign")
    assert (foreign / "notes.json").exists() and (foreign / "notes.pt").exists()


def test_clear_keeps_files_the_cache_did_not_write(cache_dir):
    # regression: a plain clear deleted a user's notes.json under results/ and below
    cache.cached("model", {"a": 1}, lambda: {"w": torch.ones(1)})
    results = cache_dir / "results"
    mine = [results / "notes.json", results / "model" / "notes.json",
            results / "model" / "sub" / "deep.json", results / "model" / "notes.pt",
            results / "model" / ("0" * 24 + ".json"),   # right name, not a record of ours
            results / "model" / ("1" * 24 + ".json")]
    for path in mine:
        path.parent.mkdir(parents=True, exist_ok=True)
    mine[0].write_text('{"kind": "model"}')
    mine[1].write_text("[1, 2]")
    mine[2].write_text('{"kind": "model", "key": "deep", "format": "pt"}')
    mine[3].write_bytes(b"user data")
    mine[4].write_text('{"kind": "model", "key": "another", "format": "pt"}')
    mine[5].write_text('{"kind": "surrogate", "key": "' + "1" * 24 + '", "format": "pt"}')
    (results / "model" / ("1" * 24 + ".pt")).write_bytes(b"user data")
    assert cache.clear() == 1
    assert all(path.exists() for path in mine)
    assert (results / "model" / ("1" * 24 + ".pt")).exists()
    assert not [e for e in cache.entries() if e["status"] == "ok"]


def test_clear_with_the_cache_in_home_spares_the_users_results(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "results" / "thesis").mkdir(parents=True)
    (home / "results" / "thesis" / "table.json").write_text('{"a": 1}')
    (home / "results" / "model").mkdir()
    (home / "results" / "model" / "run.json").write_text('{"kind": "model"}')
    monkeypatch.setenv("EQUIVAR_CACHE_DIR", str(home))
    assert cache.clear() == 0
    assert (home / "results" / "thesis" / "table.json").exists()
    assert (home / "results" / "model" / "run.json").exists()


def test_partial_files_are_listed_and_cleared(cache_dir):
    cache.cached("model", {"a": 1}, lambda: {"w": torch.ones(1)})
    folder = cache_dir / "results" / "model"
    key = cache.cache_key("model", {"a": 2})
    part = folder / f".{key}.pt.abc123.part"
    part.write_bytes(b"half")            # left by a writer that was killed
    stranger = folder / ".notes.part"    # not named after an entry: not ours
    stranger.write_text("x")
    statuses = sorted(e["status"] for e in cache.entries())
    assert statuses == ["ok", "partial"]
    assert cache.clear() == 1 and not part.exists() and stranger.exists()


def test_partial_files_of_a_key_are_removed_when_it_is_computed(cache_dir):
    key = cache.cache_key("model", {"a": 1})
    folder = cache_dir / "results" / "model"
    folder.mkdir(parents=True)
    (folder / f".{key}.pt.dead.part").write_bytes(b"half")
    cache.cached("model", {"a": 1}, lambda: {"w": torch.ones(1)})
    assert not list(folder.glob("*.part"))


@pytest.mark.parametrize("text", ["[1, 2, 3]", '"a string"', "42", "null", "{not json"])
def test_record_that_is_not_an_object_is_a_corrupt_entry(cache_dir, text):
    # regression: valid JSON that is not an object crashed cached() and entries()
    cache.cached("model", {"a": 1}, lambda: {"w": torch.ones(2)})
    (meta,) = (cache_dir / "results" / "model").glob("*.json")
    meta.write_text(text)
    assert [e["status"] for e in cache.entries()] == ["not an entry"]
    result, hit = cache.cached("model", {"a": 1}, lambda: {"w": torch.zeros(2)})
    assert not hit and torch.equal(result["w"], torch.zeros(2))
    assert [e["status"] for e in cache.entries()] == ["ok"]


# ----------------------------------------------------------------- permissions and locking

@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_files_honour_the_umask(tmp_path, umask):
    # regression: every atomically written file was 0600 (mkstemp), whatever the umask
    old = os.umask(umask)
    try:
        with cache.atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o666 & ~umask


def test_atomic_path_refuses_a_directory(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        with cache.atomic_path(tmp_path):
            pass


def _compute_in_process(args):
    cache_dir, value = args
    os.environ["EQUIVAR_CACHE_DIR"] = cache_dir
    import time

    import numpy as np

    from equivar import cache as worker_cache

    def compute():
        time.sleep(0.3)  # long enough for the two writers to overlap
        return {"images": np.full(1000, value, dtype=np.float32)}

    result, hit = worker_cache.cached("adversarial", {"same": "key"}, compute, fmt="npz")
    return float(result["images"][0]), hit


def test_two_writers_of_one_key_compute_it_once(cache_dir):
    # regression: two writers could leave one's data under the other's checksum
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        out = pool.map(_compute_in_process, [(str(cache_dir), 1.0), (str(cache_dir), 2.0)])
    assert sorted(hit for _, hit in out) == [False, True]
    assert out[0][0] == out[1][0]        # the second got the first's result, not its own
    (entry,) = [e for e in cache.entries() if e["status"] == "ok"]
    assert entry["sha256"] == cache.sha256_file(entry["path"])


def test_identical_results_give_identical_files(tmp_path, monkeypatch):
    # the sweep test compares workers' entries with a serial run's by checksum
    digests = []
    for name in ("a", "b"):
        monkeypatch.setenv("EQUIVAR_CACHE_DIR", str(tmp_path / name))
        cache.cached("model", {"a": 1}, lambda: {"w": torch.arange(4.0), "loss": [0.5]})
        (entry,) = [e for e in cache.entries() if e["status"] == "ok"]
        digests.append(entry["sha256"])
    assert digests[0] == digests[1]
