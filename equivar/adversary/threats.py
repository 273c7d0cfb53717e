"""Attacks that know the model: white-box, adaptive to the defence, and score-based black-box.

Every attack is L∞ in pixel space (ε on [0, 1] pixels, clipped to [0, 1]) against a model that
maps pixels to logits, for the quantum models :class:`equivar.core.pipeline.QuantumPipeline`
with the model's own sector filter, so the attacker differentiates through pixels → rings →
filter → circuit (Tramèr et al. 2020: attack the defence as deployed).

* **white-box**: a cascade of torchattacks attacks, each run on the images that survived the
  previous ones: APGD with cross-entropy and with the DLR loss (Croce & Hein 2020), each with
  ``restarts`` independent restarts (robust accuracy recorded after every restart), then
  ``torchattacks.AutoAttack`` (version ``standard``: APGD-CE, APGD-T, FAB-T, Square) with its
  components' iterations set to ``steps`` and Square's queries to ``square_queries``;
* **restricted** (adaptive to ring-mean suppression): PGD whose perturbation keeps every ring
  mean of the bilinear ring samples (:func:`ring_mean_preserving_pgd`): the k = 0 component of
  the sampled perturbation is zero, so the whole budget goes to the sectors k ≥ 1 that a
  suppressed model still reads;
* **black-box**: ``torchattacks.Square`` (L∞, margin loss), which needs only the logits, so it is
  blind to gradient masking (Andriushchenko et al. 2020).

:func:`evaluate` runs all three over an increasing list of ε. A perturbation allowed at ε is
allowed at every larger ε, so each attack at ε only attacks the images that no attack of its
family fooled at a smaller ε, and the per-image correctness is the worst case over ε' ≤ ε
(robust accuracy is then non-increasing in ε by construction). :func:`cached_evaluation` stores
the result in the result cache (kind ``threat``). Used by chapter 4.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchattacks
from torch import nn

from equivar import data
from equivar.adversary.attacks import check_budget, check_images, check_pgd
from equivar.cache import cached
from equivar.core.rings import ring_means, sample_grid
from equivar.settings import SAMPLING, Sampling

# the families :func:`evaluate` returns (per image, per ε)
FAMILIES = ("white-box", "restricted", "black-box")
# below this many classes the DLR losses of APGD-DLR and APGD-T are undefined
MIN_CLASSES = 4


class SameDtype(nn.Module):
    """``model`` with logits cast to the input's dtype. The quantum pipeline computes in float64;
    torchattacks' FAB mixes the dtypes of images and logits and fails otherwise."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).to(x.dtype)


