"""The reference defences of chapter 4: training on perturbed copies of the training set.

Gaussian-noise augmentation, and adversarial training on PGD examples crafted on a classical
surrogate trained with another seed than the surrogates whose attacks the model is scored
against. :func:`trained_defended` is :func:`equivar.learn.train.trained` with the augmentation
that a :class:`~equivar.learn.train.ModelSpec` names.
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np

from equivar.adversary import attacks
from equivar.learn.surrogates import SurrogateSpec, train_surrogate
from equivar.learn.train import ModelSpec, trained

# adversarial training crafts on a surrogate of seed + this offset (independent of the attacks)
ADVERSARIAL_TRAINING_SEED_OFFSET = 1000


def augmented_training_set(images, labels, kind: str, strength: float, seed: int,
                           surrogate=None, surrogate_id: dict | None = None, steps: int = 20,
                           step_factor: float = 2.5):
    """The training images plus one perturbed copy of each: ``kind`` is ``"gaussian"``
    (σ = strength, clipped to [0, 1]) or ``"pgd"`` (ε = strength, crafted on ``surrogate``).
    With ``surrogate_id`` (the surrogate's spec as a dict) the PGD set goes through the result
    cache, so models that train on the same images share one crafted set."""
    images = np.asarray(images, dtype=np.float32)
    if kind == "gaussian":
        rng = np.random.default_rng([seed, 7])
        extra = np.clip(images + strength * rng.standard_normal(images.shape), 0, 1)
    elif kind == "pgd":
        if surrogate is None:
            raise ValueError("adversarial training needs a surrogate to craft PGD examples on")
        if surrogate_id is None:
            extra = attacks.craft(surrogate, images, labels, "pgd", strength, steps,
                                  step_factor, seed=seed + 1000)
        else:
            extra = attacks.adversarial_set(surrogate, surrogate_id, images, labels, "pgd",
                                            strength, steps, step_factor, seed=seed + 1000)
    else:
        raise ValueError(f"augmentation must be 'gaussian' or 'pgd', got {kind!r}")
    return (np.concatenate([images, extra.astype(np.float32)]),
            np.concatenate([np.asarray(labels), np.asarray(labels)]))


def trained_defended(spec: ModelSpec, progress: bool = True):
    """:func:`equivar.learn.train.trained` for any ``spec``, building the augmentation that
    ``spec.augment`` names (``"none"``, ``"gaussian"`` or ``"pgd"``)."""
    if spec.augment == "none":
        return trained(spec, progress=progress)

    def augmentation(images, labels):
        surrogate, surrogate_id = None, None
        if spec.augment == "pgd":
            # crafted once per training set and shared by every variant (result cache)
            kind, n_train, epochs = spec.augment_surrogate
            surrogate_spec = SurrogateSpec(spec.dataset, kind,
                                           spec.seed + ADVERSARIAL_TRAINING_SEED_OFFSET,
                                           n_train, epochs)
            surrogate, _ = train_surrogate(surrogate_spec)
            surrogate_id = asdict(surrogate_spec)
        return augmented_training_set(images, labels, spec.augment, spec.augment_strength,
                                      spec.seed, surrogate, surrogate_id)

    return trained(spec, progress=progress, augmentation=augmentation)
