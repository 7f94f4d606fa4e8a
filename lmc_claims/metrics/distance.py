"""L2 distance between models over the permuted parameters (weights, biases and,
when the architecture has them, normalisation parameters)."""

from __future__ import annotations

import torch

from ..permutation.spec import PermutationSpec


def l2_distance(spec: PermutationSpec, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    sq = sum(((a[k].double() - b[k].double()) ** 2).sum() for k in spec.axes_to_perm)
    return float(torch.sqrt(sq))
