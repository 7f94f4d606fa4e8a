"""Activation matching (AM; Git Re-Basin, Ainsworth et al. 2023, §3.1).

For each permutation P, the units it permutes are the output channels of the layers whose
weight has P on axis 0 (its "producers"; several for a residual stream). AM solves one
linear assignment per P that maximises the summed correlation between model A's and model
B's producer outputs on training data. Producer outputs are taken before normalisation and
activation: per-channel correlation is invariant to the affine maps of norm layers, and it
needs no knowledge of where (functional) activations sit in forward().
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from ..permutation.apply import Params, Perms
from ..permutation.spec import PermutationSpec
from .lap import solve_lap
from .weight import MatchResult, check_compatible


def producers(spec: PermutationSpec, model: nn.Module) -> dict[str, list[str]]:
    """Module names whose output channels each permutation acts on."""
    modules = dict(model.named_modules())
    out: dict[str, list[str]] = {}
    for param, perms in spec.axes_to_perm.items():
        module_name, _, leaf = param.rpartition(".")
        if leaf == "weight" and perms and perms[0] is not None and len(perms) >= 2:
            if isinstance(modules.get(module_name), (nn.Linear, nn.Conv2d)):
                out.setdefault(perms[0], []).append(module_name)
    return out


@torch.no_grad()
def _features(model: nn.Module, params: Params, names: list[str], x: torch.Tensor, batch: int) -> dict[str, torch.Tensor]:
    """Each named module's outputs over x, as (samples, channels)."""
    modules = dict(model.named_modules())
    store: dict[str, list[torch.Tensor]] = {n: [] for n in names}

    def hook(name):
        def fn(_module, _inp, out):
            f = out.movedim(1, -1) if out.dim() > 2 else out  # channels last
            store[name].append(f.reshape(-1, f.shape[-1]).double())
        return fn

    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(x), batch):
            functional_call(model, params, (x[i : i + batch],))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {n: torch.cat(v) for n, v in store.items()}


def _standardise(f: torch.Tensor) -> torch.Tensor:
    # Dead units (zero variance) get zero correlation instead of NaN.
    return (f - f.mean(0)) / f.std(0).clamp_min(1e-12)


def activation_matching(spec: PermutationSpec, model: nn.Module, a: Params, b: Params, x: torch.Tensor,
                        batch: int = 500) -> MatchResult:
    check_compatible(spec, a, b)
    prod = producers(spec, model)
    missing = [p for p in spec.perm_names if p not in prod]
    if missing:
        raise ValueError(f"activation matching needs a Linear/Conv2d producing each permutation; none for {missing}")
    names = sorted({n for ns in prod.values() for n in ns})
    fa, fb = _features(model, a, names, x, batch), _features(model, b, names, x, batch)
    perms: Perms = {}
    for p, ns in prod.items():
        corr = sum(_standardise(fa[n]).T @ _standardise(fb[n]) / fa[n].shape[0] for n in ns)
        perms[p] = solve_lap(corr)
    return MatchResult(perms)
