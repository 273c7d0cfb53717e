"""Training and evaluation of the quantum classifiers (Adam, minibatches, fixed seeds).

``fit`` trains on amplitude vectors (from :func:`equivar.core.model.amplitudes`), shuffling with its
own seeded generator so that a run is reproducible; ``accuracy`` and ``predict`` evaluate in
batches without gradients. ``trained(ModelSpec(...))`` trains once and reuses the weights from
the result cache afterwards (chapters 2-4 share models this way).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from equivar import data
from equivar.cache import cached
from equivar.core.filters import SectorFilter
from equivar.core.model import ModelConfig, QuantumClassifier, amplitudes
from equivar.core.rings import sample_grid
from equivar.settings import SAMPLING


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings."""

    epochs: int = 8         # West et al.
    batch_size: int = 16    # West et al.
    lr: float = 1e-3        # Adam learning rate, West et al.
    seed: int = 0           # shuffling order (weights are seeded by the model)

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not np.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class History:
    """Per-epoch mean training loss and training accuracy (and test accuracy if given)."""

    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)


def check_labels(labels, n_classes: int) -> torch.Tensor:
    """Labels as int64 tensor; ValueError if any is outside 0..n_classes-1."""
    y = torch.as_tensor(np.array(labels))
    if y.ndim != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"labels must be a 1-D integer array, got {tuple(y.shape)} {y.dtype}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1} (the model's readout), "
                         f"found {int(y.min())}..{int(y.max())}")
    return y.to(torch.int64)


