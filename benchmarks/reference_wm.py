"""Weight matching written plainly from its definition, in NumPy + SciPy.

Git Re-Basin (Ainsworth et al. 2023), Algorithm 1: maximise
    sum over parameters k of <W_k^A, pi(W_k^B)>
by coordinate descent over the permutations. In each step one permutation P is chosen
(the order of a sweep is random), its cost matrix
    C_P = sum over (k, axis) touched by P of  W_k^A[axis-first, flat] @ pi_{-P}(W_k^B)[axis-first, flat]^T
is built with every other permutation applied to B, and P becomes the solution of the
linear assignment max_perm sum_i C_P[i, perm[i]] if that improves on the current P by
more than `tol`. The search stops after a sweep without improvement.

Nothing is cached between steps: every cost matrix is built from B with the current
permutations applied, in float64. It is the baseline the benchmark compares with, and a
second implementation the unit tests check the library's against.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
from scipy.optimize import linear_sum_assignment

Axes = dict[str, tuple[str | None, ...]]


def perm_to_axes(axes_to_perm: Axes) -> dict[str, list[tuple[str, int]]]:
    out: dict[str, list[tuple[str, int]]] = {}
    for name, perms in axes_to_perm.items():
        for axis, p in enumerate(perms):
            if p is not None:
                out.setdefault(p, []).append((name, axis))
    return out


def permute(axes_to_perm: Axes, perms: dict[str, np.ndarray], name: str, w: np.ndarray, except_axis=None):
    """W with each permuted axis (but `except_axis`) reindexed: new unit i = old perms[p][i]."""
    for axis, p in enumerate(axes_to_perm[name]):
        if p is not None and axis != except_axis:
            w = np.take(w, perms[p], axis=axis)
    return w


def objective(axes_to_perm: Axes, perms: dict[str, np.ndarray], a: dict, b: dict) -> float:
    return float(sum(np.sum(a[k] * permute(axes_to_perm, perms, k, b[k])) for k in axes_to_perm))


def weight_matching(
    axes_to_perm: Axes,
    a: dict[str, np.ndarray],
    b: dict[str, np.ndarray],
    *,
    orders: Callable[[int], Iterable[int]] | None = None,
    seed: int = 0,
    max_sweeps: int = 100,
    tol: float = 1e-12,
    init: dict[str, np.ndarray] | None = None,
    term_weights: dict[tuple[str, int], float] | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """Returns (perms, sweeps). `orders(sweep)` gives the visiting order of the
    permutations (indices into the order in which they first appear in `axes_to_perm`);
    by default a NumPy random permutation per sweep. The search starts from the identity
    or from `init`. `term_weights[(name, axis)]` (default 1) scales that parameter's term
    in the cost matrices: not part of the algorithm, a diagnostic for implementations that
    count some parameters more than once."""
    a = {k: np.asarray(a[k], dtype=np.float64) for k in axes_to_perm}
    b = {k: np.asarray(b[k], dtype=np.float64) for k in axes_to_perm}
    p2a = perm_to_axes(axes_to_perm)
    names = list(p2a)
    perms = {p: np.arange(a[p2a[p][0][0]].shape[p2a[p][0][1]]) for p in names}
    if init is not None:
        perms = {p: np.asarray(init[p]).copy() for p in names}
    if orders is None:
        rng = np.random.default_rng(seed)
        orders = lambda sweep: rng.permutation(len(names))  # noqa: E731
    sweeps = 0
    for sweep in range(max_sweeps):
        improved = False
        for i in orders(sweep):
            p = names[i]
            n = len(perms[p])
            cost = np.zeros((n, n))
            for name, axis in p2a[p]:
                wa = np.moveaxis(a[name], axis, 0).reshape(n, -1)
                wb = permute(axes_to_perm, perms, name, b[name], except_axis=axis)
                wb = np.moveaxis(wb, axis, 0).reshape(n, -1)
                if term_weights is None:
                    cost += wa @ wb.T
                else:
                    cost += term_weights.get((name, axis), 1.0) * (wa @ wb.T)
            _, new = linear_sum_assignment(cost, maximize=True)
            rows = np.arange(n)
            if cost[rows, new].sum() > cost[rows, perms[p]].sum() + tol:
                perms[p] = new
                improved = True
        sweeps = sweep + 1
        if not improved:
            break
    return perms, sweeps
