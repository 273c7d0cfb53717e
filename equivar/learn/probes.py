"""The information ceiling of a model: classifiers on exactly what it can access.

An invariant model reads an image only through the twirled state, i.e. its sector blocks
ρ_k (:func:`equivar.core.sectors.sector_blocks`); West et al.'s ansatz reads even less, only
the sums over even and odd k (chapter 1 derives it). Two kinds of reference classifier bound
what a quantum model of a given kind could reach on the same grid:

* :func:`fit_probe`: a multinomial logistic regression (scikit-learn) on a feature set
  (:data:`FEATURE_SETS`): West's parity sums, all independent sector blocks, k = 0 alone,
  k ≥ 1 alone, the raw normalised grid, the pixels. Its regularisation is chosen on the
  validation split; the test split only scores the chosen probe.
* :class:`IdealMeasurement`: the best a measurement of the model's kind can do: a free unitary
  on the radial register per group of sectors (per parity for West's ansatz, per k for the
  sector-resolved one), then the radial-basis probabilities as class scores, trained with Adam.

Used by the capacity ladder of chapter 2.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from equivar.core import sectors

FEATURE_SETS = {
    "west-parity": "Σ_{k even} ρ_k and Σ_{k odd} ρ_k: all West's ansatz can access",
    "sector-blocks": "every independent sector block ρ_k, k = 0..N/2: all an invariant model "
                     "can access",
    "k=0": "ρ_0 = N μμᵀ alone: the ring-mean profile",
    "k>=1": "ρ_k for k = 1..N/2: everything but the ring means",
    "grid": "the normalised ring grid itself (not invariant)",
    "pixels": "the image's pixels (not invariant, all pixels, not only the sampled ones)",
}


def _hermitian_features(blocks: np.ndarray) -> np.ndarray:
    """Real coordinates of Hermitian matrices (..., R, R): diagonal, then real and imaginary
    parts above it; shape (..., R²)."""
    r = blocks.shape[-1]
    upper = np.triu_indices(r, 1)
    diag = np.real(np.diagonal(blocks, axis1=-2, axis2=-1))
    return np.concatenate([diag, blocks[..., upper[0], upper[1]].real,
                           blocks[..., upper[0], upper[1]].imag], axis=-1)


def features(images: np.ndarray, grids: np.ndarray, kind: str) -> np.ndarray:
    """Feature matrix (n, d) of one :data:`FEATURE_SETS` ``kind``.

    ``images``: (n, H, W) pixels; ``grids``: their ring grids (n, R, N).
    """
    if kind not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {kind!r}; valid: {', '.join(FEATURE_SETS)}")
    if kind == "pixels":
        return np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    if kind == "grid":
        return sectors.normalise(grids).reshape(len(grids), -1)
    blocks = sectors.sector_blocks(grids)                   # (n, N, R, R)
    n_angles = blocks.shape[1]
    if kind == "west-parity":
        parts = [blocks[:, 0::2].sum(1), blocks[:, 1::2].sum(1)]
    else:
        ks = {"sector-blocks": sectors.independent_sectors(n_angles), "k=0": [0],
              "k>=1": sectors.independent_sectors(n_angles)[1:]}[kind]
        parts = [blocks[:, k] for k in ks]
    return np.concatenate([_hermitian_features(p) for p in parts], axis=-1)


def fit_probe(train: tuple, valid: tuple, test: tuple | None = None,
              strengths=(0.001, 0.01, 0.1, 1.0, 10.0), seed: int = 0) -> dict:
    """A logistic-regression probe, its inverse regularisation C chosen on ``valid``.

    ``train``, ``valid``, ``test``: ``(features (n, d), labels (n,))``. Returns the chosen C,
    the validation accuracy of every C tried (``tried``), the chosen probe's validation
    accuracy and, if ``test`` is given, its test accuracy (the only use of the test split).
    """
    if not strengths:
        raise ValueError("strengths must name at least one C")
    scaler = StandardScaler().fit(train[0])
    x_train, x_valid = scaler.transform(train[0]), scaler.transform(valid[0])
    tried, models = {}, {}
    for c in strengths:
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
        model.fit(x_train, train[1])
        tried[c] = float((model.predict(x_valid) == valid[1]).mean())
        models[c] = model
    best = max(strengths, key=lambda c: (tried[c], -c))  # ties: the stronger regularisation
    out = {"C": best, "tried": tried, "valid_accuracy": tried[best]}
    if test is not None:
        out["test_accuracy"] = float((models[best].predict(scaler.transform(test[0]))
                                      == test[1]).mean())
    return out


class IdealMeasurement(torch.nn.Module):
    """Class scores p_c = Σ_g ⟨c| U_g ρ_g U_g† |c⟩ with a free unitary U_g on the radial
    register for each group g of sectors (ρ_g = Σ_{k ∈ g} ρ_k); logits = ``scale`` · p.

    ``groups``: lists of angular modes k, e.g. ``[[0, 2, 4, 6], [1, 3, 5, 7]]`` (West's parity
    structure) or ``[[k] for k in range(N)]`` (sector-resolved). Input: sector blocks
    (B, N, R, R) complex. U_g = exp(A_g - A_g†) (A_g complex, initialised small).
    """

    def __init__(self, groups, n_rings: int, n_classes: int, scale: float = 30.0,
                 seed: int = 0):
        super().__init__()
        if n_classes > n_rings:
            raise ValueError(f"{n_classes} classes need at least as many rings, got {n_rings}")
        self.groups = [list(g) for g in groups]
        self.n_classes, self.scale = n_classes, scale
        gen = torch.Generator().manual_seed(seed)
        shape = (len(self.groups), n_rings, n_rings)
        self.generator = torch.nn.Parameter(torch.complex(
            0.1 * torch.randn(shape, generator=gen, dtype=torch.float64),
            0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)))

    def unitaries(self) -> torch.Tensor:
        """(n_groups, R, R) unitaries."""
        return torch.linalg.matrix_exp(self.generator - self.generator.conj().transpose(-1, -2))

    def forward(self, blocks: torch.Tensor) -> torch.Tensor:
        u = self.unitaries()
        rho = torch.stack([blocks[:, g].sum(1) for g in self.groups], dim=1)  # (B, G, R, R)
        rotated = u @ rho @ u.conj().transpose(-1, -2)
        probs = torch.diagonal(rotated, dim1=-2, dim2=-1).real.sum(1)       # (B, R)
        return self.scale * probs[:, : self.n_classes]


def groups_of(variant: str, n_angles: int) -> list[list[int]]:
    """The sector groups a model variant's measurement can tell apart (``"west"``: even and
    odd k; ``"sector"``: every k alone)."""
    if variant == "west":
        return [list(range(0, n_angles, 2)), list(range(1, n_angles, 2))]
    if variant == "sector":
        return [[k] for k in range(n_angles)]
    raise ValueError(f"variant must be 'west' or 'sector' (invariant models), got {variant!r}")


def fit_ideal(train: tuple, valid: tuple, variant: str, n_classes: int, epochs: int = 60,
              lr: float = 0.05, scales=(30.0, 100.0, 300.0), batch_size: int = 256,
              seed: int = 0) -> dict:
    """Train :class:`IdealMeasurement` for ``variant`` on grids; scale and epoch (early
    stopping) chosen on ``valid``. ``train``/``valid``: ``(grids (n, R, N), labels)``.
    Returns the chosen scale and epoch, the validation accuracy of each scale, the model."""
    blocks = {name: torch.as_tensor(sectors.sector_blocks(g)) for name, (g, _) in
              (("train", train), ("valid", valid))}
    y_train, y_valid = torch.as_tensor(train[1]), torch.as_tensor(valid[1])
    n_rings, n_angles = train[0].shape[-2:]
    tried, best = {}, None
    for scale in scales:
        model = IdealMeasurement(groups_of(variant, n_angles), n_rings, n_classes, scale, seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(seed)
        best_here = (-1.0, 0, None)
        for epoch in range(1, epochs + 1):
            order = torch.randperm(len(y_train), generator=gen)
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                loss = torch.nn.functional.cross_entropy(model(blocks["train"][idx]), y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                acc = float((model(blocks["valid"]).argmax(1) == y_valid).float().mean())
            if acc > best_here[0]:
                best_here = (acc, epoch, {k: v.clone() for k, v in model.state_dict().items()})
        tried[scale] = best_here[0]
        if best is None or best_here[0] > best[0]:
            model.load_state_dict(best_here[2])
            best = (best_here[0], best_here[1], scale, model)
    return {"valid_accuracy": best[0], "epoch": best[1], "scale": best[2], "tried": tried,
            "model": best[3]}