def fit(model: QuantumClassifier, states, labels, config: TrainConfig = TrainConfig(),
        test: tuple | None = None, progress: bool = True, desc: str = "train") -> History:
    """Train ``model`` in place with Adam and cross-entropy on the logits.

    Args:
        states: (n, 2**n_wires) amplitude vectors; labels: (n,) in 0..n_classes-1.
        test: optional ``(states, labels)`` scored after every epoch.
        progress: show a tqdm bar (stderr), one tick per minibatch.
    """
    x = model._check_states(states)
    y = check_labels(labels, model.config.n_classes)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} states but {len(y)} labels")
    if len(x) == 0:
        raise ValueError("no training states given")
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(int(config.seed))
    history = History()
    steps = config.epochs * -(-len(x) // config.batch_size)
    with tqdm(total=steps, desc=desc, disable=not progress, leave=False) as bar:
        for _ in range(config.epochs):
            order = torch.randperm(len(x), generator=gen)
            total, correct = 0.0, 0
            for start in range(0, len(x), config.batch_size):
                idx = order[start:start + config.batch_size]
                logits = model(x[idx])
                loss = torch.nn.functional.cross_entropy(logits, y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                correct += int((logits.argmax(1) == y[idx]).sum())
                bar.update(1)
            history.loss.append(total / len(x))
            history.train_accuracy.append(correct / len(x))
            if test is not None:
                history.test_accuracy.append(accuracy(model, *test))
            bar.set_postfix(loss=f"{history.loss[-1]:.3f}", acc=f"{history.train_accuracy[-1]:.3f}")
    return history


@torch.no_grad()
def predict(model: QuantumClassifier, states, batch_size: int = 4096) -> np.ndarray:
    """Predicted classes (n,) for amplitude vectors (n, 2**n_wires)."""
    x = model._check_states(states)
    U = model.unitary()
    out = [model.readout(x[i:i + batch_size], U).argmax(1) for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def accuracy(model: QuantumClassifier, states, labels) -> float:
    """Share of correctly classified states."""
    y = check_labels(labels, model.config.n_classes).numpy()
    return float((predict(model, states) == y).mean())


# ----------------------------------------------------------------- trained models, cached

def encode(images) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, H, W) → ring grids (n, R, N) with the book's sampling, and their amplitude
    vectors (n, R·N)."""
    grids = sample_grid(images)
    return grids, amplitudes(grids)


@dataclass(frozen=True)
class ModelSpec:
    """Everything that determines a trained model (and hence its cache key)."""

    dataset: str
    variant: str
    seed: int
    n_train: int
    epochs: int
    batch_size: int
    lr: float
    n_layers: int
    scale: float
    # chapter 4: a sector filter on the inputs (alpha = 1: none) ...
    suppress_k: int = 0
    suppress_alpha: float = 1.0
    suppress_renormalise: bool = True
    # ... and training-set augmentation ("none", "gaussian": sigma, "pgd": eps on a surrogate
    # given as (kind, n_train, epochs))
    augment: str = "none"
    augment_strength: float = 0.0
    augment_surrogate: tuple = ()
    # the synthetic data's planted angular frequency (ignored for the other datasets)
    planted_k: int = 2

    @classmethod
    def from_settings(cls, settings, dataset: str, variant: str, seed: int) -> "ModelSpec":
        """The spec of one model trained with chapter 2's settings
        (a :class:`equivar.settings.RelianceSettings`)."""
        return cls(dataset, variant, seed, settings.n_train, settings.epochs, settings.batch_size,
                   settings.lr, settings.n_layers, settings.scale, planted_k=settings.planted_k)

    def grid_filter(self):
        """The :class:`equivar.core.filters.SectorFilter` applied to this model's inputs."""
        return SectorFilter(self.suppress_k, self.suppress_alpha, self.suppress_renormalise)

    def config(self) -> ModelConfig:
        n_classes = len(data.info(self.dataset).classes)
        n_rad = int(np.log2(SAMPLING.n_rings))
        return ModelConfig(n_rad=n_rad, n_ang=int(np.log2(SAMPLING.n_angles)),
                           n_layers=self.n_layers, variant=self.variant, readout="probs",
                           n_classes=n_classes, scale=self.scale)

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           seed=self.seed)


def training_data(dataset: str, n_train: int, seed: int, planted_k: int = 2):
    """The training subset of a model: ``min(n_train, available)`` images drawn with ``seed``
    (for ``synthetic``: ``n_train`` generated images with the given ``planted_k``)."""
    if dataset == "synthetic":
        return data.load(dataset, "train", n=n_train, seed=seed, planted_k=planted_k)
    return data.load(dataset, "train", n=min(n_train, data.split_size(dataset, "train")),
                     seed=seed)


def trained(spec: ModelSpec, progress: bool = True,
            augmentation=None) -> tuple[QuantumClassifier, dict]:
    """Train the model of ``spec`` (or load it from the result cache).

    ``augmentation(images, labels) -> (images, labels)`` builds the training set of a spec
    with ``augment != "none"`` (see :func:`equivar.adversary.defences.trained_defended`).
    Returns the model and a record with the per-epoch loss and training accuracy, the number
    of training images and whether it came from the cache.
    """
    if (spec.augment != "none") != (augmentation is not None):
        raise ValueError(f"spec.augment={spec.augment!r} needs an augmentation function exactly "
                         "when it is not 'none' (use equivar.adversary.defences.trained_defended)")
    images, labels = training_data(spec.dataset, spec.n_train, spec.seed, spec.planted_k)
    params = {**asdict(spec), "data": data.fingerprint(images, labels),
              "sampling": asdict(SAMPLING)}

    def compute():
        x, y = (images, labels) if augmentation is None else augmentation(images, labels)
        model = QuantumClassifier(spec.config(), seed=spec.seed)
        states = spec.grid_filter().states(sample_grid(x))
        history = fit(model, states, y, spec.train_config(), progress=progress,
                      desc=f"{spec.dataset}/{spec.variant}/seed {spec.seed}")
        return {"weights": model.weights.detach().clone(), "loss": history.loss,
                "train_accuracy": history.train_accuracy, "n_train": len(y)}

    result, hit = cached("model", params, compute)
    model = QuantumClassifier(spec.config(), seed=spec.seed)
    with torch.no_grad():
        model.weights.copy_(result["weights"])
    record = {k: result[k] for k in ("loss", "train_accuracy", "n_train")}
    record["cached"] = hit
    return model, record
