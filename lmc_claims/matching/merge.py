"""Merging N models: permute each onto a reference, then average (Ito et al. 2024, §6), or
MergeMany (Git Re-Basin, Ainsworth et al. 2023, Algorithm 3): no reference, each model in
turn is weight-matched onto the mean of the others."""

from __future__ import annotations

import torch

from ..errors import LmcClaimsError
from ..metrics.distance import l2_distance
from ..permutation.apply import Params, Perms, apply_permutation, compose, identity_perms
from ..permutation.spec import PermutationSpec
from .weight import check_compatible, weight_matching


def average(models: list[Params]) -> Params:
    """Element-wise mean of float tensors; integer buffers come from the first model."""
    if not models:
        raise LmcClaimsError("No models were given to average.", "pass at least one model.")
    first = models[0]
    return {
        k: torch.stack([m[k] for m in models]).mean(0) if first[k].is_floating_point() else first[k]
        for k in first
    }


def merge_many(spec: PermutationSpec, models: list[Params], seed: int, max_iter: int = 100,
               tol: float = 1e-12) -> list[Perms]:
    """MergeMany (samuela/git-re-basin src/mnist_mlp_wm_many.py, `match_many`).

    Each iteration visits the models in a random order (seeded); model p is weight-matched
    (from the identity) onto the mean of the others in their current permutations and replaced
    by its permuted self. It stops after an iteration in which no model got closer to the mean
    of the others by more than `tol` in L2, or after `max_iter` iterations. No model is an anchor.

    Returns each model's permutation (of the original models): apply them, then `average`
    (and, for BatchNorm nets, reset the running statistics on training data, as STE-MM's
    srcs/utils/merge.py does with `reset_bn=True`).
    """
    if not models:
        raise LmcClaimsError("No models were given to merge.", "pass at least one model.")
    for m in models[1:]:
        check_compatible(spec, models[0], m)
    total = [identity_perms(spec, m) for m in models]
    if len(models) < 2:
        return total
    current = [dict(m) for m in models]
    gen = torch.Generator().manual_seed(seed)
    for _ in range(max_iter):
        progress = False
        for p in torch.randperm(len(models), generator=gen).tolist():
            others = average(current[:p] + current[p + 1:])
            before = l2_distance(spec, others, current[p])
            wm_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
            perms = weight_matching(spec, others, current[p], seed=wm_seed).perms
            current[p] = apply_permutation(spec, perms, current[p])
            total[p] = compose(total[p], perms)
            after = l2_distance(spec, others, current[p])
            progress = progress or after < before - tol
        if not progress:
            break
    return total
