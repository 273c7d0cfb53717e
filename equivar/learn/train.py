"""Training and evaluation of the quantum classifiers (Adam, minibatches, fixed seeds).

``fit`` trains on amplitude vectors (from :func:`equivar.core.model.amplitudes`), shuffling with its
own seeded generator so that a run is reproducible; ``accuracy`` and ``predict`` evaluate in
batches without gradients. ``trained(ModelSpec(...))`` trains once and reuses the weights from
the result cache afterwards (chapters 2-4 share models this way).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from equivar import data
from equivar.cache import cached
from equivar.core.filters import SectorFilter
from equivar.core.model import ModelConfig, QuantumClassifier, amplitudes
from equivar.core.rings import sample_grid
from equivar.settings import SAMPLING, Sampling


SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings."""

    epochs: int = 8         # West et al. (with early stopping: the most epochs)
    batch_size: int = 16    # West et al.
    lr: float = 1e-3        # Adam learning rate, West et al.
    seed: int = 0           # shuffling order (weights are seeded by the model)
    schedule: str = "constant"  # learning rate: "constant" or "cosine" (annealed to 0)
    patience: int = 0       # early stopping: epochs without a lower validation loss; 0: off
    max_steps: int = 0      # stop after this many optimiser steps (mid-epoch); 0: no cap

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float, np.floating)) \
                or not np.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("patience", "max_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class History:
    """Per-epoch mean training loss and training accuracy, validation loss and accuracy if a
    validation set was given, the epoch whose weights were kept (1-based), and the optimiser
    steps taken. An epoch cut short by ``max_steps`` counts as an epoch: its loss and accuracy
    are means over the images it saw."""

    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    valid_loss: list[float] = field(default_factory=list)
    valid_accuracy: list[float] = field(default_factory=list)
    best_epoch: int = 0
    steps: int = 0


def check_labels(labels, n_classes: int) -> torch.Tensor:
    """Labels as int64 tensor; ValueError if any is outside 0..n_classes-1."""
    array = np.array(labels)  # a copy: loaded labels are read-only
    if array.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers (class indices), got dtype {array.dtype}")
    y = torch.as_tensor(array)
    if y.ndim != 1:
        raise ValueError(f"labels must be a 1-D integer array, got {tuple(y.shape)} {y.dtype}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1} (the model's readout), "
                         f"found {int(y.min())}..{int(y.max())}")
    return y.to(torch.int64)


def fit(model: QuantumClassifier, states, labels, config: TrainConfig = TrainConfig(),
        valid: tuple | None = None, progress: bool = True, desc: str = "train") -> History:
    """Train ``model`` in place with Adam and cross-entropy on the logits.

    Args:
        states: (n, 2**n_wires) amplitude vectors; labels: (n,) in 0..n_classes-1.
        valid: optional ``(states, labels)`` of the validation split, scored after every epoch;
            with ``config.patience > 0`` training stops after that many epochs without a
            lower validation loss and the weights of the best epoch are kept.
        progress: show a tqdm bar (stderr), one tick per minibatch.

    With ``config.max_steps > 0`` training stops after exactly that many optimiser steps (or
    earlier: at the end of ``config.epochs``, or by early stopping), possibly mid-epoch; that
    last, partial epoch is scored on the validation set and may be the best one like any
    other, and a cosine schedule anneals to 0 at the last step that can run. ``max_steps = 0``
    trains exactly as without the cap.
    """
    x = model._check_states(states)
    y = check_labels(labels, model.config.n_classes)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} states but {len(y)} labels")
    if len(x) == 0:
        raise ValueError("no training states given")
    if config.patience and valid is None:
        raise ValueError("early stopping (patience > 0) needs a validation set")
    if valid is not None:
        valid = (model._check_states(valid[0]), check_labels(valid[1], model.config.n_classes))
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps_per_epoch = -(-len(x) // config.batch_size)
    last_step = config.epochs * steps_per_epoch
    if config.max_steps:
        last_step = min(last_step, config.max_steps)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=last_step) if config.schedule == "cosine" else None
    gen = torch.Generator().manual_seed(int(config.seed))
    history = History()
    best = (float("inf"), None)
    with tqdm(total=last_step, desc=desc, disable=not progress, leave=False) as bar:
        for epoch in range(1, config.epochs + 1):
            order = torch.randperm(len(x), generator=gen)
            total, correct, seen = 0.0, 0, 0
            for start in range(0, len(x), config.batch_size):
                if history.steps == last_step:   # the cap falls inside this epoch
                    break
                idx = order[start:start + config.batch_size]
                logits = model(x[idx])
                loss = torch.nn.functional.cross_entropy(logits, y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                if scheduler is not None:
                    scheduler.step()
                history.steps += 1
                total += float(loss.detach()) * len(idx)
                correct += int((logits.argmax(1) == y[idx]).sum())
                seen += len(idx)
                bar.update(1)
            history.loss.append(total / seen)
            history.train_accuracy.append(correct / seen)
            history.best_epoch = epoch
            if valid is not None:
                with torch.no_grad():
                    logits = torch.cat([model(valid[0][i:i + 4096])
                                        for i in range(0, len(valid[0]), 4096)])
                history.valid_loss.append(float(torch.nn.functional.cross_entropy(logits,
                                                                                   valid[1])))
                history.valid_accuracy.append(float((logits.argmax(1) == valid[1]).double()
                                                    .mean()))
                if config.patience:
                    if history.valid_loss[-1] < best[0]:
                        best = (history.valid_loss[-1], model.weights.detach().clone(), epoch)
                    elif epoch - best[2] >= config.patience:
                        break
            bar.set_postfix(loss=f"{history.loss[-1]:.3f}", acc=f"{history.train_accuracy[-1]:.3f}")
            if history.steps == last_step:
                break
    if config.patience and best[1] is not None:
        with torch.no_grad():
            model.weights.copy_(best[1])
        history.best_epoch = best[2]
    return history


@torch.no_grad()
def predict(model: QuantumClassifier, states, batch_size: int = 4096) -> np.ndarray:
    """Predicted classes (n,) for amplitude vectors (n, 2**n_wires), simulated in batches."""
    x = model._check_states(states)
    out = [model.readout(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)]
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
    # readout ("probs" or West's "z"), learning-rate schedule, and early stopping on the first
    # n_valid images of the validation split (patience 0: a fixed number of epochs)
    readout: str = "probs"
    schedule: str = "constant"
    patience: int = 0
    n_valid: int = 0
    # a hard cap on optimiser steps (0: none; chapter 4's equal-steps defences)
    max_steps: int = 0
    # the ring grid (the book's: SAMPLING; the capacity ladder varies it)
    n_rings: int = SAMPLING.n_rings
    n_angles: int = SAMPLING.n_angles
    ring_offset: float = SAMPLING.ring_offset
    # every seed its own training sample: when n_train covers the whole training split
    # (mnist-5k, digits), a bootstrap resample of it (see training_data)
    bootstrap: bool = False

    def sampling(self) -> Sampling:
        """How this model's images become ring grids."""
        return Sampling(n_angles=self.n_angles, n_rings=self.n_rings, method=SAMPLING.method,
                        ring_offset=self.ring_offset)

    @classmethod
    def from_settings(cls, settings, dataset: str, variant: str, seed: int) -> "ModelSpec":
        """The spec of one model trained with chapter 2's settings
        (a :class:`equivar.settings.RelianceSettings`)."""
        return cls(dataset, variant, seed, settings.n_train, settings.epochs, settings.batch_size,
                   settings.lr, settings.n_layers, settings.scale, planted_k=settings.planted_k,
                   bootstrap=bool(getattr(settings, "bootstrap", False)))

    def grid_filter(self):
        """The :class:`equivar.core.filters.SectorFilter` applied to this model's inputs."""
        return SectorFilter(self.suppress_k, self.suppress_alpha, self.suppress_renormalise)

    def config(self) -> ModelConfig:
        n_classes = len(data.info(self.dataset).classes)
        n_rad = int(np.log2(self.n_rings))
        return ModelConfig(n_rad=n_rad, n_ang=int(np.log2(self.n_angles)),
                           n_layers=self.n_layers, variant=self.variant, readout=self.readout,
                           n_classes=n_classes, scale=self.scale)

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           seed=self.seed, schedule=self.schedule, patience=self.patience,
                           max_steps=self.max_steps)


