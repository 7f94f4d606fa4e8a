"""Architecture registry: a name maps to a factory and its permutation spec.

Built-in architectures live here (`mlp-dN` is an MLP with N hidden layers, `vit-dN` a ViT with N
blocks); a user's own come from `--claims-arch module:factory` or the `lmc_claims.architectures`
entry point group (see `registry.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

from torch import nn

from ..permutation.spec import PermutationSpec
from .mlp import MLP, mlp_spec
from .resnet import ResNet20, resnet_spec
from .vgg import VGG, vgg_spec
from .vit import DEPTH as VIT_DEPTH, ViT


@dataclass(frozen=True)
class Architecture:
    name: str
    # factory(input_shape, num_classes, width) -> nn.Module; `width` is the hidden size
    # of an MLP and the width multiplier of the conv nets.
    factory: Callable[..., nn.Module]
    # None: the spec is derived from the model's graph (permutation/derive/).
    spec: Callable[[nn.Module], PermutationSpec] | None
    description: str


def mlp_of_depth(depth: int):
    return lambda input_shape, num_classes, width: MLP(input_shape, num_classes, width=width, depth=depth)


def vit_of_depth(depth: int):
    return lambda input_shape, num_classes, width: ViT(input_shape, num_classes, width=width, depth=depth)


ARCHITECTURES: dict[str, Architecture] = {
    "mlp": Architecture("mlp", mlp_of_depth(3), mlp_spec, "MLP, 3 hidden layers of `width` units, ReLU (the papers' MNIST model)"),
    "mlp-d1": Architecture("mlp-d1", mlp_of_depth(1), mlp_spec, "two-layer network: one hidden layer of `width` units (Ferbach et al.)"),
    "vgg11": Architecture("vgg11", VGG, vgg_spec, "VGG11 with BatchNorm, width multiplier x64 channels base"),
    "resnet20": Architecture("resnet20", partial(ResNet20, norm="bn"), resnet_spec, "ResNet20 with BatchNorm, width multiplier x16 channels base"),
    "resnet20ln": Architecture("resnet20ln", partial(ResNet20, norm="ln"), resnet_spec, "ResNet20 with LayerNorm (per-sample over C,H,W), width multiplier"),
    # Spec derived from the graph (None), as for a user's model.
    "vit": Architecture("vit", vit_of_depth(VIT_DEPTH), None, f"pre-LayerNorm Vision Transformer, {VIT_DEPTH} blocks, `width` heads of "
                        "32 channels (dim 32 x width, MLP 2 x dim)"),
}
