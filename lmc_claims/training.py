"""A fixed, seeded training recipe: same config on the same device kind gives the same weights."""

from __future__ import annotations

import functools
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, TypeVar

import torch
from torch import nn

from .cpu import cpu_workers, limit_threads
from .data import TensorData
from .errors import LmcClaimsError
from .models.registry import build_model
from .seeds import generator


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
        for name, default in (("optimizer", "adam"), ("momentum", 0.0), ("warmup_steps", 0)):
            if d[name] == default:
                del d[name]
        return d

    def label(self) -> str:
        return f"{self.arch}-w{self.width}-{self.dataset}-seed{self.seed}"


ProgressFn = Callable[[TrainConfig, int, float], None]
T = TypeVar("T")


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


# Intra-op threads per model while training on a CPU. The steps are small (batch 128): one
# thread per model makes the weights independent of the machine's core count (bitwise, for
# the same config) and never leaves a step waiting for a descheduled worker thread on a
# shared CPU. The cores are used by training several models at once instead (`train_many`):
# on an idle 2-core machine two concurrent single-threaded MLP trainings reach ~1.8x the
# throughput of one, and ~1.4x that of one model trained with two threads
# (benchmarks/RESULTS.md).
TRAIN_THREADS: int | None = 1

# Model initialisation draws from torch's process-wide generator; holding this lock from
# manual_seed to the end of make_model keeps every model's initial weights a function of its
# seed alone while other threads train.
_INIT_LOCK = threading.Lock()


@contextmanager
def cpu_threads(device: torch.device | str):
    """torch's intra-op threads limited to TRAIN_THREADS (read at call time) on a CPU device."""
    with limit_threads(device, TRAIN_THREADS):
        yield


def concurrent_safe(model: nn.Module) -> bool:
    """Whether training can run beside other trainings without changing its result: no layer
    draws random numbers from torch's shared generator while training (dropout does)."""
    return not any(isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules())


def concurrently(jobs: list[Callable[[], T]], device: torch.device | str, workers: int | None = None) -> list[T]:
    """Run jobs (training, STE searches, a measurement's evaluations), on a CPU up to `workers`
    (default `cpu_workers()`) at once with one intra-op thread each, elsewhere one after another.
    Results in the jobs' order; when one fails, or Ctrl-C arrives, the jobs not started are dropped."""
    workers = 1 if torch.device(device).type != "cpu" else min(workers or cpu_workers(), len(jobs))
    with cpu_threads(device):
        if workers <= 1:
            return [job() for job in jobs]
        pool = ThreadPoolExecutor(workers, thread_name_prefix="lmc-work")
        try:
            return [f.result() for f in [pool.submit(job) for job in jobs]]
        finally:
            # After a job that failed, or Ctrl-C, the jobs not started are dropped (the running ones finish).
            pool.shutdown(wait=True, cancel_futures=True)


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
        for i in range(steps_per_epoch):
            b = idx[i * recipe.batch_size : (i + 1) * recipe.batch_size]
            loss = nn.functional.cross_entropy(model(x[b]), y[b])
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
