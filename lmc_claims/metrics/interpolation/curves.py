"""The barrier of a path and the straight line between two models' parameters.

Barrier (Entezari et al. 2022; Ainsworth et al. 2023):
    B = max_lam [ L(theta(lam)) - ((1 - lam) L(theta_A) + lam L(theta_B)) ].
The accuracy barrier has the same form with accuracy and the sign flipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

Params = dict[str, torch.Tensor]

DEFAULT_LAMBDAS = np.linspace(0.0, 1.0, 25)  # Git Re-Basin uses 25 points


def lerp(a: Params, b: Params, lam: float) -> Params:
    """(1 - lam) a + lam b for float tensors; integer buffers are taken from a."""
    return {k: torch.lerp(a[k], b[k], lam) if a[k].is_floating_point() else a[k] for k in a}


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
