"""Weight matching (Git Re-Basin, Ainsworth et al. 2023, Algorithm 1).

Maximise sum_l <W_l^A, P_l W_l^B P_{l-1}^T>_F by coordinate descent over the
permutations; each step is a linear assignment with all other permutations fixed.

The search keeps, for every permutation P, its cost matrix C_P = sum over the
parameters touching P of W^A (W^B permuted on its other axes)^T, split into a
constant part (parameters with no other permuted axis, e.g. biases) and one term per
parameter that does have one. When a permutation Q changes, only the terms that
contain Q are updated, and when Q moved few units the update is a rank-|moved| product
instead of a full product. A step whose cost matrix has not changed since the last
assignment solved for it is skipped: the solver would return the same answer, which was
already accepted or rejected. A step whose current permutation takes every row's
maximum is optimal without solving. Both skips leave the sequence of accepted
permutations exactly as the plain algorithm's.

All tensors stay on the models' device (float64); only the cost matrix handed to the
assignment solver crosses to the host, and the permutations' bookkeeping lives there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import LmcClaimsError
from ..permutation.apply import Params, Perms, identity_perms, permute_param
from ..permutation.spec import PermutationSpec
from .lap import solve_lap_numpy

# A term whose other permutation moved at most this fraction of its units is updated by
# a low-rank correction; more than that and the term is recomputed.
_LOW_RANK_FRACTION = 0.5


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


class _Term:
    """One parameter's contribution W^A (W^B permuted on its other axes)^T to C_P.

    `a` and `b` hold the parameter with P's axis moved first; `b` is kept permuted by
    the current other permutations, whose positions among b's dims are in `dims`.
    """

    __slots__ = ("a", "a_flat", "b", "dims")

    def __init__(self, a: torch.Tensor, b: torch.Tensor, dims: dict[str, tuple[int, ...]]):
        self.a = a.contiguous()
        self.a_flat = self.a.reshape(a.shape[0], -1)
        self.b = b.contiguous()
        self.dims = dims

    def value(self) -> torch.Tensor:
        return self.a_flat @ self.b.reshape(self.b.shape[0], -1).T

    def update(self, q: str, sigma: torch.Tensor, moved: torch.Tensor | None, cost: torch.Tensor) -> None:
        """Q's permutation became old[sigma]: permute b and add the change to `cost`.
        `moved` lists the positions that changed (None: many did)."""
        dims = self.dims[q]
        n = self.b.shape[0]
        if moved is None or len(dims) > 1:
            before = self.b
            for d in dims:
                self.b = self.b.index_select(d, sigma)
            cost.addmm_(self.a_flat, (self.b - before).reshape(n, -1).T)
            return
        (d,) = dims
        before = self.b.index_select(d, moved)
        self.b = self.b.index_select(d, sigma)
        delta = self.b.index_select(d, moved) - before
        cost.addmm_(self.a.index_select(d, moved).reshape(n, -1), delta.reshape(n, -1).T)


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
    device = next(iter(a.values())).device
    perms = dict(init) if init is not None else identity_perms(spec, a)
    perms = {p: perms[p].to(device) for p in spec.perm_names}
    # The permutations' bookkeeping is on the host: the solver's answers arrive there.
    host = {p: perms[p].cpu().numpy().astype(np.int64) for p in perms}

    # Cost matrix pieces, built once: a constant part and the terms that change.
    costs: dict[str, torch.Tensor] = {}
    users: dict[str, list[tuple[str, _Term]]] = {p: [] for p in perms}  # Q -> terms containing Q
    for p, axes in spec.perm_to_axes.items():
        for name, axis in axes:
            others = [(q, ax) for ax, q in enumerate(spec.axes_to_perm[name]) if q is not None and ax != axis]
            wb = permute_param(spec, perms, name, b[name], except_axis=axis)
            if not others:  # e.g. a bias: its term never changes
                value = _flat(a[name], axis) @ _flat(wb, axis).T
            else:
                # Position of each other axis after moving `axis` to the front.
                dims: dict[str, tuple[int, ...]] = {}
                for q, ax in others:
                    dims[q] = dims.get(q, ()) + (ax + 1 if ax < axis else ax,)
                term = _Term(a[name].movedim(axis, 0), wb.movedim(axis, 0), dims)
                for q in dims:
                    users[q].append((p, term))
                value = term.value()
            if p in costs:
                costs[p] += value
            else:
                costs[p] = value

    result = MatchResult(perms)
    # Only the terms touching P change in a step, by exactly the gain, so the objective
    # is tracked incrementally instead of being recomputed.
    total = objective(spec, perms, a, b)
    names = spec.perm_names
    stale = dict.fromkeys(names, True)  # cost changed since P's last solve (or never solved)
    gen = torch.Generator().manual_seed(seed)
    for sweep in range(max_sweeps):
        improved = False
        for i in torch.randperm(len(names), generator=gen).tolist():
            p = names[i]
            if not stale[p]:
                result.objective.append(total)
                continue
            stale[p] = False
            c = costs[p]
            current = perms[p]
            rows = torch.arange(c.shape[0], device=c.device)
            # Every row at its maximum: no assignment does better.
            if bool((c[rows, current] >= c.max(dim=1).values).all()):
                result.objective.append(total)
                continue
            c_host = c.cpu().numpy()
            new = solve_lap_numpy(c_host)
            old = host[p]
            changed = np.flatnonzero(new != old)
            gain = float((c_host[changed, new[changed]] - c_host[changed, old[changed]]).sum())
            if gain > tol:
                inv_old = np.empty_like(old)
                inv_old[old] = np.arange(len(old))
                sigma = torch.from_numpy(inv_old[new]).to(device)
                low_rank = len(changed) <= _LOW_RANK_FRACTION * len(old)
                moved = torch.from_numpy(changed).to(device) if low_rank else None
                for q, term in users[p]:
                    term.update(p, sigma, moved, costs[q])
                    stale[q] = True
                host[p] = new
                perms[p] = torch.from_numpy(new).to(device)
                total += gain
                improved = True
            result.objective.append(total)
        result.sweeps = sweep + 1
        if not improved:
            break
    result.perms = perms
    return result