def training_data(dataset: str, n_train: int, seed: int, planted_k: int = 2,
                  bootstrap: bool = False):
    """The training subset of a model: ``min(n_train, available)`` images drawn with ``seed``
    (for ``synthetic``: ``n_train`` generated images with the given ``planted_k``).

    ``bootstrap``: when ``n_train`` covers the whole split, every seed would see the same
    images; instead draw as many images *with replacement* (seeded by ``seed``), so that seeds
    are independent samples of the training distribution."""
    if dataset == "synthetic":
        return data.load(dataset, "train", n=n_train, seed=seed, planted_k=planted_k)
    available = data.split_size(dataset, "train")
    images, labels = data.load(dataset, "train", n=min(n_train, available), seed=seed)
    if bootstrap and n_train >= available:
        pick = np.random.default_rng([seed, 0xB0075]).integers(0, len(labels), len(labels))
        images, labels = images[pick], labels[pick]
    return images, labels


def validation_data(dataset: str, n_valid: int, planted_k: int = 2):
    """The first model-selection images: ``min(n_valid, available)`` of the validation split,
    drawn with a fixed seed (the same for every model, so validation scores are comparable)."""
    if dataset == "synthetic":
        return data.load(dataset, "valid", n=n_valid, seed=0, planted_k=planted_k)
    return data.load(dataset, "valid", n=min(n_valid, data.split_size(dataset, "valid")), seed=0)


