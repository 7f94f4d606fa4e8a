"""Weight matching (Git Re-Basin, Ainsworth et al. 2023, Algorithm 1).

Maximise sum_l <W_l^A, P_l W_l^B P_{l-1}^T>_F by coordinate descent over the
permutations; each step is a linear assignment with all other permutations fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import LmcClaimsError
from ..permutation.apply import Params, Perms, identity_perms, permute_param
from ..permutation.spec import PermutationSpec
from .lap import solve_lap


@dataclass
class MatchResult:
    perms: Perms
    objective: list[float] = field(default_factory=list)  # after each assignment step
    sweeps: int = 0


def check_compatible(spec: PermutationSpec, a: Params, b: Params) -> None:
    """Models handed to a matching must have the same parameters and shapes."""
    if a.keys() != b.keys():
        only_a = sorted(set(a) - set(b))[:3]
        only_b = sorted(set(b) - set(a))[:3]
        raise LmcClaimsError(
            f"The two models have different parameters (only in A: {only_a}, only in B: {only_b}).",
            "match models of the same architecture, width and depth.",
        )
    bad = [(k, tuple(a[k].shape), tuple(b[k].shape)) for k in a if a[k].shape != b[k].shape]
    if bad:
        raise LmcClaimsError(
            f"The two models have parameters of different shapes, e.g. {bad[0]}.",
            "match models of the same architecture, width and depth.",
        )
    for name, params in (("A", a), ("B", b)):
        for k in spec.axes_to_perm:
            if not torch.isfinite(params[k]).all():
                raise LmcClaimsError(
                    f"Model {name} has NaN or inf values in {k!r}.",
                    "retrain the model (lower the learning rate) or load an uncorrupted checkpoint.",
                )
    spec.check(a)


def _flat(w: torch.Tensor, axis: int) -> torch.Tensor:
    return w.movedim(axis, 0).reshape(w.shape[axis], -1)


def cost_matrix(spec: PermutationSpec, perms: Perms, p: str, a: Params, b: Params) -> torch.Tensor:
    """C_p = sum over params touching p of W^A (W^B permuted on its other axes)^T."""
    cost = None
    for name, axis in spec.perm_to_axes[p]:
        wb = permute_param(spec, perms, name, b[name], except_axis=axis)
        term = _flat(a[name], axis) @ _flat(wb, axis).T
        cost = term if cost is None else cost + term
    return cost


def objective(spec: PermutationSpec, perms: Perms, a: Params, b: Params) -> float:
    """sum over spec parameters of <theta_A, pi(theta_B)>."""
    return float(sum((a[k] * permute_param(spec, perms, k, b[k])).sum() for k in spec.axes_to_perm))


def weight_matching(
    spec: PermutationSpec,
    a: Params,
    b: Params,
    *,
    seed: int = 0,
    max_sweeps: int = 100,
    init: Perms | None = None,
    tol: float = 1e-12,
) -> MatchResult:
    """Permutations of B's units that bring B's weights closest to A's."""
    check_compatible(spec, a, b)
    a = {k: a[k].detach().double() for k in spec.axes_to_perm}
    b = {k: b[k].detach().double() for k in spec.axes_to_perm}
    perms = dict(init) if init is not None else identity_perms(spec, a)
    result = MatchResult(perms)
    # Only the terms touching P change in a step, by exactly (new - old), so the
    # objective is tracked incrementally instead of being recomputed.
    total = objective(spec, perms, a, b)
    names = spec.perm_names
    gen = torch.Generator().manual_seed(seed)
    for sweep in range(max_sweeps):
        improved = False
        for i in torch.randperm(len(names), generator=gen).tolist():
            p = names[i]
            cost = cost_matrix(spec, perms, p, a, b)
            rows = torch.arange(cost.shape[0], device=cost.device)
            old = cost[rows, perms[p]].sum().item()
            new_perm = solve_lap(cost)
            new = cost[rows, new_perm].sum().item()
            if new > old + tol:
                perms[p] = new_perm
                total += new - old
                improved = True
            result.objective.append(total)
        result.sweeps = sweep + 1
        if not improved:
            break
    result.perms = perms
    return result
