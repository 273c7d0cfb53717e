"""Recorded model selection: every setting of the book's quantum models chosen on validation.

A declared search space (:class:`SearchSpace`, each field with its provenance) and budget;
:func:`search` trains a seeded sample of its configurations (early stopping on validation
loss) and scores each on the validation split; :func:`choose` picks the best. Every trial is
a cached trained model, so the table of all configurations tried is rebuilt from the cache
and shown in the book ("How the settings were chosen"). Nothing here loads the test split.
Used by chapter 2 (and, through the chosen specs, chapters 3 and 4).
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import pandas as pd

from equivar.learn.train import ModelSpec, trained
from equivar.provenance import check_types, setting


@dataclass(frozen=True)
class SearchSpace:
    """The configurations model selection may choose from, and its budget."""

    n_layers: tuple[int, ...] = setting((4, 8, 12, 16), "ours",
                                        "depth; the first edition used 6 without a recorded "
                                        "choice; a first default-profile search chose the "
                                        "largest of (4, 12), so the grid reaches 16")
    lr: tuple[float, ...] = setting((0.003, 0.01, 0.03), "ours",
                                    "Adam step (West: 1e-3, far too slow for our budget); a "
                                    "first search chose the smallest of (0.01, 0.03)")
    scale: tuple[float, ...] = setting((30.0, 100.0, 300.0), "ours",
                                       "logits = scale × probability (West: 50 × ⟨Z⟩); a first "
                                       "search chose the largest of (30, 100)")
    schedule: tuple[str, ...] = setting(("constant", "cosine"), "ours",
                                        "learning-rate schedule")
    budget: int = setting(8, "ours", "configurations trained per dataset and variant, drawn "
                                     "without replacement from the product above (seeded)")
    max_epochs: int = setting(40, "ours", "epochs at most; early stopping ends most runs "
                                          "sooner")
    patience: int = setting(4, "ours", "epochs without a lower validation loss before stopping")
    n_train: int = setting(2000, "ours", "training images per trial (the chapters then train "
                                         "the chosen configuration on their own n_train)")
    n_valid: int = setting(1000, "ours", "validation images scored per trial")
    batch_size: int = setting(64, "ours", "minibatch size of every trial")
    seed: int = setting(0, "ours", "seed of the sampled configurations, the weights and the "
                                   "training subsets of the trials")

    def __post_init__(self):
        check_types(self)
        for name in ("n_layers", "lr", "scale", "schedule"):
            if not getattr(self, name):
                raise ValueError(f"search space {name} is empty")
        for name in ("budget", "max_epochs", "patience", "n_train", "n_valid", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")

    def configurations(self) -> list[dict]:
        """The sampled configurations (at most ``budget``), in a fixed order."""
        grid = [dict(zip(("n_layers", "lr", "scale", "schedule"), values)) for values in
                itertools.product(self.n_layers, self.lr, self.scale, self.schedule)]
        rng = np.random.default_rng([self.seed, 7])
        pick = np.sort(rng.choice(len(grid), size=min(self.budget, len(grid)), replace=False))
        return [grid[i] for i in pick]


SELECTED = ("n_layers", "lr", "scale", "schedule")


def trial_spec(space: SearchSpace, dataset: str, variant: str, config: dict,
               planted_k: int = 2) -> ModelSpec:
    """The model trained for one configuration of the search."""
    return ModelSpec(dataset, variant, space.seed, space.n_train, space.max_epochs,
                     space.batch_size, config["lr"], config["n_layers"], config["scale"],
                     planted_k=planted_k, schedule=config["schedule"], patience=space.patience,
                     n_valid=space.n_valid)


def search(space: SearchSpace, dataset: str, variant: str, planted_k: int = 2) -> pd.DataFrame:
    """Train (or load) every sampled configuration; one row per configuration with its
    validation accuracy and loss at the kept epoch, the epoch, and the training accuracy."""
    rows = []
    for config in space.configurations():
        _, record = trained(trial_spec(space, dataset, variant, config, planted_k),
                            progress=False)
        best = record["best_epoch"] - 1
        rows.append({"dataset": dataset, "variant": variant, **config,
                     "valid_accuracy": record["valid_accuracy"][best],
                     "valid_loss": record["valid_loss"][best], "epoch": best + 1,
                     "epochs_run": len(record["loss"]),
                     "train_accuracy": record["train_accuracy"][best]})
    return pd.DataFrame(rows)


def choose(table: pd.DataFrame) -> dict:
    """The configuration with the highest validation accuracy (ties: lower validation loss,
    then fewer layers) and the epoch early stopping kept."""
    best = table.sort_values(["valid_accuracy", "valid_loss", "n_layers"],
                             ascending=[False, True, True]).iloc[0]
    return {**{k: best[k].item() if hasattr(best[k], "item") else best[k] for k in SELECTED},
            "epochs": int(best["epoch"])}


def selected_spec(base: ModelSpec, space: SearchSpace) -> ModelSpec:
    """``base`` (a chapter's model) with the settings chosen for its dataset and variant:
    depth, step, scale, schedule, and as many epochs as early stopping kept."""
    chosen = choose(search(space, base.dataset, base.variant, base.planted_k))
    return replace(base, n_layers=int(chosen["n_layers"]), lr=float(chosen["lr"]),
                   scale=float(chosen["scale"]), schedule=str(chosen["schedule"]),
                   epochs=int(chosen["epochs"]))


def space_table(space: SearchSpace) -> pd.DataFrame:
    """The search space as a table of settings, values and why (for the book)."""
    return pd.DataFrame([{"setting": f.name, "value": getattr(space, f.name),
                          "why": f.metadata["why"]} for f in fields(space)])


def as_dict(space: SearchSpace) -> dict:
    return asdict(space)
