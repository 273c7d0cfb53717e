"""Attacks in pixel space: classical surrogates, FGSM/PGD (torchattacks), noise controls.

The attacker perturbs **pixels** (L∞ ball of radius ε around an image in [0, 1], clipped to
[0, 1]); the quantum targets then sample the perturbed image on rings and amplitude-encode it.
:class:`QuantumPipeline` is that whole path as one differentiable torch module, so PGD can
also run white-box on the quantum models (the reverse direction). Adversarial sets are
stored as checksummed ``.npz`` entries of the result cache and reused unchanged for every
target (chapters 3 and 4). Protocol after West et al. (2023) as described in
``shared/science.md`` §4; used by chapters 3 and 4.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchattacks
from torch import nn
from tqdm import tqdm

from equivar import data, sectors
from equivar.cache import cached
from equivar.config import SAMPLING
from equivar.model import QuantumClassifier, amplitudes

SURROGATES = ("cnn", "mlp", "cnn-rot")
ATTACKS = ("fgsm", "pgd")
NOISES = ("uniform", "sign")


# ----------------------------------------------------------------- classical surrogates

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
    from equivar.train import training_data

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


# ----------------------------------------------------------------- the quantum pipeline

class QuantumPipeline(nn.Module):
    """Pixels → ring grid (bilinear) → amplitudes → quantum classifier → logits.

    Input: images (N, H, W) or (N, 1, H, W) in [0, 1]; differentiable end to end (the fast
    path of :mod:`equivar.unitary`), so torchattacks can attack it white-box. An optional
    sector filter (chapter 4) acts on the grid before the circuit.
    """

    def __init__(self, model: QuantumClassifier, grid_filter=None):
        super().__init__()
        self.model = model
        self.grid_filter = grid_filter  # an equivar.suppress.SectorFilter, or None

    def forward(self, images):
        x = torch.as_tensor(images)
        if x.ndim == 4 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 3:
            raise ValueError("images must have shape (N, H, W) or (N, 1, H, W) (grey scale), "
                             f"got {tuple(x.shape)}")
        grids = SAMPLING.sample(x.to(torch.float64))
        states = amplitudes(grids) if self.grid_filter is None else self.grid_filter.states(grids)
        return self.model(states)


def success_rate(pred_clean, pred_perturbed, labels) -> float:
    """Share of the inputs classified correctly when clean that the perturbation flips."""
    pred_clean, pred_perturbed, labels = map(np.asarray, (pred_clean, pred_perturbed, labels))
    correct = pred_clean == labels
    return float((pred_perturbed[correct] != labels[correct]).mean()) if correct.any() else np.nan


@torch.no_grad()
def predict_images(model: nn.Module, images, batch_size: int = 2048) -> np.ndarray:
    """Predicted classes for images (N, H, W) in [0, 1] (any classifier of this module)."""
    model.eval()
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    out = [model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


# ----------------------------------------------------------------- crafting

def craft(model: nn.Module, images, labels, attack: str, eps: float, steps: int = 20,
          step_factor: float = 2.5, seed: int = 0) -> np.ndarray:
    """Adversarial images (N, H, W) float32 from torchattacks, white-box on ``model``.

    ``attack``: ``"fgsm"`` or ``"pgd"`` (L∞, random start, ``steps`` steps of size
    ``step_factor * eps / steps``). ε = 0 returns the images unchanged. The random start is
    drawn from a torch RNG seeded with ``seed`` (the global RNG is left as it was).
    """
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")
    if not 0 <= eps <= 1:
        raise ValueError(f"eps must lie in [0, 1] (pixel units), got {eps}")
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))[:, None]
    y = torch.as_tensor(np.array(labels))
    if eps == 0:
        return x[:, 0].numpy().copy()
    model.eval()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if attack == "fgsm":
            atk = torchattacks.FGSM(model, eps=eps)
        else:
            atk = torchattacks.PGD(model, eps=eps, alpha=step_factor * eps / steps, steps=steps,
                                   random_start=True)
        adv = atk(x, y)
    return adv[:, 0].detach().numpy().astype(np.float32)


def noise(images, eps: float, kind: str, seed: int = 0) -> np.ndarray:
    """Random L∞ perturbations of the same budget, clipped to [0, 1]:
    ``"uniform"`` in [-ε, ε] or ``"sign"`` (±ε)."""
    if kind not in NOISES:
        raise ValueError(f"noise kind must be one of {NOISES}, got {kind!r}")
    x = np.asarray(images, dtype=np.float32)
    rng = np.random.default_rng(seed)
    delta = rng.uniform(-eps, eps, x.shape) if kind == "uniform" else \
        eps * rng.choice([-1.0, 1.0], size=x.shape)
    return np.clip(x + delta.astype(np.float32), 0, 1)


def adversarial_set(source: nn.Module, source_id: dict, images, labels, attack: str, eps: float,
                    steps: int, step_factor: float, seed: int) -> np.ndarray:
    """:func:`craft` through the result cache (``.npz``, checksummed): the same set is reused
    for every target. ``source_id`` identifies the source model (its spec as a dict)."""
    params = {"source": source_id, "attack": attack, "eps": eps, "steps": steps,
              "step_factor": step_factor, "seed": seed, "sampling": asdict(SAMPLING),
              "data": data.fingerprint(np.asarray(images), np.asarray(labels))}

    def compute():
        adv = craft(source, images, labels, attack, eps, steps, step_factor, seed)
        return {"images": adv, "labels": np.asarray(labels)}

    result, _ = cached("adversarial", params, compute, fmt="npz")
    return result["images"]


# ----------------------------------------------------------------- sector view of perturbations

def grid_perturbation(clean, perturbed) -> tuple[np.ndarray, np.ndarray]:
    """Ring grids of clean and perturbed images and their difference δ (grid units)."""
    g0, g1 = SAMPLING.sample(clean), SAMPLING.sample(perturbed)
    return g0, g1 - g0


def sector_energy_share(clean, perturbed, encoded: bool = True) -> np.ndarray:
    """Per image, the share of a perturbation's energy in each independent sector k = 0..N/2
    (rows sum to 1; all zero if nothing changed).

    ``encoded=True``: of the change of the encoded state, Δψ = ψ(x') - ψ(x) (both
    normalised), which is what the model sees; renormalisation mixes a multiple of ψ into Δψ,
    so even a ring-constant shift is not purely k = 0 there. ``encoded=False``: of the grid
    perturbation δ = g(x') - g(x) after sampling, before normalisation.
    """
    a, b = SAMPLING.sample(clean), SAMPLING.sample(perturbed)
    if encoded:
        a, b = sectors.normalise(a), sectors.normalise(b)
    power = np.abs(sectors.angular_dft(b - a)) ** 2
    folded = sectors.fold_weights(power.sum(-2))
    total = folded.sum(-1, keepdims=True)
    return np.divide(folded, total, out=np.zeros_like(folded), where=total > 1e-24)


def restricted(clean, perturbed, keep) -> np.ndarray:
    """Grids of clean images plus only the sectors ``keep`` of the grid perturbation.

    Returns grids (N, R, N_angles), not pixel images: the restriction is exact on the sampled
    grid. Ring means of δ stay within ε; its k ≥ 1 part within 2ε.
    """
    g0, delta = grid_perturbation(clean, perturbed)
    modes = sorted({m for k in keep for m in sectors.sector_partners(k, delta.shape[-1])})
    return g0 + sectors.keep_sectors(delta, modes)


def logit_change_by_sector(model: QuantumClassifier, clean, perturbed, labels) -> np.ndarray:
    """Per image and independent sector k, the change of the true-class logit,
    scale·(Tr[ρ'_k M_{y,k}] - Tr[ρ_k M_{y,k}]), shape (N, N/2 + 1). Invariant models only."""
    cfg = model.config
    if not cfg.equivariant:
        raise ValueError("the sector decomposition needs an invariant model")
    with torch.no_grad():
        blocks = sectors.operator_blocks(model.observables().numpy(), cfg.n_rad, cfg.n_ang)
    before = sectors.sector_contributions(SAMPLING.sample(clean), blocks)
    after = sectors.sector_contributions(SAMPLING.sample(perturbed), blocks)
    idx = np.arange(len(labels))
    change = cfg.scale * (after - before)[idx, np.asarray(labels)]  # (N, N_angles)
    return sectors.fold_weights(change)


def pgd_reference(model: nn.Module, images, labels, eps: float, steps: int, alpha: float,
                  start: np.ndarray) -> np.ndarray:
    """A short hand-written L∞ PGD from a given start (for cross-checking torchattacks)."""
    x0 = torch.as_tensor(np.asarray(images, dtype=np.float32))[:, None]
    y = torch.as_tensor(np.array(labels))
    adv = torch.as_tensor(np.asarray(start, dtype=np.float32))[:, None]
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(adv), y)
        (grad,) = torch.autograd.grad(loss, adv)
        adv = adv.detach() + alpha * grad.sign()
        adv = torch.clamp(x0 + torch.clamp(adv - x0, -eps, eps), 0, 1)
    return adv[:, 0].numpy()
