"""Architecture registry: a name maps to a factory and its permutation spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..errors import unknown_name
from ..permutation.spec import PermutationSpec
from .mlp import MLP, mlp_spec


@dataclass(frozen=True)
class Architecture:
    name: str
    # factory(input_shape, num_classes, width, depth) -> nn.Module
    factory: Callable[..., nn.Module]
    spec: Callable[[nn.Module], PermutationSpec]
    description: str


ARCHITECTURES: dict[str, Architecture] = {
    "mlp": Architecture("mlp", MLP, mlp_spec, "MLP with ReLU; width = hidden units, depth = hidden layers"),
}


def get_architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise unknown_name("architecture", name, ARCHITECTURES)
    return ARCHITECTURES[name]


def build_model(arch: str, input_shape, num_classes: int, width: int, depth: int) -> nn.Module:
    return get_architecture(arch).factory(tuple(input_shape), num_classes, width=width, depth=depth)
