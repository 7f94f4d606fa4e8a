"""Linear interpolation between two models and the loss / accuracy barrier.

Barrier (Entezari et al. 2022; Ainsworth et al. 2023):
    B = max_lam [ L(theta(lam)) - ((1 - lam) L(theta_A) + lam L(theta_B)) ].
The accuracy barrier has the same form with accuracy and the sign flipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

Params = dict[str, torch.Tensor]

DEFAULT_LAMBDAS = np.linspace(0.0, 1.0, 25)  # Git Re-Basin uses 25 points


def lerp(a: Params, b: Params, lam: float) -> Params:
    """(1 - lam) a + lam b for float tensors; integer buffers are taken from a."""
    return {k: torch.lerp(a[k], b[k], lam) if a[k].is_floating_point() else a[k] for k in a}


@torch.no_grad()
def evaluate(model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, batch: int = 2048):
    """Mean cross-entropy and accuracy of `model` with `params` on (x, y)."""
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), batch):
        out = functional_call(model, params, (x[i : i + batch],))
        loss += nn.functional.cross_entropy(out, y[i : i + batch], reduction="sum").item()
        correct += (out.argmax(1) == y[i : i + batch]).sum().item()
    return loss / len(x), correct / len(x)


@dataclass
class Curve:
    """Loss and accuracy along the path, on one split."""

    lambdas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray

    @property
    def loss_barrier(self) -> float:
        return barrier(self.lambdas, self.loss)

    @property
    def accuracy_barrier(self) -> float:
        return barrier(self.lambdas, -self.accuracy)


def chord(lambdas, first, last):
    """(1 - lam) first + lam last, written so that first == last gives exactly first
    (the barrier of a model with itself is then exactly zero). Works on numpy and xarray."""
    return first + lambdas * (last - first)


def barrier(lambdas: np.ndarray, values: np.ndarray) -> float:
    """max over the grid of values minus the chord between the endpoints."""
    return float(np.max(values - chord(lambdas, values[0], values[-1])))


def chord_barrier(values, dim: str = "lam"):
    """`barrier` over the `dim` coordinate of an xarray DataArray (any other dimensions kept)."""
    line = chord(values[dim], values.isel({dim: 0}, drop=True), values.isel({dim: -1}, drop=True))
    return (values - line).max(dim)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def reset_bn_stats(model: nn.Module, params: Params, x: torch.Tensor, batch: int = 500) -> Params:
    """Recompute BatchNorm running statistics of `params` on x: the plain average of the
    per-batch statistics (so the running mean is the exact mean of x when batches are equal).

    Interpolated weights do not match either endpoint's statistics; Git Re-Basin / REPAIR
    reset them on training data at every interpolation point."""
    params = dict(params)
    bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    if not bns:
        return params
    for n in bns:
        params[f"{n}.running_mean"] = torch.zeros_like(params[f"{n}.running_mean"])
        params[f"{n}.running_var"] = torch.ones_like(params[f"{n}.running_var"])
        params[f"{n}.num_batches_tracked"] = torch.zeros_like(params[f"{n}.num_batches_tracked"])
    momenta = {n: m.momentum for n, m in bns.items()}
    was_training = model.training
    try:
        for m in bns.values():
            m.momentum = None  # cumulative average over batches instead of an exponential one
        model.train()
        for i in range(0, len(x), batch):
            functional_call(model, params, (x[i : i + batch],))  # updates the buffers in params in place
    finally:
        for n, m in bns.items():
            m.momentum = momenta[n]
        model.train(was_training)
    return params


def interpolation_curve(model: nn.Module, a: Params, b: Params, x, y, lambdas=DEFAULT_LAMBDAS,
                        bn_data: torch.Tensor | None = None) -> Curve:
    """Loss and accuracy at each lam; with `bn_data`, BatchNorm statistics are reset on it first."""
    lambdas = np.asarray(lambdas, dtype=float)
    pts = []
    for lam in lambdas:
        params = lerp(a, b, float(lam))
        if bn_data is not None:
            params = reset_bn_stats(model, params, bn_data)
        pts.append(evaluate(model, params, x, y))
    return Curve(lambdas, np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
