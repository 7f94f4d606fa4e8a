"""How models are trained and how STE searches run, as plain values (no torch): the recipes a
scale names and the cache keys are made of.

`Recipe` / `TrainConfig` are a model's training; `SteRecipe` is one straight-through-estimator
search, with Ito et al.'s and Git Re-Basin's recipes as published (sources beside each).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace


AUGMENTATIONS = ("", "crop4-flip")


@dataclass(frozen=True)
class Recipe:
    """How a model is trained: everything but which model (architecture, width, seed)."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3  # Adam, as Git Re-Basin's MLP experiments
    weight_decay: float = 0.0
    n_train: int | None = None  # first n training examples; None = all
    # "adam", "adamw" (decoupled weight decay: Theus et al.'s ViT), or "sgd" (plain SGD unless momentum is
    # set: mean-field theory's setting)
    optimizer: str = "adam"
    momentum: float = 0.0  # SGD only
    # Linear warm-up from 1e-6 over this many steps before the cosine decay (Ferbach et al.'s Figure 2
    # protocol: 10 steps); 0 = none.
    warmup_steps: int = 0
    # Data augmentation, off unless named: "crop4-flip" = random crop with padding 4 and horizontal
    # flip (CIFAR-10, Ito et al.'s sibling code), seeded per model and epoch, done on the device.
    augment: str = ""
    # Where the recipe comes from, e.g. "Ito et al. sibling code [code: e5-a/STE-MM scripts/run_train.sh]".
    source: str = ""

    def __post_init__(self):
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, not {self.augment!r}")


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "mlp"
    dataset: str = "mnist5k"
    width: int = 512  # hidden units (MLP) or width multiplier (conv nets)
    seed: int = 0
    recipe: Recipe = Recipe()

    def as_dict(self) -> dict:
        """The cache key's training part: one flat dict of the model and its recipe."""
        d = {k: v for k, v in asdict(self).items() if k != "recipe"}
        d.update(asdict(self.recipe))
        # Fields at their defaults are left out: keys of models trained before a field existed stay valid.
        # The source is a citation, not training: it never enters the key.
        d.pop("source", None)
        for name, default in (("optimizer", "adam"), ("momentum", 0.0), ("warmup_steps", 0), ("augment", "")):
            if d[name] == default:
                del d[name]
        return d

    def label(self) -> str:
        return f"{self.arch}-w{self.width}-{self.dataset}-seed{self.seed}"



STE_OPTIMIZERS = ("adam", "sgd")
WEIGHTS = ("random", "midpoint")
SELECTIONS = ("last", "best")


@dataclass(frozen=True)
class SteRecipe:
    """How one STE search runs. The defaults are Ito et al.'s recipe (`ITO_RECIPE`)."""

    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    optimizer: str = "adam"  # "adam" or "sgd"
    momentum: float = 0.0  # SGD only
    # "random": weights rand(2) normalised to sum 1, redrawn each batch (Ito et al.);
    # "midpoint": the fixed lerp(1/2) (Git Re-Basin).
    weights: str = "random"
    # "last": the permutation of the last step; "best": that of the step with the lowest batch loss.
    select: str = "last"
    max_steps: int | None = None  # stop after this many steps even if epochs remain
    seed: int = 0  # batch order, combination weights, weight matching's visiting order
    wm_max_sweeps: int = 100  # per projection (warm-started; it stops at the first sweep without progress)

    def __post_init__(self):
        if self.optimizer not in STE_OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {STE_OPTIMIZERS}, not {self.optimizer!r}")
        if self.weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS}, not {self.weights!r}")
        if self.select not in SELECTIONS:
            raise ValueError(f"select must be one of {SELECTIONS}, not {self.select!r}")
        if self.epochs < 0 or self.batch_size < 1 or self.lr < 0:
            raise ValueError("epochs >= 0, batch_size >= 1 and lr >= 0 are required")
        if self.max_steps is not None and self.max_steps < 0:
            raise ValueError("max_steps must be None or >= 0")

    @classmethod
    def ito(cls, **changes) -> "SteRecipe":
        """Ito et al.'s recipe, with any field changed (e.g. `SteRecipe.ito(epochs=2)`)."""
        return replace(ITO_RECIPE, **changes)

    @classmethod
    def git_rebasin(cls, **changes) -> "SteRecipe":
        """Git Re-Basin's Algorithm 2 recipe, e.g. `SteRecipe.git_rebasin(epochs=20, max_steps=1500)`."""
        return replace(GIT_REBASIN_RECIPE, **changes)

    def steps_per_epoch(self, n_examples: int) -> int:
        return math.ceil(n_examples / self.batch_size)  # the last, smaller batch is kept

    def n_steps(self, n_examples: int) -> int:
        total = self.epochs * self.steps_per_epoch(n_examples)
        return total if self.max_steps is None else min(total, self.max_steps)


# Ito et al. (e5-a/STE-MM): Adam 1e-3, 10 epochs, batch 256, random weights per batch, proxy at A.
# Their loop keeps the weight-matching object of the last batch and permutes B with it after the
# final epoch, i.e. the last step's projection; PUBLISHED.md records nothing about best-vs-last
# for this recipe, so the last permutation is returned.
ITO_RECIPE = SteRecipe(epochs=10, batch_size=256, lr=1e-3, optimizer="adam", weights="random", select="last")

# Git Re-Basin Algorithm 2 (src/mnist_mlp_ste2.py): SGD 1e-2 momentum 0.9, batch 1000, 250
# epochs (the caller may cap the steps with max_steps), fixed midpoint, best permutation.
GIT_REBASIN_RECIPE = SteRecipe(epochs=250, batch_size=1000, lr=1e-2, optimizer="sgd", momentum=0.9,
                               weights="midpoint", select="best")

# The former name: `SteConfig(epochs=2, batch_size=256)` still builds a recipe (Ito's, with those
# changes), and `dataclasses.asdict` works on it.
SteConfig = SteRecipe
