"""The linear assignment backend (the one step that runs on the host)."""

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def solve_lap_numpy(cost: np.ndarray) -> np.ndarray:
    """Permutation (int64) maximising sum_i cost[i, perm[i]] of a square host matrix."""
    _, cols = linear_sum_assignment(cost, maximize=True)
    return cols.astype(np.int64, copy=False)


def solve_lap(cost: torch.Tensor) -> torch.Tensor:
    """Permutation maximising sum_i cost[i, perm[i]]; returned on cost's device."""
    cols = solve_lap_numpy(cost.detach().cpu().double().numpy())
    return torch.from_numpy(cols).to(cost.device)
