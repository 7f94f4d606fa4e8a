"""Looking up architectures: built-in names, `mlp-dN`, `vit-dN`, import paths and entry points."""

from __future__ import annotations

import importlib
import re
from importlib.metadata import entry_points

from torch import nn

from ..errors import LmcClaimsError, unknown_name
from ..names import TAG
from ..permutation.spec import PermutationSpec
from . import ARCHITECTURES, Architecture, mlp_of_depth, vit_of_depth
from .mlp import mlp_spec

ENTRY_POINT_GROUP = "lmc_claims.architectures"
_LOADED: dict[str, Architecture] = {}


def _from_factory(name: str, factory, where: str) -> Architecture:
    if not callable(factory):
        raise LmcClaimsError(
            f"{where} is not callable (got {type(factory).__name__}).",
            "point --claims-arch at a function factory(input_shape, num_classes, width) -> torch.nn.Module.",
        )
    spec = getattr(factory, "permutation_spec", None)  # optional hand-written spec

    def checked(input_shape, num_classes, width):
        try:
            model = factory(tuple(input_shape), num_classes, width)
        except TypeError as e:
            raise LmcClaimsError(
                f"{where} could not be called as factory(input_shape, num_classes, width): {e}.",
                "give the factory the signature factory(input_shape: tuple, num_classes: int, width: int).",
            ) from None
        if not isinstance(model, nn.Module):
            raise LmcClaimsError(
                f"{where} returned a {type(model).__name__}, not a torch.nn.Module.",
                "make the factory return the network (an nn.Module instance).",
            )
        return model

    return Architecture(name, checked, spec, f"user architecture from {where} (spec {'given' if spec else 'derived'})")


def _import_path(path: str) -> Architecture:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise LmcClaimsError(
            f"--claims-arch {path!r}: module {module_name!r} cannot be imported ({e}).",
            "install the package that holds it (pip install -e .) or fix the import path (module.sub:function).",
        ) from None
    try:
        factory = getattr(module, attr)
    except AttributeError:
        raise LmcClaimsError(
            f"--claims-arch {path!r}: module {module_name!r} has no attribute {attr!r}.",
            "name a function defined in that module, as module.sub:function.",
        ) from None
    return _from_factory(path, factory, f"{path!r}")


def _entry_point(name: str) -> Architecture | None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return _from_factory(name, ep.load(), f"entry point {ENTRY_POINT_GROUP}:{name}")
    return None


def known_names() -> list[str]:
    return sorted(set(ARCHITECTURES) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}) + ["mlp-dN", "vit-dN"]




def get_architecture(name: str) -> Architecture:
    if TAG in name:
        return get_architecture(name.split(TAG, 1)[0])
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    if name in _LOADED:
        return _LOADED[name]
    m = re.fullmatch(r"(mlp|vit)-d(\d+)", name)
    if m and int(m.group(2)) >= 1:
        depth = int(m.group(2))
        arch = (Architecture(name, mlp_of_depth(depth), mlp_spec, f"MLP with {depth} hidden layers") if m.group(1) == "mlp" else
                Architecture(name, vit_of_depth(depth), None, f"pre-LayerNorm Vision Transformer with {depth} blocks"))
    elif ":" in name:
        arch = _import_path(name)
    else:
        arch = _entry_point(name)
        if arch is None:
            raise unknown_name("architecture", name, known_names())
    _LOADED[name] = arch
    return arch


def build_model(arch: str, input_shape, num_classes: int, width: int) -> nn.Module:
    return get_architecture(arch).factory(tuple(input_shape), num_classes, width)


def permutation_spec(name: str, model: nn.Module, example_input) -> PermutationSpec:
    """The architecture's hand-written spec of `model`, else the one derived from its graph."""
    from ..permutation.derive import derive_spec

    hand = get_architecture(name).spec
    return hand(model) if hand is not None else derive_spec(model, example_input)


def validate(name: str, input_shape, num_classes: int = 10) -> None:
    """Build the architecture once and check its permutation spec, so a broken user
    architecture fails at start-up with a clear message instead of inside every test."""
    import torch

    from ..permutation.derive import derive_spec

    arch = get_architecture(name)
    model = arch.factory(tuple(input_shape), num_classes, 1)
    if arch.spec is None:
        derive_spec(model, torch.zeros(2, *input_shape))
    else:
        arch.spec(model).check(model.state_dict())
