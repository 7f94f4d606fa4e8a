"""Merging N models: permute each onto a reference, then average (Ito et al. 2024, §6)."""

from __future__ import annotations

import torch

from ..errors import LmcClaimsError
from ..permutation.apply import Params


def average(models: list[Params]) -> Params:
    """Element-wise mean of float tensors; integer buffers come from the first model."""
    if not models:
        raise LmcClaimsError("No models were given to average.", "pass at least one model.")
    first = models[0]
    return {
        k: torch.stack([m[k] for m in models]).mean(0) if first[k].is_floating_point() else first[k]
        for k in first
    }
