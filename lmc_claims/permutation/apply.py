"""Applying permutations to parameter dictionaries.

Convention: `perms[p]` is an index tensor; the permuted parameter is
`param.index_select(axis, perms[p])`, so new unit i is old unit perms[p][i].
"""

from __future__ import annotations

import torch

from ..errors import LmcClaimsError
from .spec import PermutationSpec

Params = dict[str, torch.Tensor]
Perms = dict[str, torch.Tensor]


def identity_perms(spec: PermutationSpec, params: Params) -> Perms:
    device = next(iter(params.values())).device
    return {p: torch.arange(n, device=device) for p, n in spec.perm_sizes(params).items()}


def random_perms(spec: PermutationSpec, params: Params, generator: torch.Generator) -> Perms:
    device = next(iter(params.values())).device
    return {
        p: torch.randperm(n, generator=generator).to(device)
        for p, n in spec.perm_sizes(params).items()
    }


def permute_param(
    spec: PermutationSpec, perms: Perms, name: str, w: torch.Tensor, except_axis: int | None = None
) -> torch.Tensor:
    for axis, p in enumerate(spec.axes_to_perm.get(name, ())):
        if p is not None and axis != except_axis:
            w = w.index_select(axis, perms[p])
    return w


def apply_permutation(spec: PermutationSpec, perms: Perms, params: Params) -> Params:
    """Permute every parameter the spec names; others (e.g. BN counters) pass through."""
    sizes = spec.perm_sizes(params)
    for p, idx in perms.items():
        n = sizes[p]
        if idx.numel() != n or not torch.equal(torch.sort(idx.cpu()).values, torch.arange(n)):
            raise LmcClaimsError(
                f"Permutation {p!r} is not a permutation of {n} units.",
                "pass index tensors holding each of 0..n-1 exactly once.",
            )
    return {k: permute_param(spec, perms, k, v) for k, v in params.items()}


def compose(first: Perms, then: Perms) -> Perms:
    """Perms equivalent to applying `first`, then `then`."""
    return {p: first[p][then[p]] for p in first}


def inverse(perms: Perms) -> Perms:
    return {p: torch.argsort(idx) for p, idx in perms.items()}
