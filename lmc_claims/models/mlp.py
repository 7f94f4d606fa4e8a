"""Multi-layer perceptron: the papers' MNIST model (3 hidden layers of 512)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..permutation.spec import PermutationSpec


class MLP(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int = 512, depth: int = 3):
        super().__init__()
        sizes = [math.prod(input_shape)] + [width] * depth + [num_classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


def mlp_spec(model: MLP) -> PermutationSpec:
    """Hidden layer l is permuted by P_l: rows of layer l, columns of layer l+1."""
    axes: dict[str, tuple[str | None, ...]] = {}
    n = len(model.layers)
    for i in range(n):
        p_out = f"P_{i}" if i < n - 1 else None
        p_in = f"P_{i - 1}" if i > 0 else None
        axes[f"layers.{i}.weight"] = (p_out, p_in)
        axes[f"layers.{i}.bias"] = (p_out,)
    return PermutationSpec.from_axes(axes)
