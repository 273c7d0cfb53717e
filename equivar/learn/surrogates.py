"""Classical classifiers on pixels: the surrogates that craft transfer attacks (chapters 3, 4).

A small CNN, an MLP and the CNN trained with random rotations (``cnn-rot``), each trained with
Adam on the same training subsets as the quantum models and stored in the result cache, keyed
by its :class:`SurrogateSpec` and the data fingerprint. Two more for chapter 4's stronger
transfer attacks: ``ring``, a small network that sees what a ring-mean-suppressed quantum model
sees (the ring-sampled grid with each ring's mean subtracted, L2-normalised; differentiable
from the pixels), and :class:`Ensemble`, several surrogates as one model (mean of their
logits). Used by chapters 3 and 4.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from equivar import data
from equivar.cache import cached
from equivar.core.rings import sample_grid
from equivar.learn.train import training_data
from equivar.settings import SAMPLING, SURROGATES

# every surrogate kind: chapter 3's (settings.SURROGATES) and the ring-grid network of chapter 4
KINDS = SURROGATES + ("ring",)

class SmallCNN(nn.Module):
    """Two 3×3 conv layers (16, 32 channels) with max-pooling, then 64 hidden units."""

    def __init__(self, image_shape: tuple[int, int], n_classes: int):
        super().__init__()
        h, w = image_shape
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * (h // 4) * (w // 4), 64),
                                  nn.ReLU(), nn.Linear(64, n_classes))

    def forward(self, x):
        return self.head(self.features(_nchw(x)))


class MLP(nn.Module):
    """Pixels → 256 → 128 → classes, ReLU."""

    def __init__(self, image_shape: tuple[int, int], n_classes: int):
        super().__init__()
        h, w = image_shape
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(h * w, 256), nn.ReLU(),
                                 nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, n_classes))

    def forward(self, x):
        return self.net(_nchw(x))


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x[:, None] if x.ndim == 3 else x


class RingNet(nn.Module):
    """Sees what a ring-mean-suppressed quantum model sees: pixels → ring grid (the book's
    bilinear sampling) → each ring's mean subtracted → L2-normalised → 2 hidden layers (128,
    64 units, ReLU). Differentiable from the pixels, so attacks crafted on it are pixel
    perturbations whose gradient never points along the ring means."""

    def __init__(self, image_shape: tuple[int, int], n_classes: int):
        super().__init__()
        width = SAMPLING.n_rings * SAMPLING.n_angles
        self.net = nn.Sequential(nn.Linear(width, 128), nn.ReLU(), nn.Linear(128, 64),
                                 nn.ReLU(), nn.Linear(64, n_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The network's input: centred, normalised grids (B, n_rings · n_angles), scaled by
        √(n_rings · n_angles) so that entries are of order 1."""
        x = _nchw(x)[:, 0]
        grids = sample_grid(x if x.is_floating_point() else x.float())
        centred = (grids - grids.mean(-1, keepdim=True)).flatten(1)
        norm = centred.norm(dim=1, keepdim=True).clamp_min(1e-12)  # a blank grid stays zero
        return centred / norm * np.sqrt(centred.shape[1])

    def forward(self, x):
        return self.net(self.features(x))


class Ensemble(nn.Module):
    """Several classifiers as one: the mean of their logits (attacked as a single model)."""

    def __init__(self, models):
        super().__init__()
        models = list(models)
        if len(models) < 2:
            raise ValueError(f"an ensemble needs at least 2 models, got {len(models)}")
        self.members = nn.ModuleList(models)

    def forward(self, x):
        return torch.stack([m(x) for m in self.members]).mean(0)


def rotate_images(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate images (N, 1, H, W) counter-clockwise by ``angles`` (N,) radians, bilinear,
    zero padding."""
    cos, sin = torch.cos(angles), torch.sin(angles)
    # affine_grid maps output to input coordinates (x right, y down): inverse rotation
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(cos)], -1),
                         torch.stack([sin, cos, torch.zeros_like(cos)], -1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)


@dataclass(frozen=True)
class SurrogateSpec:
    """Everything that determines a trained surrogate (and its cache key)."""

    dataset: str
    kind: str        # "cnn" | "mlp" | "cnn-rot" (CNN trained with random rotations) | "ring"
    seed: int
    n_train: int
    epochs: int
    batch_size: int = 128
    lr: float = 1e-3

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"surrogate kind must be one of {KINDS}, got {self.kind!r}")

    def build(self) -> nn.Module:
        info = data.info(self.dataset)
        cls = {"mlp": MLP, "ring": RingNet}.get(self.kind, SmallCNN)
        return cls(info.image_shape, len(info.classes))


def train_surrogate(spec: SurrogateSpec, progress: bool = False) -> tuple[nn.Module, dict]:
    """Train (or load from the cache) the surrogate of ``spec``; returns (model, record)."""
    images, labels = training_data(spec.dataset, spec.n_train, spec.seed)

    def compute():
        with torch.random.fork_rng():
            torch.manual_seed(spec.seed)
            model = spec.build()
            x = torch.as_tensor(images)[:, None]
            y = torch.as_tensor(np.array(labels))
            opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
            gen = torch.Generator().manual_seed(spec.seed)
            losses = []
            steps = spec.epochs * -(-len(x) // spec.batch_size)
            with tqdm(total=steps, desc=f"{spec.dataset}/{spec.kind}", disable=not progress,
                      leave=False) as bar:
                for _ in range(spec.epochs):
                    order = torch.randperm(len(x), generator=gen)
                    total = 0.0
                    for start in range(0, len(x), spec.batch_size):
                        idx = order[start:start + spec.batch_size]
                        batch = x[idx]
                        if spec.kind == "cnn-rot":
                            angles = torch.rand(len(idx), generator=gen) * 2 * np.pi
                            batch = rotate_images(batch, angles)
                        loss = F.cross_entropy(model(batch), y[idx])
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                        total += float(loss.detach()) * len(idx)
                        bar.update(1)
                    losses.append(total / len(x))
        return {"state": model.state_dict(), "loss": losses, "n_train": len(labels)}

    params = {**asdict(spec), "data": data.fingerprint(images, labels)}
    result, hit = cached("surrogate", params, compute)
    model = spec.build()
    model.load_state_dict(result["state"])
    model.eval()
    return model, {"loss": result["loss"], "n_train": result["n_train"], "cached": hit}


@torch.no_grad()
def predict_images(model: nn.Module, images, batch_size: int = 2048) -> np.ndarray:
    """Predicted classes for images (N, H, W) in [0, 1] (any classifier of this module)."""
    model.eval()
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    out = [model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)
