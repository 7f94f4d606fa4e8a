"""lmc-claims as a library, on `nn.Module`s: derive a permutation spec, match two models, permute
one, measure the loss barrier between two, merge several. Nothing is cached: every call computes.

    import lmc_claims as lc

    spec = lc.derive_spec(model_a, x[:2])
    perm = lc.match(model_a, model_b, method="wm")           # or "am" / "ste" with data=(x, y)
    b_aligned = lc.permute(model_b, perm)                     # a new model; model_b is untouched
    curve = lc.interpolate(model_a, b_aligned, (x, y))        # curve.loss, curve.loss_barrier
    merged = lc.merge([model_a, model_b, model_c])            # MergeMany; method="anchor": onto the first

The same functions as the claim tests use (weight matching, activation matching, STE, MergeMany,
interpolation with BatchNorm statistics reset on training inputs).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .errors import LmcClaimsError
from .metrics.interpolation import DEFAULT_LAMBDAS, Curve, has_batchnorm, interpolation_curve
from .names import METHODS
from .permutation.apply import Perms, apply_permutation
from .permutation.spec import PermutationSpec
from .recipes import ITO_RECIPE, SteRecipe
from .testing.checks import spec_of

Data = tuple[torch.Tensor, torch.Tensor]  # (inputs, integer class labels)


def derive_spec(model: nn.Module, example: torch.Tensor) -> PermutationSpec:
    """The model's permutation spec: its own (`model.permutation_spec()`, when it has one), else the
    one derived from its graph on this example input (`permutation/derive`)."""
    return spec_of(model, example)


@dataclass(frozen=True)
class Permutation:
    """A permutation of a model's hidden units: one index tensor per permutation of the spec."""

    spec: PermutationSpec
    perms: Perms
    method: str = ""

    def apply(self, model: nn.Module) -> nn.Module:
        return permute(model, self)

    def __len__(self) -> int:
        return len(self.perms)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in model.state_dict().items()}


def _spec_of(model: nn.Module, spec: PermutationSpec | None, example: torch.Tensor | None, data: Data | None):
    if spec is not None:
        return spec
    if example is None and data is not None:
        example = data[0][:2]
    if example is None:
        raise LmcClaimsError("Deriving a permutation spec needs an example input.",
                             "pass example=x[:2] (or data=(x, y), or spec=... a PermutationSpec).")
    return derive_spec(model, example)


def match(model_a: nn.Module, model_b: nn.Module, method: str = "wm", *, data: Data | None = None,
          spec: PermutationSpec | None = None, example: torch.Tensor | None = None, seed: int = 0,
          recipe: SteRecipe | None = None) -> Permutation:
    """The permutation of model_b's units that aligns it with model_a.

    method: "wm" (weight matching, no data), "am" (activation matching on data's inputs) or "ste"
    (the straight-through estimator on data, Ito et al.'s recipe unless `recipe` is given)."""
    if method not in METHODS:
        raise LmcClaimsError(f"Unknown matching method {method!r}.", f"use one of {', '.join(METHODS)}.")
    spec = _spec_of(model_a, spec, example, data)
    a, b = _state(model_a), _state(model_b)
    if method == "wm":
        from .matching.weight import weight_matching

        return Permutation(spec, weight_matching(spec, a, b, seed=seed).perms, method)
    if data is None:
        raise LmcClaimsError(f"Matching with method={method!r} needs data.", "pass data=(x, y), training inputs and labels.")
    template = copy.deepcopy(model_a)
    if method == "am":
        from .matching.activation import activation_matching

        return Permutation(spec, activation_matching(spec, template, a, b, data[0]).perms, method)
    from .matching.ste import ste_matching

    base = recipe or (ITO_RECIPE if method == "ste" else SteRecipe.git_rebasin())
    res = ste_matching(spec, template, a, b, data[0], data[1], replace(base, seed=seed))
    return Permutation(spec, res.perms, method)


def permute(model: nn.Module, perm: Permutation) -> nn.Module:
    """A new model computing the same function as `model`, its units permuted by `perm`."""
    out = copy.deepcopy(model)
    out.load_state_dict(apply_permutation(perm.spec, perm.perms, _state(model)))
    return out


def interpolate(model_a: nn.Module, model_b: nn.Module, data: Data, *, lambdas=DEFAULT_LAMBDAS,
                bn_data: torch.Tensor | None = None) -> Curve:
    """Loss and accuracy along the straight line between the two models' parameters on `data`;
    `.loss_barrier` is the barrier. BatchNorm statistics are reset at every point on `bn_data`
    (default: data's inputs), as Git Re-Basin does."""
    x, y = data
    if has_batchnorm(model_a) and bn_data is None:
        bn_data = x
    template = copy.deepcopy(model_a).eval()
    return interpolation_curve(template, _state(model_a), _state(model_b), x, y, np.asarray(lambdas, float),
                               bn_data=bn_data if has_batchnorm(model_a) else None)


def merge(models: Sequence[nn.Module], method: str = "mergemany", *, spec: PermutationSpec | None = None,
          example: torch.Tensor | None = None, seed: int = 0, bn_data: torch.Tensor | None = None) -> nn.Module:
    """One model from several: "mergemany" (Git Re-Basin's Algorithm 3: every model permuted towards
    the others' average, no anchor) or "anchor" (every model weight-matched onto the first), then
    averaged. With BatchNorm, its statistics are reset on `bn_data`."""
    from .matching.merge import average, merge_many
    from .matching.weight import weight_matching

    if len(models) < 2:
        raise LmcClaimsError(f"Merging needs at least two models, not {len(models)}.", "pass a list of two or more.")
    spec = _spec_of(models[0], spec, example, None)
    states = [_state(m) for m in models]
    if method == "mergemany":
        perms = merge_many(spec, states, seed=seed)
    elif method == "anchor":
        perms = [None] + [weight_matching(spec, states[0], s, seed=seed).perms for s in states[1:]]
    else:
        raise LmcClaimsError(f"Unknown merge method {method!r}.", "use 'mergemany' or 'anchor'.")
    aligned = [s if p is None else apply_permutation(spec, p, s) for s, p in zip(states, perms)]
    merged = average(aligned)
    out = copy.deepcopy(models[0])
    if has_batchnorm(out):
        if bn_data is None:
            raise LmcClaimsError("The models have BatchNorm: the merged model's statistics need resetting.",
                                 "pass bn_data=training inputs.")
        from .metrics.interpolation import reset_bn_stats

        merged = reset_bn_stats(out, merged, bn_data)
    out.load_state_dict(merged)
    return out
