"""Classical baselines that see what the quantum models see (chapter 3, "Quantum or invariant?").

Four classifiers from [0, 1] pixels (N, H, W) or (N, 1, H, W) to logits, each differentiable
end to end so that white-box attacks run through them as through
:class:`equivar.core.pipeline.QuantumPipeline`:

* ``sector-logistic``: multinomial logistic regression on the independent sector blocks
  ρ_k, k = 0..N/2, of the L2-normalised ring grid (the book's bilinear sampling): exactly
  the information an invariant quantum model can access (:mod:`equivar.core.sectors`; the
  same coordinates as the ``sector-blocks`` probe of :mod:`equivar.learn.probes`);
* ``sector-mlp``: one hidden ReLU layer on the same features;
* ``ring-mlp``: one hidden ReLU layer on the normalised ring grid itself (16 × 8 samples, not
  invariant: what the non-equivariant quantum baseline reads);
* ``p4-cnn``: a group-convolution network over C_4 on the pixels (Cohen & Welling 2016,
  arXiv:1602.07576): a lifting layer and one group convolution, 2×2 max-pooling, then the mean
  over positions and the maximum over the four rotations, so its logits are exactly invariant
  to ``torch.rot90`` of square images (rotations by 90° are exact on the pixel grid; by 45°
  they are not, so no C_8 version on pixels).

The feature maps are computed in float64 and cast to the weights' dtype; a fixed standardiser
(training-set mean and spread of each feature, an affine map, so invariance is kept) puts the
features on a common scale. :func:`trained_baseline` trains a :class:`BaselineSpec` with Adam,
weight decay and early stopping on the validation split, through the result cache.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from equivar import data
from equivar.cache import cached
from equivar.core.pipeline import as_images
from equivar.core.rings import sample_grid
from equivar.learn.train import check_labels, training_data, validation_data
from equivar.settings import SAMPLING, Sampling

KINDS = {
    "sector-logistic": "logistic regression on the sector blocks ρ_k, k = 0..N/2 (all an "
                       "invariant quantum model can access)",
    "sector-mlp": "one hidden ReLU layer on the same sector blocks",
    "ring-mlp": "one hidden ReLU layer on the normalised ring grid (not invariant)",
    "p4-cnn": "group convolutions over C_4 on the pixels (exactly invariant to 90° turns)",
}
RING_KINDS = ("sector-logistic", "sector-mlp", "ring-mlp")  # read the image only on the ring grid
GROUP_ORDER = 4  # rotations of the pixel grid that are exact: multiples of 90°


def normalised_grids(grids: torch.Tensor) -> torch.Tensor:
    """Ring grids (N, R, A) scaled to unit L2 norm in float64 (an all-zero grid stays zero,
    so that an attack reaching a blank image gets logits rather than an error)."""
    g = grids.to(torch.float64)
    norm = g.pow(2).sum(dim=(-2, -1), keepdim=True).sqrt().clamp_min(1e-12)
    return g / norm


def sector_features(grids: torch.Tensor) -> torch.Tensor:
    """Real coordinates of the independent sector blocks of the normalised grids: per k in
    0..A/2, the diagonal of ρ_k, then the real and imaginary parts above it; shape
    (N, (A/2 + 1) · R²), float64. Invariant to every cyclic shift of the angle axis."""
    g = normalised_grids(grids)
    n_rings, n_angles = g.shape[-2:]
    xh = torch.fft.fft(g, dim=-1, norm="ortho")[..., : n_angles // 2 + 1]  # (N, R, K)
    xk = xh.transpose(-1, -2)                                              # (N, K, R)
    blocks = xk[..., :, None] * xk.conj()[..., None, :]                    # (N, K, R, R)
    upper = torch.triu_indices(n_rings, n_rings, 1)
    diag = torch.diagonal(blocks, dim1=-2, dim2=-1).real
    above = blocks[..., upper[0], upper[1]]
    return torch.cat([diag, above.real, above.imag], dim=-1).flatten(1)


def grid_features(grids: torch.Tensor) -> torch.Tensor:
    """The normalised grid as a vector (N, R · A) (index ring · A + angle, the amplitude
    vector a quantum model is given), times √(R · A) so that entries are of order 1."""
    g = normalised_grids(grids)
    return g.flatten(1) * np.sqrt(g.shape[-2] * g.shape[-1])


def n_features(kind: str, sampling: Sampling = SAMPLING) -> int:
    """Length of the feature vector of a ring-grid ``kind``."""
    if kind in ("sector-logistic", "sector-mlp"):
        return (sampling.n_angles // 2 + 1) * sampling.n_rings ** 2
    if kind == "ring-mlp":
        return sampling.n_rings * sampling.n_angles
    raise ValueError(f"{kind!r} does not read the ring grid; ring kinds: {RING_KINDS}")


class Standardiser(nn.Module):
    """Fixed affine map (x - mean) / scale per feature (buffers, not trained)."""

    def __init__(self, n: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(n, dtype=torch.float64))

    @torch.no_grad()
    def fit(self, features: torch.Tensor) -> "Standardiser":
        """Set mean and spread from training features (N, n); constant features keep scale 1."""
        f = features.to(torch.float64)
        std = f.std(0, unbiased=False)
        self.mean.copy_(f.mean(0))
        self.scale.copy_(torch.where(std > 1e-12, std, torch.ones_like(std)))
        return self

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (features.to(self.mean.dtype) - self.mean) / self.scale


class RingBaseline(nn.Module):
    """Pixels → ring grid (``sampling``) → fixed features → standardiser → trainable head.

    ``kind``: one of :data:`RING_KINDS`; ``hidden``: units of the hidden layer (0 for the
    logistic model). :meth:`forward_grids` scores ring grids directly (sector-restricted
    perturbations of chapter 3 live on the grid)."""

    def __init__(self, kind: str, n_classes: int, hidden: int = 0,
                 sampling: Sampling = SAMPLING):
        super().__init__()
        if kind not in RING_KINDS:
            raise ValueError(f"kind must be one of {RING_KINDS}, got {kind!r}")
        if (kind == "sector-logistic") != (hidden == 0):
            raise ValueError(f"{kind} needs hidden {'= 0' if kind == 'sector-logistic' else '> 0'}"
                             f", got hidden={hidden!r}")
        if hidden < 0 or n_classes < 2:
            raise ValueError(f"need hidden ≥ 0 and n_classes ≥ 2, got {hidden!r}, "
                             f"{n_classes!r}")
        self.kind, self.sampling = kind, sampling
        width = n_features(kind, sampling)
        self.standardiser = Standardiser(width)
        self.head = nn.Linear(width, n_classes) if hidden == 0 else nn.Sequential(
            nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

    def grids(self, images) -> torch.Tensor:
        """Ring grids (N, R, A) of pixel images, float64, differentiable."""
        return sample_grid(as_images(images).to(torch.float64), self.sampling)

    def features(self, grids: torch.Tensor) -> torch.Tensor:
        """Unstandardised features (N, d) of ring grids, float64."""
        grids = torch.as_tensor(grids)
        expected = (self.sampling.n_rings, self.sampling.n_angles)
        if grids.ndim != 3 or tuple(grids.shape[-2:]) != expected:
            raise ValueError(f"grids must have shape (N, {expected[0]}, {expected[1]}), got "
                             f"{tuple(grids.shape)}")
        return grid_features(grids) if self.kind == "ring-mlp" else sector_features(grids)

    def forward_features(self, features: torch.Tensor) -> torch.Tensor:
        weight = next(self.head.parameters())
        return self.head(self.standardiser(features).to(weight.dtype))

    def forward_grids(self, grids) -> torch.Tensor:
        return self.forward_features(self.features(grids))

    def forward(self, images) -> torch.Tensor:
        return self.forward_grids(self.grids(images))


# ----------------------------------------------------------------- C_4 group convolutions

def _rot(w: torch.Tensor, r: int) -> torch.Tensor:
    """Spatial rotation by r × 90° (counter-clockwise as displayed) of the last two axes."""
    return torch.rot90(w, r, dims=(-2, -1))


class LiftingConv(nn.Module):
    """Z² → C_4 × Z²: ``out[:, o, r] = conv(x, rot90(W_o, r))``, shape (N, C_out, 4, H, W).
    Rotating the input by 90° rotates each output map and shifts r by one."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd ('same' padding commutes with rot90), got "
                             f"{kernel}")
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel)
                                   * np.sqrt(2.0 / (c_in * kernel ** 2)))
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c_out = self.weight.shape[0]
        w = torch.stack([_rot(self.weight, r) for r in range(GROUP_ORDER)], 1)  # (O, 4, I, k, k)
        w = w.reshape(c_out * GROUP_ORDER, *self.weight.shape[1:])
        out = F.conv2d(x, w, self.bias.repeat_interleave(GROUP_ORDER),
                       padding=self.weight.shape[-1] // 2)
        return out.reshape(len(x), c_out, GROUP_ORDER, *out.shape[-2:])


class GroupConv(nn.Module):
    """C_4 × Z² → C_4 × Z²:
    ``out[:, o, r] = Σ_{i, s} conv(y[:, i, s], rot90(W[o, i, s - r], r))`` (s - r mod 4),
    equivariant: input rotated and shifted by one → output rotated and shifted by one."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd, got {kernel}")
        fan_in = c_in * GROUP_ORDER * kernel ** 2
        self.weight = nn.Parameter(torch.randn(c_out, c_in, GROUP_ORDER, kernel, kernel)
                                   * np.sqrt(2.0 / fan_in))
        self.bias = nn.Parameter(torch.zeros(c_out))

    def filters(self) -> torch.Tensor:
        """The full filter bank (C_out · 4, C_in · 4, k, k) of one conv2d call."""
        c_out, c_in, g, k, _ = self.weight.shape
        per_r = []
        for r in range(g):
            shifted = torch.roll(self.weight, shifts=r, dims=2)  # [.., s] = W[.., s - r]
            per_r.append(_rot(shifted, r))
        w = torch.stack(per_r, 1)                              # (O, 4r, I, 4s, k, k)
        return w.reshape(c_out * g, c_in * g, k, k)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        n, c_in, g, h, w = y.shape
        out = F.conv2d(y.reshape(n, c_in * g, h, w), self.filters(),
                       self.bias.repeat_interleave(g), padding=self.weight.shape[-1] // 2)
        return out.reshape(n, -1, g, *out.shape[-2:])


def _pool(y: torch.Tensor) -> torch.Tensor:
    """2×2 max-pooling of (N, C, 4, H, W) maps when H and W are even (it then commutes with
    rot90); odd maps are left as they are."""
    n, c, g, h, w = y.shape
    if h % 2 or w % 2 or h < 4:
        return y
    out = F.max_pool2d(y.reshape(n, c * g, h, w), 2)
    return out.reshape(n, c, g, *out.shape[-2:])


class P4CNN(nn.Module):
    """Lifting conv (``channels``) → ReLU → pool → group conv (2 × ``channels``) → ReLU →
    pool → mean over positions, max over the 4 rotations → linear. Logits are invariant to
    ``torch.rot90`` of square images (exactly, up to the order of floating-point sums)."""

    def __init__(self, image_shape: tuple[int, int], n_classes: int, channels: int = 8):
        super().__init__()
        h, w = image_shape
        if h != w:
            raise ValueError(f"C_4 acts on square images only, got {h}×{w}")
        if channels < 1 or n_classes < 2:
            raise ValueError(f"need channels ≥ 1 and n_classes ≥ 2, got {channels!r}, "
                             f"{n_classes!r}")
        self.lift = LiftingConv(1, channels)
        self.group = GroupConv(channels, 2 * channels)
        self.head = nn.Linear(2 * channels, n_classes)

    def forward(self, images) -> torch.Tensor:
        x = as_images(images).to(self.head.weight.dtype)[:, None]
        y = _pool(F.relu(self.lift(x)))
        y = _pool(F.relu(self.group(y)))
        invariant = y.mean(dim=(-2, -1)).amax(dim=2)  # (N, C): positions, then rotations
        return self.head(invariant)


# ----------------------------------------------------------------- specs, training, cache

@dataclass(frozen=True)
class BaselineSpec:
    """Everything that determines a trained baseline (and its cache key)."""

    dataset: str
    kind: str
    seed: int            # weights, minibatch order, and the training subset (as the quantum models)
    n_train: int
    n_valid: int         # validation images: early stopping (the first of the fixed split)
    epochs: int          # at most (early stopping on validation loss)
    patience: int
    batch_size: int
    lr: float
    weight_decay: float  # L2 penalty of Adam (coupled), chosen on validation
    width: int           # hidden units (MLPs; 0 for logistic) or first-layer channels (p4-cnn)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"baseline kind must be one of {tuple(KINDS)}, got {self.kind!r}")
        for name in ("n_train", "n_valid", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.patience, bool) or self.patience < 0:
            raise ValueError(f"patience must be a non-negative integer, got {self.patience!r}")
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (np.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a non-negative number, got "
                             f"{self.weight_decay!r}")
        if (self.kind == "sector-logistic") != (self.width == 0) or self.width < 0:
            raise ValueError(f"width must be 0 for sector-logistic and positive otherwise, got "
                             f"{self.kind} with width={self.width!r}")

    def build(self) -> nn.Module:
        """An untrained model of this kind (weights from torch's global RNG)."""
        info = data.info(self.dataset)
        if self.kind == "p4-cnn":
            return P4CNN(info.image_shape, len(info.classes), self.width)
        return RingBaseline(self.kind, len(info.classes), self.width)


def _inputs(model: nn.Module, images) -> torch.Tensor:
    """What the trainable part of ``model`` is fitted on: features for ring models (computed
    once), pixels for the CNN."""
    if isinstance(model, RingBaseline):
        with torch.no_grad():
            return model.features(model.grids(images))
    return as_images(images).to(torch.float32)


def _logits(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    return model.forward_features(inputs) if isinstance(model, RingBaseline) else model(inputs)


def fit_baseline(model: nn.Module, images, labels, valid: tuple, spec: BaselineSpec) -> dict:
    """Train ``model`` in place (Adam, cross-entropy, ``spec``'s step and weight decay); keep
    the weights of the epoch with the lowest validation loss, stop after ``spec.patience``
    epochs without improvement (0: run every epoch). Returns the per-epoch history."""
    n_classes = model.head.out_features if isinstance(model.head, nn.Linear) \
        else model.head[-1].out_features
    y = check_labels(labels, n_classes)
    vy = check_labels(valid[1], n_classes)
    if isinstance(model, RingBaseline):
        with torch.no_grad():
            model.standardiser.fit(_inputs(model, images))
    x, vx = _inputs(model, images), _inputs(model, valid[0])
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels")
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    gen = torch.Generator().manual_seed(spec.seed)
    history = {"loss": [], "valid_loss": [], "valid_accuracy": []}
    best = (float("inf"), None, 0)
    for epoch in range(1, spec.epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for start in range(0, len(x), spec.batch_size):
            idx = order[start:start + spec.batch_size]
            loss = F.cross_entropy(_logits(model, x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad():
            logits = _logits(model, vx)
        history["loss"].append(total / len(x))
        history["valid_loss"].append(float(F.cross_entropy(logits, vy)))
        history["valid_accuracy"].append(float((logits.argmax(1) == vy).double().mean()))
        if history["valid_loss"][-1] < best[0]:
            best = (history["valid_loss"][-1],
                    {k: v.detach().clone() for k, v in model.state_dict().items()}, epoch)
        elif spec.patience and epoch - best[2] >= spec.patience:
            break
    model.load_state_dict(best[1])
    history["best_epoch"] = best[2]
    return history


def trained_baseline(spec: BaselineSpec) -> tuple[nn.Module, dict]:
    """Train (or load from the result cache, kind ``surrogate``) the baseline of ``spec`` on
    the training subset a quantum model of the same dataset, ``n_train`` and seed uses.
    Returns the model (eval mode) and a record: per-epoch training and validation loss,
    validation accuracy, the kept epoch, its validation accuracy, seconds, cache hit."""
    images, labels = training_data(spec.dataset, spec.n_train, spec.seed)
    vx, vy = validation_data(spec.dataset, spec.n_valid)

    def compute():
        with torch.random.fork_rng():
            torch.manual_seed(spec.seed)
            model = spec.build()
            start = time.perf_counter()
            history = fit_baseline(model, images, labels, (vx, vy), spec)
        return {"state": model.state_dict(), **history, "n_train": len(labels),
                "seconds": time.perf_counter() - start}

    params = {"baseline": asdict(spec), "data": data.fingerprint(images, labels),
              "valid": data.fingerprint(vx, vy), "sampling": asdict(SAMPLING)}
    result, hit = cached("surrogate", params, compute)
    with torch.random.fork_rng():
        model = spec.build()
    model.load_state_dict(result["state"])
    model.eval()
    record = {k: result[k] for k in ("loss", "valid_loss", "valid_accuracy", "best_epoch",
                                     "n_train", "seconds")}
    record["kept_valid_accuracy"] = result["valid_accuracy"][result["best_epoch"] - 1]
    record["kept_valid_loss"] = result["valid_loss"][result["best_epoch"] - 1]
    record["cached"] = hit
    return model, record