@dataclass(frozen=True)
class Budget:
    """What an attacker may spend per image and ε (the cache key of an evaluation)."""

    steps: int = 50              # iterations of APGD, APGD-T, FAB-T and the restricted PGD
    restarts: int = 2            # restarts of APGD-CE, APGD-DLR and the restricted PGD
    square_queries: int = 1000   # queries of Square (black-box, and inside AutoAttack)
    projection_iterations: int = 50  # Newton steps of each projection of the restricted PGD
    step_factor: float = 2.5     # restricted PGD step = factor × ε / steps
    seed: int = 0

    def __post_init__(self):
        check_pgd(self.steps, self.step_factor)
        for name in ("restarts", "square_queries", "projection_iterations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


def tensors(images, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked images (N, 1, H, W) float32 in [0, 1] and labels (N,) int64 as tensors."""
    x = torch.as_tensor(check_images(images))[:, None]
    y = torch.as_tensor(np.array(labels)).to(torch.int64)
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"{len(x)} images but labels of shape {tuple(y.shape)}")
    return x, y


@torch.no_grad()
def still_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per image, whether ``model`` classifies ``x`` as ``y`` (bool numpy array)."""
    return (model(x).argmax(1) == y).numpy() if len(x) else np.zeros(0, dtype=bool)


def _check_classes(n_classes: int) -> None:
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) \
            or n_classes < MIN_CLASSES:
        raise ValueError(f"white-box attacks need at least {MIN_CLASSES} classes (the DLR losses "
                         f"of APGD-DLR and APGD-T), got n_classes={n_classes!r}")


# ----------------------------------------------------------------- white-box

def white_box(model: nn.Module, images, labels, eps: float, budget: Budget, n_classes: int,
              ) -> tuple[np.ndarray, list[tuple[str, float]]]:
    """The white-box cascade at one ε: which images stay correct, and robust accuracy (over all
    given images) after every stage: ``APGD-CE restart r``, ``APGD-DLR restart r``,
    ``AutoAttack (standard)``. Images misclassified when clean count as fooled from the start.
    Seeds derive from ``budget.seed``; the global RNG is left as it was.
    """
    eps = check_budget(eps)
    _check_classes(n_classes)
    x, y = tensors(images, labels)
    net = SameDtype(model).eval()
    alive = still_correct(net, x, y)
    stages = []
    if eps == 0 or not alive.any():
        return alive, stages
    with torch.random.fork_rng():
        runs = [(f"APGD-{loss.upper()} restart {r + 1}", loss, r) for loss in ("ce", "dlr")
                for r in range(budget.restarts)]
        for name, loss, r in runs:
            idx = np.flatnonzero(alive)
            if len(idx):
                atk = torchattacks.APGD(net, norm="Linf", eps=eps, steps=budget.steps,
                                        n_restarts=1, seed=budget.seed * 1000 + r, loss=loss)
                adv = atk(x[idx], y[idx])
                alive[idx] = still_correct(net, adv, y[idx])
            stages.append((name, float(alive.mean())))
        idx = np.flatnonzero(alive)
        if len(idx):
            auto = torchattacks.AutoAttack(net, norm="Linf", eps=eps, version="standard",
                                           n_classes=n_classes, seed=budget.seed)
            # torchattacks' defaults are 10 iterations and 5000 queries; ours are the budget's
            for part in auto._autoattack.attacks:
                if isinstance(part, torchattacks.Square):
                    part.n_queries = budget.square_queries
                else:
                    part.steps = budget.steps
            adv = auto(x[idx], y[idx])
            alive[idx] = still_correct(net, adv, y[idx])
        stages.append(("AutoAttack (standard)", float(alive.mean())))
    return alive, stages


def black_box(model: nn.Module, images, labels, eps: float, budget: Budget) -> np.ndarray:
    """Which images stay correct under ``torchattacks.Square`` (L∞, margin loss,
    ``budget.square_queries`` queries, one restart) at ε."""
    eps = check_budget(eps)
    x, y = tensors(images, labels)
    net = SameDtype(model).eval()
    alive = still_correct(net, x, y)
    idx = np.flatnonzero(alive)
    if eps == 0 or not len(idx):
        return alive
    with torch.random.fork_rng():
        atk = torchattacks.Square(net, norm="Linf", eps=eps, n_queries=budget.square_queries,
                                  n_restarts=1, seed=budget.seed, loss="margin")
        adv = atk(x[idx], y[idx])
    alive[idx] = still_correct(net, adv, y[idx])
    return alive


# ----------------------------------------------------------------- ring-mean-preserving PGD

def ring_mean_map(height: int, width: int, sampling: Sampling = SAMPLING) -> np.ndarray:
    """The linear map pixels → ring means of the ring samples, (n_rings, height · width).

    Ring sampling (bilinear or nearest) is linear in the pixels, so the map is built exactly by
    sampling the ``height · width`` unit images: ``A @ x.ravel() == ring_means(sample_grid(x))``.
    """
    basis = np.eye(height * width).reshape(-1, height, width)
    return np.ascontiguousarray(ring_means(sample_grid(basis, sampling)).T)


class RingMeanNullSpace:
    """The ring-mean constraint A δ = 0 of :func:`ring_mean_map` on pixel perturbations δ:
    projection onto its null space (δ ↦ δ - Vᵀ V δ, V an orthonormal basis of the row space of
    A from its SVD), and the exact projection onto the null space ∩ a box (:meth:`project_box`)."""

    def __init__(self, height: int, width: int, sampling: Sampling = SAMPLING):
        self.matrix = ring_mean_map(height, width, sampling)
        _, s, vt = np.linalg.svd(self.matrix, full_matrices=False)
        self.basis = torch.as_tensor(vt[s > 1e-12 * s.max()])  # (rank, H·W) float64
        self._matrix = torch.as_tensor(self.matrix)

    def project(self, delta: torch.Tensor) -> torch.Tensor:
        """``delta`` (B, H, W) with its ring-mean component removed."""
        flat = delta.reshape(len(delta), -1)
        return (flat - (flat @ self.basis.T) @ self.basis).reshape(delta.shape)

    def project_box(self, delta: torch.Tensor, low: torch.Tensor, high: torch.Tensor,
                    iterations: int = 50, tol: float = 1e-12,
                    multipliers: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The nearest point to ``delta`` (B, H, W) with A δ = 0 and low ≤ δ ≤ high, per image.

        Solved through the dual, whose n_rings variables λ give δ(λ) = clip(delta - Aᵀλ, low,
        high): semismooth Newton steps on A δ(λ) = 0 (generalised Jacobian -A_F A_Fᵀ over the
        pixels F not clipped) with an Armijo backtracking on the concave dual function, until
        max |A δ| ≤ ``tol`` or ``iterations`` steps. Every result lies in the box; its
        ring-mean change is what is left of the tolerance (the callers measure it). Returns
        (δ, λ); pass λ back as ``multipliers`` to start the next, nearby projection from it.
        """
        a = self._matrix
        batch = len(delta)
        target, lo, hi = (t.reshape(batch, -1) for t in (delta, low, high))
        lam = torch.zeros(batch, a.shape[0], dtype=torch.float64) if multipliers is None \
            else multipliers.clone()
        ridge = 1e-12 * torch.eye(a.shape[0], dtype=torch.float64)

        def dual(lam, target, lo, hi):
            shift = lam @ a
            out = torch.clamp(target - shift, lo, hi)
            value = 0.5 * ((out - target) ** 2).sum(1) + (shift * out).sum(1)
            return out, out @ a.T, value

        out, residual, value = dual(lam, target, lo, hi)
        for _ in range(iterations):
            idx = torch.nonzero(residual.abs().amax(1) > tol)[:, 0]
            if not len(idx):
                break
            t0, l0, h0, lam0 = target[idx], lo[idx], hi[idx], lam[idx]
            u = t0 - lam0 @ a
            free = ((u >= l0) & (u <= h0)).to(torch.float64)[:, None, :] * a[None]
            step = torch.linalg.solve(free @ free.transpose(1, 2) + ridge,
                                      residual[idx][..., None])[..., 0]
            slope = (residual[idx] * step).sum(1)
            size = torch.ones(len(idx), dtype=torch.float64)
            for _ in range(40):
                new = dual(lam0 + size[:, None] * step, t0, l0, h0)
                short = new[2] < value[idx] + 1e-4 * size * slope
                if not short.any():
                    break
                size = torch.where(short, size / 2, size)
            lam[idx] = lam0 + size[:, None] * step
            out[idx], residual[idx], value[idx] = new
        return out.reshape(delta.shape), lam

    def change(self, delta) -> np.ndarray:
        """Ring-mean change A δ of perturbations (B, H, W), shape (B, n_rings)."""
        flat = np.asarray(delta, dtype=np.float64).reshape(len(delta), -1)
        return flat @ self.matrix.T


def ring_mean_preserving_pgd(model: nn.Module, images, labels, eps: float, steps: int,
                             step_factor: float = 2.5, iterations: int = 50, seed: int = 0,
                             null: RingMeanNullSpace | None = None
                             ) -> tuple[np.ndarray, np.ndarray]:
    """L∞ PGD on pixels restricted to perturbations that keep the ring means of the ring samples.

    Each step moves by ``step_factor · ε / steps`` along the sign of the cross-entropy gradient
    projected onto the null space of the pixels → ring-means map, then returns to the feasible
    set {A δ = 0} ∩ the L∞ ball ∩ [0, 1] pixels by the exact projection
    :meth:`RingMeanNullSpace.project_box` (at most ``iterations`` Newton steps; alternating
    projections between the two sets left ring-mean changes up to 0.33 on MNIST at ε = 1). The
    random start (uniform in the ball, torch generator seeded with ``seed``) is projected the
    same way. An image is kept at the first iterate that fools the model (else the last).
    Returns the adversarial images (N, H, W) float32 and, per image, the largest ring-mean
    change max_r |A δ|_r left (pixel units, after rounding to float32; compare with ε).
    """
    eps = check_budget(eps)
    check_pgd(steps, step_factor)
    x, y = tensors(images, labels)
    x0 = x[:, 0].to(torch.float64)
    if null is None:
        null = RingMeanNullSpace(*x0.shape[-2:])
    if eps == 0 or not len(x0):
        return x0.numpy().astype(np.float32), np.zeros(len(x0))
    low, high = torch.clamp(-x0, min=-eps), torch.clamp(1 - x0, max=eps)
    gen = torch.Generator().manual_seed(int(seed))
    delta = (torch.rand(x0.shape, generator=gen, dtype=torch.float64) * 2 - 1) * eps
    delta, lam = null.project_box(delta, low, high, iterations)
    alpha = step_factor * eps / steps
    best = delta.clone()
    done = torch.zeros(len(x0), dtype=torch.bool)
    model.eval()
    for step in range(steps + 1):
        # the model sees float32 pixels, as under every other attack; constraints in float64
        adv = (x0 + delta).to(torch.float32).requires_grad_(True)
        logits = model(adv)
        fooled = (logits.argmax(1) != y) & ~done
        best[fooled] = delta[fooled].detach()
        done |= fooled
        if step == steps or bool(done.all()):
            break
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), adv)
        delta = delta + alpha * torch.sign(null.project(grad.to(torch.float64)))
        delta, lam = null.project_box(delta, low, high, iterations, multipliers=lam)
    best[~done] = delta[~done]
    adv = (x0 + best).to(torch.float32).numpy()
    residual = np.abs(null.change(adv.astype(np.float64) - x0.numpy())).max(1)
    return adv, residual


def restricted(model: nn.Module, images, labels, eps: float, budget: Budget,
               null: RingMeanNullSpace | None = None) -> tuple[np.ndarray, float]:
    """Which images stay correct under ``budget.restarts`` runs of
    :func:`ring_mean_preserving_pgd` at ε (each on the survivors of the previous), and the
    largest ring-mean change of any adversarial example tried (pixel units)."""
    eps = check_budget(eps)
    x, y = tensors(images, labels)
    alive = still_correct(model.eval(), x, y)
    residual = 0.0
    if eps == 0:
        return alive, residual
    for r in range(budget.restarts):
        idx = np.flatnonzero(alive)
        if not len(idx):
            break
        adv, res = ring_mean_preserving_pgd(model, x[idx, 0].numpy(), y[idx].numpy(), eps,
                                            budget.steps, budget.step_factor,
                                            budget.projection_iterations,
                                            seed=budget.seed * 1000 + r, null=null)
        alive[idx] = still_correct(model, torch.as_tensor(adv)[:, None], y[idx])
        residual = max(residual, float(res.max()))
    return alive, residual


# ----------------------------------------------------------------- all of it, over ε

def evaluate(model: nn.Module, images, labels, epsilons, budget: Budget, n_classes: int,
             families=FAMILIES) -> dict[str, np.ndarray]:
    """Every family of ``families`` over the increasing ``epsilons`` (the first may be 0).

    Returns arrays: ``epsilons`` (E,); ``clean`` (N,) bool; per family (E, N) bool, True where
    the image is still classified correctly after every attack of the family at every
    ε' ≤ ε (worst case over ε); ``stages`` (E, S) white-box robust accuracy after each stage,
    ``stage_names`` (S,); ``residual`` (E,) largest ring-mean change of the restricted attack;
    ``seconds`` (F,) time spent per family, in the order of ``families``.
    """
    eps_list = [check_budget(e) for e in epsilons]
    if not eps_list or any(b <= a for a, b in zip(eps_list, eps_list[1:])):
        raise ValueError(f"epsilons must be a non-empty increasing sequence, got {epsilons!r}")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown attack family {unknown[0]!r}; valid: {FAMILIES}")
    x, y = tensors(images, labels)
    xs, ys = x[:, 0].numpy(), y.numpy()
    clean = still_correct(model.eval(), x, y)
    null = RingMeanNullSpace(*xs.shape[-2:])
    out = {f: np.zeros((len(eps_list), len(xs)), dtype=bool) for f in families}
    seconds = dict.fromkeys(families, 0.0)
    names = [f"APGD-{loss} restart {r + 1}" for loss in ("CE", "DLR")
             for r in range(budget.restarts)] + ["AutoAttack (standard)"]
    stages = np.full((len(eps_list), len(names)), np.nan)
    residual = np.zeros(len(eps_list))
    alive = {f: clean.copy() for f in families}
    for e, eps in enumerate(eps_list):
        for family in families:
            start = time.perf_counter()
            idx = np.flatnonzero(alive[family])
            if eps > 0 and len(idx):
                if family == "white-box":
                    ok, recorded = white_box(model, xs[idx], ys[idx], eps, budget, n_classes)
                    # accuracies over the survivors → over all images (the rest are fooled)
                    for s, (_, acc) in enumerate(recorded):
                        stages[e, s] = acc * len(idx) / len(xs)
                elif family == "restricted":
                    ok, residual[e] = restricted(model, xs[idx], ys[idx], eps, budget, null)
                else:
                    ok = black_box(model, xs[idx], ys[idx], eps, budget)
                alive[family][idx] = ok
            if family == "white-box" and np.isnan(stages[e]).all():
                stages[e] = alive[family].mean()  # nothing left to attack (or ε = 0)
            out[family][e] = alive[family]
            seconds[family] += time.perf_counter() - start
    return {"epsilons": np.array(eps_list), "clean": clean, **out, "stages": stages,
            "stage_names": np.array(names), "residual": residual,
            "seconds": np.array([seconds[f] for f in families])}


def cached_evaluation(model: nn.Module, model_id: dict, images, labels, epsilons,
                      budget: Budget, n_classes: int) -> dict[str, np.ndarray]:
    """:func:`evaluate` (all families) through the result cache (kind ``threat``, ``.npz``);
    ``model_id`` identifies the model (its spec as a dict). ``seconds`` is the time the
    computation took when it ran."""
    params = {"model": model_id, "epsilons": [float(e) for e in epsilons],
              "budget": asdict(budget), "n_classes": n_classes, "sampling": asdict(SAMPLING),
              "data": data.fingerprint(np.asarray(images), np.asarray(labels))}
    result, _ = cached("threat", params,
                       lambda: evaluate(model, images, labels, epsilons, budget, n_classes),
                       fmt="npz")
    return result
