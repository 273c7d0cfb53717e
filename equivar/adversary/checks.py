"""Checks against fooling ourselves when evaluating robustness (Carlini et al. 2019, §5).

* :func:`reaches_zero`: accuracy goes to about 0 as ε grows, for every model and threat model;
* :func:`dominance`: the white-box attacker is never weaker than transfer or black-box on the
  same model (if it were, its gradients would be broken or masked);
* :func:`convergence` and :func:`flattening`: accuracy versus PGD/APGD iterations and restarts
  flattens (the attack has converged; more compute would not change the verdict);
* :func:`reference_agreement`: torchattacks' PGD reproduces a hand-written PGD
  (:func:`equivar.adversary.attacks.pgd_reference`) from the same start, and APGD-CE is at least
  as strong as that reference.

Each returns a DataFrame or a dict that a chapter prints. Used by chapter 4.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torchattacks
from torch import nn

from equivar.adversary import attacks
from equivar.adversary.threats import SameDtype, still_correct, tensors


def _check_tol(tol) -> float:
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.floating)) \
            or not np.isfinite(tol) or not 0 <= tol <= 1:
        raise ValueError(f"tol must be a number in [0, 1] (accuracy), got {tol!r}")
    return float(tol)


def _need(table: pd.DataFrame, columns, name: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; has {list(table.columns)}")


def reaches_zero(curves: pd.DataFrame, keys, tol: float = 0.02) -> pd.DataFrame:
    """Per group of ``keys`` (e.g. dataset, variant, model, threat): the largest ε tried, the
    accuracy there, the smallest ε at which accuracy ≤ ``tol`` (NaN if never), and ``passed``.

    ``curves`` columns: the keys, ``eps``, ``accuracy`` (already averaged as wanted).
    """
    tol = _check_tol(tol)
    keys = list(keys)
    _need(curves, keys + ["eps", "accuracy"], "curves")
    rows = []
    for group, part in curves.groupby(keys, sort=False):
        part = part.sort_values("eps")
        low = part[part["accuracy"] <= tol]
        rows.append({**dict(zip(keys, group if isinstance(group, tuple) else (group,))),
                     "largest eps": float(part["eps"].iloc[-1]),
                     "accuracy there": float(part["accuracy"].iloc[-1]),
                     "first eps with accuracy <= tol": float(low["eps"].iloc[0]) if len(low)
                     else float("nan"),
                     "passed": bool(len(low))})
    return pd.DataFrame(rows)


def dominance(curves: pd.DataFrame, keys, strong: str = "white-box",
              weaker=("transfer", "transfer (strong)", "black-box"), tol: float = 0.0
              ) -> pd.DataFrame:
    """Per group of ``keys`` + ``eps`` (from the ``threat`` column of ``curves``): accuracy under
    ``strong`` minus the lowest accuracy under any of ``weaker``. ``passed`` when that excess is
    ≤ ``tol`` (the white-box attack did at least as well as every other one).

    ``curves`` columns: the keys, ``threat``, ``eps``, ``accuracy``.
    """
    tol = _check_tol(tol)
    keys = list(keys)
    _need(curves, keys + ["threat", "eps", "accuracy"], "curves")
    wide = curves.pivot_table(index=keys + ["eps"], columns="threat", values="accuracy")
    absent = [t for t in (strong, *weaker) if t not in wide.columns]
    if absent:
        raise ValueError(f"curves have no threat model(s) {absent}")
    out = wide[[strong]].rename(columns={strong: f"{strong} accuracy"})
    others = wide[list(weaker)]
    out["lowest other accuracy"] = others.min(axis=1)
    out["lowest other"] = others.idxmin(axis=1)
    out["excess"] = out[f"{strong} accuracy"] - out["lowest other accuracy"]
    out["passed"] = out["excess"] <= tol + 1e-12
    return out.reset_index()


def convergence(model: nn.Module, images, labels, eps: float, steps=(5, 10, 20, 50, 100),
                restarts: int = 3, step_factor: float = 2.5, seed: int = 0) -> pd.DataFrame:
    """Accuracy under PGD (torchattacks, random start, step ``step_factor · ε / steps``) and
    APGD-CE versus iterations (one run each), and versus restarts at the most iterations
    (worst case over restarts 1..r per image). Columns: attack, curve (``steps`` or
    ``restarts``), steps, restarts, accuracy. The global RNG is left as it was."""
    eps = attacks.check_budget(eps)
    steps = [int(s) for s in steps]
    for s in steps:
        attacks.check_pgd(s, step_factor)
    if isinstance(restarts, bool) or not isinstance(restarts, (int, np.integer)) or restarts < 1:
        raise ValueError(f"restarts must be a positive integer, got {restarts!r}")
    x, y = tensors(images, labels)
    net = SameDtype(model).eval()

    def run(attack: str, n_steps: int, restart: int) -> np.ndarray:
        with torch.random.fork_rng():
            torch.manual_seed(seed * 1000 + restart)
            if attack == "PGD":
                atk = torchattacks.PGD(net, eps=eps, alpha=step_factor * eps / n_steps,
                                       steps=n_steps, random_start=True)
            else:
                atk = torchattacks.APGD(net, norm="Linf", eps=eps, steps=n_steps, n_restarts=1,
                                        seed=seed * 1000 + restart, loss="ce")
            return still_correct(net, atk(x, y), y)

    rows = []
    for attack in ("PGD", "APGD-CE"):
        for n_steps in steps:
            rows.append({"attack": attack, "curve": "steps", "steps": n_steps, "restarts": 1,
                         "accuracy": float(run(attack, n_steps, 0).mean())})
        alive = np.ones(len(y), dtype=bool)
        for r in range(restarts):
            alive &= run(attack, steps[-1], r)
            rows.append({"attack": attack, "curve": "restarts", "steps": steps[-1],
                         "restarts": r + 1, "accuracy": float(alive.mean())})
    return pd.DataFrame(rows)


def flattening(curve: pd.DataFrame, keys=(), tol: float = 0.02) -> pd.DataFrame:
    """Per attack and curve of :func:`convergence` output (and ``keys``): the accuracy change
    from the second-to-last to the last point (more steps, or one more restart), and ``passed``
    when it is at most ``tol`` in size."""
    tol = _check_tol(tol)
    keys = list(keys) + ["attack", "curve"]
    _need(curve, keys + ["steps", "restarts", "accuracy"], "curve")
    rows = []
    for group, part in curve.groupby(keys, sort=False):
        by = "steps" if group[-1] == "steps" else "restarts"
        part = part.sort_values(by)
        values = part["accuracy"].to_numpy()
        change = float(values[-1] - values[-2]) if len(values) > 1 else float("nan")
        rows.append({**dict(zip(keys, group)), "from": int(part[by].iloc[max(len(part) - 2, 0)]),
                     "to": int(part[by].iloc[-1]), "last change": change,
                     "passed": bool(np.isfinite(change) and abs(change) <= tol)})
    return pd.DataFrame(rows)


def reference_agreement(model: nn.Module, images, labels, eps: float, steps: int = 10,
                        step_factor: float = 2.5, seed: int = 0) -> dict[str, float]:
    """torchattacks' PGD (through :func:`equivar.adversary.attacks.craft`) against the
    hand-written :func:`~equivar.adversary.attacks.pgd_reference` from the same random start:
    the largest pixel difference of the adversarial images, and the accuracy under each; and
    the accuracy under torchattacks' APGD-CE with the same iterations (it should not be
    higher than the reference PGD's by more than noise)."""
    eps = attacks.check_budget(eps)
    x = attacks.check_images(images)
    y = np.asarray(labels)
    ours = attacks.craft(model, x, y, "pgd", eps, steps, step_factor, seed)
    with torch.random.fork_rng():  # craft's start: the first draw after seeding
        torch.manual_seed(seed)
        start = torch.as_tensor(x)[:, None]
        start = torch.clamp(start + torch.empty_like(start).uniform_(-eps, eps), 0, 1)
    ref = attacks.pgd_reference(model, x, y, eps, steps, step_factor * eps / steps,
                                start[:, 0].numpy())
    xt, yt = tensors(x, y)
    net = SameDtype(model).eval()
    with torch.random.fork_rng():
        apgd = torchattacks.APGD(net, norm="Linf", eps=eps, steps=steps, n_restarts=1,
                                 seed=seed, loss="ce")(xt, yt)
    acc = lambda adv: float(still_correct(net, torch.as_tensor(adv)[:, None], yt).mean())
    return {"max |PGD - reference|": float(np.abs(ours - ref).max()) if len(x) else 0.0,
            "accuracy PGD (torchattacks)": acc(ours), "accuracy PGD (reference)": acc(ref),
            "accuracy APGD-CE (torchattacks)": float(still_correct(net, apgd, yt).mean())}