def trained(spec: ModelSpec, progress: bool = True,
            augmentation=None) -> tuple[QuantumClassifier, dict]:
    """Train the model of ``spec`` (or load it from the result cache).

    ``augmentation(images, labels) -> (images, labels)`` builds the training set of a spec
    with ``augment != "none"`` (see :func:`equivar.adversary.defences.trained_defended`).
    Returns the model and a record with the per-epoch loss and training accuracy (one entry
    per epoch run), the optimiser steps taken, the number of training images and whether it
    came from the cache.
    """
    if (spec.augment != "none") != (augmentation is not None):
        raise ValueError(f"spec.augment={spec.augment!r} needs an augmentation function exactly "
                         "when it is not 'none' (use equivar.adversary.defences.trained_defended)")
    images, labels = training_data(spec.dataset, spec.n_train, spec.seed, spec.planted_k,
                                   spec.bootstrap)
    params = {**asdict(spec), "data": data.fingerprint(images, labels),
              "sampling": asdict(spec.sampling())}

    def compute():
        x, y = (images, labels) if augmentation is None else augmentation(images, labels)
        model = QuantumClassifier(spec.config(), seed=spec.seed)
        encode_ = lambda imgs: spec.grid_filter().states(sample_grid(imgs, spec.sampling()))
        valid = None
        if spec.n_valid:
            vx, vy = validation_data(spec.dataset, spec.n_valid, spec.planted_k)
            valid = (encode_(vx), vy)
        start = time.perf_counter()
        history = fit(model, encode_(x), y, spec.train_config(), valid=valid, progress=progress,
                      desc=f"{spec.dataset}/{spec.variant}/seed {spec.seed}")
        seconds = time.perf_counter() - start
        return {"weights": model.weights.detach().clone(), "loss": history.loss,
                "train_accuracy": history.train_accuracy, "valid_loss": history.valid_loss,
                "valid_accuracy": history.valid_accuracy, "best_epoch": history.best_epoch,
                "steps": history.steps, "n_train": len(y), "seconds": seconds}

    result, hit = cached("model", params, compute)
    model = QuantumClassifier(spec.config(), seed=spec.seed)
    with torch.no_grad():
        model.weights.copy_(result["weights"])
    record = {k: result.get(k) for k in ("loss", "train_accuracy", "valid_loss",
                                          "valid_accuracy", "best_epoch", "steps", "n_train",
                                          "seconds")}
    record["cached"] = hit
    return model, record
