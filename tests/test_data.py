"""equivar.data: real Fashion-MNIST files, IDX/amat fixtures, downloads, errors."""
from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.server
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from equivar import data
from equivar.core import rings, sectors

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


# ------------------------------------------------------------------ helpers writing fixtures

def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array as an IDX file."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def fake_idx_dataset(rng, n=6):
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


@contextlib.contextmanager
def serve(directory: Path):
    """Serve ``directory`` over HTTP on localhost; yields the base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    target = tmp_path / "data"
    monkeypatch.setenv("EQUIVAR_DATA_DIR", str(target))
    data._load_full.cache_clear()
    yield target
    data._load_full.cache_clear()


def register_fixture_dataset(monkeypatch, name, base_url, files, archive_hashes=None):
    """Point dataset ``name`` at fixture files: {key: (filename, content_bytes)}."""
    archive_hashes = archive_hashes or {}
    specs = {key: data.RemoteFile(fname, (base_url + fname,),
                                  archive_hashes.get(key),
                                  hashlib.sha256(content).hexdigest())
             for key, (fname, content) in files.items()}
    info = data.DATASETS[name]
    monkeypatch.setitem(data.DATASETS, name, data.DatasetInfo(
        info.name, info.classes, info.image_shape, info.splits, info.license, info.citation,
        info.source, info.needs_network, specs))
    monkeypatch.setattr(data, "DEBIAN_DIR", Path("/nonexistent-debian-dir"))


# ------------------------------------------------------------------ real Fashion-MNIST

class TestRealFashionMnist:
    """Needs the real files (make test installs dataset-fashion-mnist); fails, not skips."""

    def test_full_splits_have_the_published_sizes_and_balance(self):
        x, y = data.load("fashion-mnist", "train")
        xv, yv = data.load("fashion-mnist", "valid")
        assert x.shape == (50000, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
        assert xv.shape == (10000, 28, 28)
        assert 0.0 <= x.min() and x.max() == 1.0
        assert np.bincount(y).tolist() == [5000] * 10 and np.bincount(yv).tolist() == [1000] * 10
        # train and valid partition the published training file, in its order
        published = data._published("fashion-mnist", "train")[1]
        assert published[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
        carve = [data._validation_carve(published, s) for s in ("train", "valid")]
        assert not set(carve[0]) & set(carve[1]) and len(carve[0]) + len(carve[1]) == 60000
        assert np.array_equal(y, published[carve[0]]) and np.array_equal(yv, published[carve[1]])
        xt, yt = data.load("fashion-mnist", "test")
        assert xt.shape == (10000, 28, 28) and np.bincount(yt).tolist() == [1000] * 10

    def test_debian_files_verify_against_publisher_content_hashes(self):
        for key, spec in data.DATASETS["fashion-mnist"].files.items():
            content = gzip.decompress((DEBIAN_FASHION / spec.filename).read_bytes())
            assert hashlib.sha256(content).hexdigest() == spec.content_sha256, key

    def test_subsets_are_reproducible_and_seed_dependent(self):
        a = data.load("fashion-mnist", "test", n=50, seed=1)
        b = data.load("fashion-mnist", "test", n=50, seed=1)
        c = data.load("fashion-mnist", "test", n=50, seed=2)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        assert not np.array_equal(a[0], c[0])

    def test_returned_arrays_are_private_copies(self):
        x, _ = data.load("fashion-mnist", "test", n=3)
        x[:] = -1
        assert data.load("fashion-mnist", "test", n=3)[0].min() >= 0

    def test_locate_reports_the_debian_files(self):
        found = data.locate("fashion-mnist")
        assert all(str(DEBIAN_FASHION) in path for path in found.values())


# ------------------------------------------------------------------ IDX reader

class TestIdx:
    def test_roundtrip(self, rng):
        images, labels = fake_idx_dataset(rng)
        assert np.array_equal(data._read_idx(idx_bytes(images)), images)
        assert np.array_equal(data._read_idx(idx_bytes(labels)), labels)

    def test_bad_magic(self):
        with pytest.raises(data.ChecksumError, match="bad magic"):
            data._read_idx(b"\x01\x02\x08\x01" + b"\x00" * 8)

    def test_truncated_payload(self, rng):
        images, _ = fake_idx_dataset(rng)
        with pytest.raises(data.ChecksumError, match="payload has"):
            data._read_idx(idx_bytes(images)[:-5])


# ------------------------------------------------------------------ lookup and download

class TestDownloads:
    def _files(self, rng):
        images, labels = fake_idx_dataset(rng)
        test_images, test_labels = fake_idx_dataset(rng, n=4)
        return {"train-images": ("train-images-idx3-ubyte.gz", idx_bytes(images)),
                "train-labels": ("train-labels-idx1-ubyte.gz", idx_bytes(labels)),
                "test-images": ("t10k-images-idx3-ubyte.gz", idx_bytes(test_images)),
                "test-labels": ("t10k-labels-idx1-ubyte.gz", idx_bytes(test_labels))}, images, labels

    def _publish(self, root: Path, files):
        root.mkdir(parents=True, exist_ok=True)
        for fname, content in files.values():
            (root / fname).write_bytes(gzip.compress(content))

    def test_download_verifies_and_caches(self, rng, tmp_path, data_dir, monkeypatch):
        files, images, labels = self._files(rng)
        self._publish(tmp_path / "mirror", files)
        with serve(tmp_path / "mirror") as url:
            register_fixture_dataset(monkeypatch, "mnist", url, files)
            x, y = data.load("mnist", "train")
        assert np.array_equal(x, images / np.float32(255.0)) and np.array_equal(y, labels)
        assert (data_dir / "mnist" / "train-images-idx3-ubyte.gz").exists()
        # second load: from the cache, the server is gone
        data._load_full.cache_clear()
        assert np.array_equal(data.load("mnist", "train")[1], labels)

    def test_archive_checksum_mismatch_leaves_nothing_in_cache(self, rng, tmp_path, data_dir,
                                                               monkeypatch):
        files, _, _ = self._files(rng)
        self._publish(tmp_path / "mirror", files)
        wrong = "sha256:" + "0" * 64
        with serve(tmp_path / "mirror") as url:
            register_fixture_dataset(monkeypatch, "mnist", url, files,
                                     {k: wrong for k in files})
            with pytest.raises(data.ChecksumError,
                               match=r"train-images-idx3-ubyte\.gz.*expected sha256:0{64}"):
                data.load("mnist", "train")
        leftovers = list((data_dir / "mnist").glob("*")) if (data_dir / "mnist").exists() else []
        assert leftovers == []

    def test_content_checksum_mismatch_removes_download(self, rng, tmp_path, data_dir,
                                                        monkeypatch):
        files, _, _ = self._files(rng)
        self._publish(tmp_path / "mirror", files)
        tampered = dict(files)
        tampered["train-images"] = (files["train-images"][0], b"different content")
        with serve(tmp_path / "mirror") as url:
            register_fixture_dataset(monkeypatch, "mnist", url, tampered)
            with pytest.raises(data.ChecksumError, match="checksum mismatch.*expected [0-9a-f]{64}"):
                data.load("mnist", "train")
        assert not (data_dir / "mnist" / "train-images-idx3-ubyte.gz").exists()

    def test_corrupt_cached_file_is_set_aside_and_fetched_again(self, rng, tmp_path, data_dir,
                                                                 monkeypatch):
        files, images, _ = self._files(rng)
        self._publish(tmp_path / "mirror", files)
        cached = data_dir / "mnist" / "train-images-idx3-ubyte.gz"
        cached.parent.mkdir(parents=True)
        cached.write_bytes(gzip.compress(b"half-written"))
        with serve(tmp_path / "mirror") as url:
            register_fixture_dataset(monkeypatch, "mnist", url, files)
            with pytest.warns(UserWarning, match="moved it to train-images-idx3-ubyte.gz.invalid"):
                x, _ = data.load("mnist", "train")
        assert np.array_equal(x, images / np.float32(255.0))
        # never deleted: the user's bytes are kept beside the good copy
        assert gzip.decompress((cached.parent / (cached.name + ".invalid")).read_bytes()) \
            == b"half-written"

    def test_no_network_says_where_it_looked_and_what_to_do(self, rng, data_dir, monkeypatch):
        files, _, _ = self._files(rng)
        register_fixture_dataset(monkeypatch, "fashion-mnist",
                                 f"http://127.0.0.1:{closed_port()}/", files)
        with pytest.raises(data.DatasetNotFoundError) as err:
            data.load("fashion-mnist", "train")
        message = str(err.value)
        assert str(data_dir / "fashion-mnist") in message
        assert "apt-get install dataset-fashion-mnist" in message
        assert "EQUIVAR_DATA_DIR" in message and "ConnectionError" in message

    def test_user_dir_takes_precedence_and_accepts_uncompressed_files(self, rng, data_dir,
                                                                      monkeypatch):
        files, images, labels = self._files(rng)
        register_fixture_dataset(monkeypatch, "mnist", f"http://127.0.0.1:{closed_port()}/",
                                 files)
        (data_dir / "mnist").mkdir(parents=True)
        for fname, content in files.values():
            (data_dir / "mnist" / fname.removesuffix(".gz")).write_bytes(content)
        x, y = data.load("mnist", "train")
        assert np.array_equal(y, labels)


# ------------------------------------------------------------------ MNIST-rot (.amat in a zip)

def write_mnist_rot_zip(path: Path, rng, n_train_valid=12005, n_test=7):
    def rows(n):
        pixels = rng.random((n, 784))
        labels = rng.integers(0, 10, n)
        return "\n".join(" ".join(f"{v:.6f}" for v in p) + f" {float(l):.1f}"
                         for p, l in zip(pixels, labels)) + "\n", pixels, labels

    tv_text, tv_pixels, tv_labels = rows(n_train_valid)
    te_text, te_pixels, te_labels = rows(n_test)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(data.MNIST_ROT_MEMBERS["train_valid"], tv_text)
        archive.writestr(data.MNIST_ROT_MEMBERS["test"], te_text)
    return (tv_pixels, tv_labels), (te_pixels, te_labels)


class TestMnistRot:
    def _register(self, monkeypatch, url, md5):
        spec = data.RemoteFile("mnist_rotation_new.zip", (url,), f"md5:{md5}", None)
        info = data.DATASETS["mnist-rot"]
        monkeypatch.setitem(data.DATASETS, "mnist-rot", data.DatasetInfo(
            info.name, info.classes, info.image_shape, info.splits, info.license, info.citation,
            info.source, info.needs_network, {"archive": spec}))

    @pytest.mark.slow
    def test_standard_split_from_a_downloaded_zip(self, rng, tmp_path, data_dir, monkeypatch):
        mirror = tmp_path / "mirror"
        mirror.mkdir()
        (tv_x, tv_y), (te_x, te_y) = write_mnist_rot_zip(mirror / "mnist_rotation_new.zip", rng)
        md5 = hashlib.md5((mirror / "mnist_rotation_new.zip").read_bytes()).hexdigest()
        with serve(mirror) as url:
            self._register(monkeypatch, url + "mnist_rotation_new.zip", md5)
            x, y = data.load("mnist-rot", "train")
            xv, yv = data.load("mnist-rot", "valid")
            xt, yt = data.load("mnist-rot", "test")
        assert x.shape == (10000, 28, 28) and xv.shape == (2005, 28, 28) and xt.shape == (7, 28, 28)
        assert np.array_equal(y, tv_y[:10000]) and np.array_equal(yv, tv_y[10000:])
        assert np.allclose(xt.reshape(7, -1), te_x, atol=1e-6) and np.array_equal(yt, te_y)
        assert (data_dir / "mnist-rot" / "mnist_rotation_new.npz").exists()

    def test_corrupt_parsed_file_is_rebuilt(self, rng, tmp_path, data_dir, monkeypatch):
        zpath = data_dir / "mnist-rot" / "mnist_rotation_new.zip"
        zpath.parent.mkdir(parents=True)
        _, (te_x, te_y) = write_mnist_rot_zip(zpath, rng, n_train_valid=3, n_test=2)
        md5 = hashlib.md5(zpath.read_bytes()).hexdigest()
        self._register(monkeypatch, f"http://127.0.0.1:{closed_port()}/x.zip", md5)
        (data_dir / "mnist-rot" / "mnist_rotation_new.npz").write_bytes(b"truncated")
        with pytest.warns(UserWarning, match="not a valid parsed MNIST-rot file"):
            x, y = data.load("mnist-rot", "test")
        assert np.array_equal(y, te_y)

    def test_bad_rows_are_rejected(self):
        with pytest.raises(data.ChecksumError, match="785"):
            data._parse_amat(b"0.1 0.2 3.0\n", "member.amat")
        with pytest.raises(data.ChecksumError, match="labels outside"):
            data._parse_amat((" ".join(["0.5"] * 784) + " 12.0\n").encode(), "member.amat")

    def test_wrong_md5_sets_the_zip_aside(self, rng, tmp_path, data_dir, monkeypatch):
        zpath = data_dir / "mnist-rot" / "mnist_rotation_new.zip"
        zpath.parent.mkdir(parents=True)
        write_mnist_rot_zip(zpath, rng, n_train_valid=3, n_test=2)
        self._register(monkeypatch, f"http://127.0.0.1:{closed_port()}/x.zip", "0" * 32)
        with pytest.raises(data.ChecksumError, match="expected md5:0{32}.*moved it to"):
            data.load("mnist-rot", "test")
        assert not zpath.exists() and zpath.with_name(zpath.name + ".invalid").exists()

    @pytest.mark.parametrize("forge", [
        lambda t: t.update(test_x=np.full_like(t["test_x"], 7.0)),   # pixels outside [0, 1]
        lambda t: t.update(test_y=np.full_like(t["test_y"], 99)),    # labels outside 0..9
        lambda t: t.update(test_y=(t["test_y"] + 1) % 10),           # valid-looking but changed
    ])
    def test_forged_parsed_file_is_not_trusted(self, rng, tmp_path, data_dir, monkeypatch,
                                               forge):
        # regression: the parsed .npz was trusted on its self-declared archive MD5
        zpath = data_dir / "mnist-rot" / "mnist_rotation_new.zip"
        zpath.parent.mkdir(parents=True)
        _, (_, te_y) = write_mnist_rot_zip(zpath, rng, n_train_valid=3, n_test=5)
        md5 = hashlib.md5(zpath.read_bytes()).hexdigest()
        self._register(monkeypatch, f"http://127.0.0.1:{closed_port()}/x.zip", md5)
        data.load("mnist-rot", "test")
        parsed = data_dir / "mnist-rot" / "mnist_rotation_new.npz"
        with np.load(parsed) as stored:
            table = {k: stored[k] for k in stored.files}
        forge(table)
        with open(parsed, "wb") as handle:
            np.savez(handle, **table)
        data._load_full.cache_clear()
        with pytest.warns(UserWarning, match="not a valid parsed MNIST-rot file"):
            x, y = data.load("mnist-rot", "test")
        assert np.array_equal(y, te_y) and x.max() <= 1


# ------------------------------------------------------------------ bundled datasets

def test_mnist_5k_is_a_fixed_stratified_split():
    x, y = data.load("mnist-5k", "train")
    xv, yv = data.load("mnist-5k", "valid")
    xt, yt = data.load("mnist-5k", "test")
    assert x.shape == (3200, 28, 28) and xv.shape == (800, 28, 28) and xt.shape == (1000, 28, 28)
    assert np.bincount(y).tolist() == [320] * 10 and np.bincount(yv).tolist() == [80] * 10
    assert np.bincount(yt).tolist() == [100] * 10
    assert x.max() == 1.0 and x.min() == 0.0


@pytest.mark.parametrize("labels", [np.repeat(np.arange(10), 50), np.arange(37) % 3])
def test_stratified_split_is_a_partition(labels):
    train, test = data._stratified_split(labels, "train"), data._stratified_split(labels, "test")
    assert not set(train) & set(test) and len(train) + len(test) == len(labels)
    assert np.array_equal(train, data._stratified_split(labels, "train"))  # fixed
    for c in np.unique(labels):
        assert abs((labels[test] == c).sum() - 0.2 * (labels == c).sum()) <= 1


def test_digits_split_partitions_the_dataset():
    x, y = data.load("digits", "train")
    xv, _ = data.load("digits", "valid")
    xt, yt = data.load("digits", "test")
    assert x.shape[1:] == (8, 8) and len(x) + len(xv) + len(xt) == 1797
    assert 0.0 <= x.min() and x.max() <= 1.0
    # no image appears in both splits
    train = {row.tobytes() for row in x.reshape(len(x), -1)}
    assert sum(row.tobytes() in train for row in xt.reshape(len(xt), -1)) < 5  # exact duplicates exist in the raw set


class TestSynthetic:
    def test_shapes_balance_and_range(self):
        x, y = data.load("synthetic", "train", n=400)
        assert x.shape == (400, 28, 28) and np.bincount(y).tolist() == [100] * 4
        assert 0.0 <= x.min() and x.max() <= 1.0

    def test_splits_and_seeds_give_different_images(self):
        a = data.load("synthetic", "train", n=8, seed=0)[0]
        assert not np.array_equal(a, data.load("synthetic", "test", n=8, seed=0)[0])
        assert not np.array_equal(a, data.load("synthetic", "train", n=8, seed=1)[0])
        assert np.array_equal(a, data.load("synthetic", "train", n=8, seed=0)[0])

    @pytest.mark.parametrize("planted_k", [1, 2, 3])
    def test_classes_differ_only_where_planted(self, planted_k):
        x, y = data.load("synthetic", "train", n=800, planted_k=planted_k)
        w = sectors.fold_weights(sectors.sector_weights(rings.sample(x, 16, 8)))
        mu = sectors.ring_means(rings.sample(x, 16, 8))
        # profile A (even labels) is bright inside, B bright outside: ring means differ
        inner_minus_outer = mu[:, :4].mean(1) - mu[:, 10:].mean(1)
        assert inner_minus_outer[y % 2 == 0].mean() > 0.1
        assert inner_minus_outer[y % 2 == 1].mean() < -0.1
        # the planted sector carries far more weight in classes 2, 3 than in 0, 1
        ratio = w[y >= 2, planted_k].mean() / w[y < 2, planted_k].mean()
        assert ratio > 20
        # no other angular sector separates the classes
        for k in set(range(1, 4)) - {planted_k}:
            assert 0.5 < w[y >= 2, k].mean() / w[y < 2, k].mean() < 2

    def test_bad_planted_k(self):
        with pytest.raises(ValueError, match="planted_k must be 1, 2 or 3"):
            data.load("synthetic", "train", n=4, planted_k=4)


# ------------------------------------------------------------------ argument errors

def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'.*fashion-mnist.*synthetic"):
        data.load("cifar", "train")


def test_unknown_split():
    with pytest.raises(ValueError, match=r"splits \('train', 'valid', 'test'\), not 'dev'"):
        data.load("digits", "dev")


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_n(n):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        data.load("digits", "train", n=n)


def test_n_larger_than_split():
    with pytest.raises(ValueError, match="n=5000 exceeds the 359 images of digits/test"):
        data.load("digits", "test", n=5000)


def test_options_only_for_synthetic():
    with pytest.raises(ValueError, match="only accepted by 'synthetic'"):
        data.load("digits", "train", planted_k=2)


def test_load_many_skips_unavailable(monkeypatch):
    def unavailable(name, split):
        raise data.DatasetNotFoundError(f"dataset {name!r}: not here. More text")
    monkeypatch.setattr(data, "_load_full", unavailable)
    loaded, skipped = data.load_many(["mnist", "synthetic"], "train", n_per_class=3)
    assert list(loaded) == ["synthetic"] and np.bincount(loaded["synthetic"][1]).tolist() == [3] * 4
    assert skipped == {"mnist": "dataset 'mnist': not here"}


def test_fingerprint_changes_with_content():
    x, y = data.load("digits", "test", n=10)
    f = data.fingerprint(x, y)
    assert f == data.fingerprint(x.copy(), y.copy())
    y2 = y.copy()
    y2[0] = (y2[0] + 1) % 10
    assert f != data.fingerprint(x, y2)


# ------------------------------------------------------------------ files that are not ours

class TestLocalFiles:
    """Regressions: user files were deleted, read-only directories crashed, `data list`
    trusted existence instead of content."""

    _files = TestDownloads._files

    def _user_dir(self, data_dir):
        folder = data_dir / "mnist"
        folder.mkdir(parents=True)
        return folder

    def test_gzip_saved_without_its_suffix_is_read_not_deleted(self, rng, data_dir,
                                                              monkeypatch):
        files, images, labels = self._files(rng)
        register_fixture_dataset(monkeypatch, "mnist", f"http://127.0.0.1:{closed_port()}/",
                                 files)
        folder = self._user_dir(data_dir)
        for fname, content in files.values():
            (folder / fname.removesuffix(".gz")).write_bytes(gzip.compress(content))
        x, y = data.load("mnist", "train")
        assert np.array_equal(y, labels)
        assert len(list(folder.iterdir())) == 4

    def test_invalid_user_file_is_kept_and_named(self, rng, data_dir, monkeypatch):
        files, _, _ = self._files(rng)
        register_fixture_dataset(monkeypatch, "mnist", f"http://127.0.0.1:{closed_port()}/",
                                 files)
        folder = self._user_dir(data_dir)
        mine = folder / "train-images-idx3-ubyte"
        mine.write_bytes(b"my own notes, not MNIST")
        with pytest.warns(UserWarning, match=r"train-images-idx3-ubyte.*moved it to"):
            with pytest.raises(data.DatasetNotFoundError):
                data.load("mnist", "train")
        assert (folder / "train-images-idx3-ubyte.invalid").read_bytes() == \
            b"my own notes, not MNIST"

    def test_corrupt_file_in_read_only_dir_falls_back_to_debian(self, rng, tmp_path, data_dir,
                                                               monkeypatch):
        files, _, labels = self._files(rng)
        register_fixture_dataset(monkeypatch, "fashion-mnist",
                                 f"http://127.0.0.1:{closed_port()}/", files)
        debian = tmp_path / "debian"
        (debian / "fashion-mnist").mkdir(parents=True)
        for fname, content in files.values():
            (debian / "fashion-mnist" / fname).write_bytes(gzip.compress(content))
        monkeypatch.setattr(data, "DEBIAN_DIR", debian)
        folder = data_dir / "fashion-mnist"
        folder.mkdir(parents=True)
        corrupt = folder / "train-images-idx3-ubyte.gz"
        corrupt.write_bytes(b"corrupt")

        def read_only(*args, **kwargs):  # the tests run as root: simulate the read-only dir
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(data.os, "rename", read_only)
        with pytest.warns(UserWarning, match="left it in place"):
            x, y = data.load("fashion-mnist", "train")
        assert np.array_equal(y, labels) and corrupt.read_bytes() == b"corrupt"

    def test_data_dir_that_is_a_file(self, rng, tmp_path, monkeypatch):
        files, _, _ = self._files(rng)
        register_fixture_dataset(monkeypatch, "mnist", f"http://127.0.0.1:{closed_port()}/",
                                 files)
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("x")
        monkeypatch.setenv("EQUIVAR_DATA_DIR", str(blocker))
        data._load_full.cache_clear()
        with pytest.raises(data.DatasetNotFoundError, match=r"not-a-dir is a file"):
            data.load("mnist", "train")

    def test_directory_where_a_data_file_should_be(self, rng, data_dir, monkeypatch):
        files, _, _ = self._files(rng)
        register_fixture_dataset(monkeypatch, "mnist", f"http://127.0.0.1:{closed_port()}/",
                                 files)
        (data_dir / "mnist" / "train-images-idx3-ubyte.gz").mkdir(parents=True)
        with pytest.warns(UserWarning, match="is a directory where a data file should be"):
            with pytest.raises(data.ChecksumError, match="in the way of the download"):
                data.load("mnist", "train")

    def test_locate_checks_content(self, rng, data_dir, monkeypatch):
        files, _, _ = self._files(rng)
        register_fixture_dataset(monkeypatch, "mnist", f"http://127.0.0.1:{closed_port()}/",
                                 files)
        folder = self._user_dir(data_dir)
        for fname, _ in files.values():
            (folder / fname).write_bytes(gzip.compress(b"garbage"))
        where = data.locate("mnist")
        assert all(v.startswith("invalid: checksum mismatch") for v in where.values()), where
        for fname, content in files.values():
            (folder / fname).write_bytes(gzip.compress(content))
        assert data.locate("mnist") == {f: str(folder / f) for f, _ in files.values()}


@pytest.mark.parametrize("noise", [float("nan"), float("inf"), -0.1, "0.1"])
def test_synthetic_noise_must_be_a_finite_sigma(noise):
    # regression: noise=nan returned all-NaN images although [0, 1] is promised
    with pytest.raises(ValueError, match="noise must be a finite number"):
        data.synthetic(4, noise=noise)


@pytest.mark.parametrize("name", ["mnist-5k", "digits"])
def test_validation_split_is_carved_from_training_data(name):
    x, y = data.load(name, "train")
    xv, yv = data.load(name, "valid")
    xt, _ = data.load(name, "test")
    rows = lambda a: {r.tobytes() for r in a.reshape(len(a), -1)}
    assert not rows(x) & rows(xv) and not rows(xv) & rows(xt)
    assert abs(len(yv) / (len(y) + len(yv)) - 0.2) < 0.01
    assert np.bincount(yv).min() >= 0.9 * np.bincount(yv).max()


# ------------------------------------------------------------------ rotated datasets (chapter 5)

from equivar.data import rotated  # noqa: E402


def test_rotation_by_quarter_turns_is_rot90_and_zero_is_identity():
    x = np.random.default_rng(1).random((4, 9, 9))
    assert np.abs(rotated.rotate_images(x, 0.0) - x).max() < 1e-12
    assert np.abs(rotated.rotate_images(x, np.pi / 2) - np.rot90(x, axes=(1, 2))).max() < 1e-12
    assert np.abs(rotated.rotate_images(x, np.pi) - x[:, ::-1, ::-1]).max() < 1e-12


def test_rotation_matches_scipy_bilinear_and_the_numpy_reference():
    from scipy import ndimage

    rng = np.random.default_rng(2)
    x = rng.random((3, 12, 12))
    ours = rotated.rotate_images(x, np.deg2rad(30))
    # scipy turns counter-clockwise as displayed about the array centre; grid-constant: zero
    # outside, corner by corner
    ref = np.stack([ndimage.rotate(i, 30, reshape=False, order=1, mode="grid-constant")
                    for i in x])
    assert np.abs(ours - ref).max() < 1e-10
    angles = rng.uniform(0, 2 * np.pi, 3)
    rows, cols = np.mgrid[0:12, 0:12].astype(float)
    c = 5.5
    t = angles[:, None, None]
    dy, dx = c - rows, cols - c
    src_r = c - (-np.sin(t) * dx + np.cos(t) * dy)
    src_c = c + (np.cos(t) * dx + np.sin(t) * dy)
    assert np.abs(rotated.rotate_images(x, angles) - rotated.bilinear_at(x, src_r, src_c)).max() \
        < 1e-12


def test_rotation_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        rotated.rotate_images(np.zeros((3, 3)), 0.1)
    with pytest.raises(ValueError, match="finite"):
        rotated.rotate_images(np.zeros((1, 3, 3)), np.nan)
    with pytest.raises(ValueError, match="not a rotated dataset"):
        rotated.base_name("digits")
    with pytest.raises(ValueError, match="share a shape"):
        rotated.bilinear_at(np.zeros((2, 3, 3)), np.zeros((3, 4)), np.zeros((3, 4)))


def test_rotated_digits_keep_the_splits_and_turn_every_image_by_its_seeded_angle():
    for split in ("train", "valid", "test"):
        upright, labels = data._load_full("digits", split)
        turned, turned_labels = data._load_full("digits+rot", split)
        assert turned.shape == upright.shape and turned.dtype == np.float32
        np.testing.assert_array_equal(labels, turned_labels)
        assert turned.min() >= 0 and turned.max() <= 1
        angles = rotated.split_angles("digits+rot", split, len(labels))
        assert angles.min() >= 0 and angles.max() < 2 * np.pi
        expected = np.clip(rotated.rotate_images(upright, angles), 0, 1).astype(np.float32)
        np.testing.assert_array_equal(turned, expected)
        # most images really moved (a blank or fully symmetric digit would not)
        moved = np.abs(turned - upright).reshape(len(labels), -1).max(1) > 0.05
        assert moved.mean() > 0.9
    # another split draws other angles; the same split the same ones
    a = rotated.split_angles("digits+rot", "train", 50)
    assert np.array_equal(a, rotated.split_angles("digits+rot", "train", 50))
    assert not np.allclose(a, rotated.split_angles("digits+rot", "test", 50))
    x, y = data.load("digits+rot", "test", n=7, seed=3)
    x0, y0 = data.load("digits+rot", "test", n=7, seed=3)
    assert np.array_equal(x, x0) and np.array_equal(y, y0)
    assert data.info("digits+rot").classes == data.info("digits").classes
    assert data.locate("digits+rot") == data.locate("digits")


def test_rotated_angles_look_uniform():
    angles = rotated.split_angles("fashion-mnist+rot", "train", 20000)
    counts = np.histogram(angles, bins=8, range=(0, 2 * np.pi))[0]
    assert np.abs(counts / 2500 - 1).max() < 0.06
