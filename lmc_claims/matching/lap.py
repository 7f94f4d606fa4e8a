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
