"""A fixed, seeded training recipe: same config on the same device kind gives the same weights."""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn

from .data import TensorData
from .errors import LmcClaimsError
from .models.registry import build_model


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "mlp"
    dataset: str = "mnist5k"
    width: int = 512  # hidden units (MLP) or width multiplier (conv nets)
    seed: int = 0
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3  # Adam, as Git Re-Basin's MLP experiments
    weight_decay: float = 0.0
    n_train: int | None = None  # first n training examples; None = all
    optimizer: str = "adam"  # "adam", or "sgd": plain SGD without momentum (mean-field theory's setting)

    def as_dict(self) -> dict:
        d = asdict(self)
        # The config is the cache key: leaving the default optimizer out keeps the keys of
        # every model trained before the field existed (all Adam) valid.
        if d["optimizer"] == "adam":
            del d["optimizer"]
        return d

    def label(self) -> str:
        return f"{self.arch}-w{self.width}-{self.dataset}-seed{self.seed}"


ProgressFn = Callable[[TrainConfig, int, float], None]


def make_model(config: TrainConfig, data: TensorData) -> nn.Module:
    return build_model(config.arch, data.input_shape, data.num_classes, config.width)


OPTIMIZERS = ("adam", "sgd")


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; expected one of {OPTIMIZERS}")


# Intra-op threads while training on a CPU (None: keep torch's setting). The steps are
# small (batch 128); one thread makes the weights independent of the machine's core count
# (bitwise, for the same config) and avoids the waits multi-threaded ops pay when the CPU
# is shared with other processes: on a loaded 2-core machine, training the 3 x 512 MLP
# ran ~25x faster than with 2 threads (benchmarks/RESULTS.md).
TRAIN_THREADS: int | None = 1


def _thread_limited(fn):
    @functools.wraps(fn)
    def wrapper(config, data, device, *args, **kwargs):
        before = torch.get_num_threads()
        limit = TRAIN_THREADS if torch.device(device).type == "cpu" else None
        if limit is None or limit >= before:
            return fn(config, data, device, *args, **kwargs)
        torch.set_num_threads(limit)
        try:
            return fn(config, data, device, *args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapper


@_thread_limited
def train(config: TrainConfig, data: TensorData, device: torch.device, progress: ProgressFn | None = None):
    """Train from scratch; returns the model's state dict on the CPU."""
    # Seeds derived arithmetically (never from hash()) so they are stable across processes.
    torch.manual_seed(config.seed)
    model = make_model(config, data).to(device)
    order = torch.Generator().manual_seed(1_000_003 * config.seed + 17)
    x = data.x_train[: config.n_train].to(device)
    y = data.y_train[: config.n_train].to(device)
    opt = make_optimizer(config, model)
    steps_per_epoch = math.ceil(len(x) / config.batch_size)
    total = steps_per_epoch * config.epochs
    # Cosine decay to zero: ends in a well-settled minimum, which LMC results assume.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    model.train()
    for epoch in range(config.epochs):
        idx = torch.randperm(len(x), generator=order).to(device)
        running = torch.zeros((), device=device)
        for i in range(steps_per_epoch):
            b = idx[i * config.batch_size : (i + 1) * config.batch_size]
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
