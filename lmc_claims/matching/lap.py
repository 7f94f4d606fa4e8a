"""The linear assignment backend (the one step that runs on the host)."""

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def solve_lap(cost: torch.Tensor) -> torch.Tensor:
    """Permutation maximising sum_i cost[i, perm[i]]; returned on cost's device."""
    _, cols = linear_sum_assignment(cost.detach().cpu().double().numpy(), maximize=True)
    return torch.from_numpy(cols.astype(np.int64)).to(cost.device)
