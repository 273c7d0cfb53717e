"""Classical classifiers on pixels: the surrogates that craft transfer attacks (chapter 3).

A small CNN, an MLP and the CNN trained with random rotations (``cnn-rot``), each trained with
Adam on the same training subsets as the quantum models and stored in the result cache, keyed
by its :class:`SurrogateSpec` and the data fingerprint. Used by chapters 3 and 4.
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
from equivar.learn.train import training_data
from equivar.settings import SURROGATES

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
    kind: str        # "cnn" | "mlp" | "cnn-rot" (CNN trained with random rotations)
    seed: int
    n_train: int
    epochs: int
    batch_size: int = 128
    lr: float = 1e-3

    def __post_init__(self):
        if self.kind not in SURROGATES:
            raise ValueError(f"surrogate kind must be one of {SURROGATES}, got {self.kind!r}")

    def build(self) -> nn.Module:
        info = data.info(self.dataset)
        cls = MLP if self.kind == "mlp" else SmallCNN
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
