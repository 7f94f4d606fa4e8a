"""The linear assignment backend (the one step that runs on the host)."""

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def solve_lap_numpy(cost: np.ndarray) -> np.ndarray:
    """Permutation (int64) maximising sum_i cost[i, perm[i]] of a square host matrix."""
    # The Hungarian method's opening reduction: subtracting each row's maximum, then each
    # column's, shifts every assignment's total by the same constant, so the optimum is
    # unchanged; SciPy's shortest-augmenting-path solver then starts with a zero in every
    # column and finishes ~20% sooner on weight matching's cost matrices (benchmarks/RESULTS.md).
    reduced = cost
    if cost.size:
        reduced = cost - cost.max(axis=1, keepdims=True)
        reduced -= reduced.max(axis=0, keepdims=True)
    _, cols = linear_sum_assignment(reduced, maximize=True)
    return cols.astype(np.int64, copy=False)


def solve_lap(cost: torch.Tensor) -> torch.Tensor:
    """Permutation maximising sum_i cost[i, perm[i]]; returned on cost's device."""
    cols = solve_lap_numpy(cost.detach().cpu().double().numpy())
    return torch.from_numpy(cols).to(cost.device)


def solve_blocks(costs: list[np.ndarray], blocks: list[int], n_blocks: int, move: bool = True) -> list[np.ndarray]:
    """Block-structured permutations maximising sum_X sum_i costs[X][i, perm_X[i]] together.

    costs[X] is square with n_blocks * blocks[X] rows. Every perm_X puts old block sigma[i] at
    block i, one sigma shared by all of them (the identity when `move` is False), and orders the
    units inside each block freely. For a pair of blocks (i, k) the best order inside is one
    assignment on the (i, k) sub-matrix, independently for every X; the summed value of those
    assignments is the gain of sigma[i] = k, and one assignment over blocks picks sigma. The
    result is the exact optimum over such permutations.
    """
    rows = [np.arange(b) for b in blocks]
    if not move:
        out = []
        for c, b in zip(costs, blocks):
            perm = np.arange(n_blocks * b, dtype=np.int64)
            for i in range(n_blocks):
                sub = c[i * b:(i + 1) * b, i * b:(i + 1) * b]
                perm[i * b:(i + 1) * b] = i * b + solve_lap_numpy(sub)
            out.append(perm)
        return out
    gain = np.zeros((n_blocks, n_blocks))
    inside = []
    for c, b, r in zip(costs, blocks, rows):
        if b == 1:  # blocks of one unit: nothing to order inside
            gain += c
            inside.append(np.zeros((n_blocks, n_blocks, 1), dtype=np.int64))
            continue
        w = np.empty((n_blocks, n_blocks, b), dtype=np.int64)
        for i in range(n_blocks):
            for k in range(n_blocks):
                sub = c[i * b:(i + 1) * b, k * b:(k + 1) * b]
                w[i, k] = solve_lap_numpy(sub)
                gain[i, k] += sub[r, w[i, k]].sum()
        inside.append(w)
    sigma = solve_lap_numpy(gain) if n_blocks else np.zeros(0, dtype=np.int64)
    blocks_idx = np.arange(n_blocks)
    return [(sigma[:, None] * b + w[blocks_idx, sigma]).reshape(-1) for w, b in zip(inside, blocks)]
