"""A fixed, seeded training recipe: same config on the same device kind gives the same weights."""

from __future__ import annotations

import functools
import math
import threading
from typing import Callable

import torch
from torch import nn

from .cpu import concurrent_safe, concurrently, cpu_threads  # noqa: F401  (the thread rules live in cpu)
from .data import TensorData
from .errors import LmcClaimsError
from .models.registry import build_model
from .recipes import Recipe, TrainConfig
from .seeds import generator


ProgressFn = Callable[[TrainConfig, int, float], None]


def make_model(config: TrainConfig, data: TensorData) -> nn.Module:
    return build_model(config.arch, data.input_shape, data.num_classes, config.width)


OPTIMIZERS = ("adam", "adamw", "sgd")


def make_optimizer(recipe: Recipe, model: nn.Module) -> torch.optim.Optimizer:
    # Fused kernels: one pass over each parameter per step instead of a chain of
    # element-wise ops (the 3 x 512 MLP trains ~1.3x faster on a CPU; benchmarks/RESULTS.md).
    if recipe.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, fused=True)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, fused=True)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                               weight_decay=recipe.weight_decay, fused=True)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}; expected one of {OPTIMIZERS}")


# Model initialisation draws from torch's process-wide generator; holding this lock from
# manual_seed to the end of make_model keeps every model's initial weights a function of its
# seed alone while other threads train.
_INIT_LOCK = threading.Lock()


def train(config: TrainConfig, data: TensorData, device: torch.device, progress: ProgressFn | None = None):
    """Train from scratch; returns the model's state dict on the CPU."""
    with cpu_threads(device):
        return _fit(config, _init(config, data, device), data, device, progress)


def train_many(configs: list[TrainConfig], data: TensorData, device: torch.device,
               progress: ProgressFn | None = None, workers: int | None = None) -> list[dict]:
    """Train several models at once (see `concurrently`); each result is bitwise the one
    `train` gives for its config alone."""
    if configs and not concurrent_safe(make_model(configs[0], data)):
        workers = 1
    return concurrently([functools.partial(train, c, data, device, progress) for c in configs], device, workers)


WARMUP_START = 1e-6  # Ferbach et al.'s warm-up starts at this learning rate (PUBLISHED.md, Figure 2 protocol)


def lr_factor(recipe: Recipe, total: int, step: int) -> float:
    """The learning rate at `step` as a factor of recipe.lr: an optional linear warm-up from
    WARMUP_START, then cosine decay to zero, which ends in a well-settled minimum (LMC results assume one)."""
    if step < recipe.warmup_steps:
        start = min(1.0, WARMUP_START / recipe.lr) if recipe.lr > 0 else 1.0
        return start + (1.0 - start) * step / recipe.warmup_steps
    rest = max(1, total - recipe.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(step - recipe.warmup_steps, rest) / rest))


def augmented(x: torch.Tensor, augment: str, gen: torch.Generator, device) -> torch.Tensor:
    """The epoch's training images: as they are, or ("crop4-flip") each randomly cropped back to its
    size from a zero padding of 4 pixels and flipped horizontally with probability 1/2 (the
    CIFAR-10 augmentation of Ito et al.'s sibling code). The draws come from `gen` (seeded per model
    and epoch) on the CPU; the cropping and flipping run on the device with the data."""
    if not augment:
        return x
    n, _, h, w = x.shape
    dy, dx = (torch.randint(0, 9, (n,), generator=gen).to(device) for _ in range(2))
    flip = (torch.rand(n, generator=gen) < 0.5).to(device)
    padded = nn.functional.pad(x, (4, 4, 4, 4))
    rows = (dy[:, None] + torch.arange(h, device=device)[None, :])  # (n, h)
    cols = (dx[:, None] + torch.arange(w, device=device)[None, :])  # (n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def _init(config: TrainConfig, data: TensorData, device: torch.device) -> nn.Module:
    with _INIT_LOCK:
        torch.manual_seed(config.seed)
        return make_model(config, data).to(device)


def _fit(config: TrainConfig, model: nn.Module, data: TensorData, device: torch.device,
         progress: ProgressFn | None = None) -> dict:
    recipe = config.recipe
    order = generator("train-order", config.seed)
    x = data.x_train[: recipe.n_train].to(device)
    y = data.y_train[: recipe.n_train].to(device)
    opt = make_optimizer(recipe, model)
    steps_per_epoch = math.ceil(len(x) / recipe.batch_size)
    total = steps_per_epoch * recipe.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, functools.partial(lr_factor, recipe, total))
    model.train()
    for epoch in range(recipe.epochs):
        idx = torch.randperm(len(x), generator=order).to(device)
        running = torch.zeros((), device=device)
        views = augmented(x, recipe.augment, generator("augment", config.seed, epoch), device)
        for i in range(steps_per_epoch):
            b = idx[i * recipe.batch_size : (i + 1) * recipe.batch_size]
            loss = nn.functional.cross_entropy(model(views[b]), y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.detach()
        if progress is not None:
            progress(config, epoch + 1, running.item() / steps_per_epoch)
    final = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    for k, v in final.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise LmcClaimsError(
                f"Training {config.label()} diverged: parameter {k} holds NaN or inf values.",
                "lower the learning rate of this run in lmc_claims/scales.py (Run.lr) or check the data for NaN.",
            )
    return final
