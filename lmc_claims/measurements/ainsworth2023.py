"""Measurements behind Git Re-Basin (Ainsworth, Hayase, Srinivasa 2023): the barrier between
two independently trained networks before and after a permutation search, and its fall with
width. Claims: `lmc_claims/catalogue/ainsworth2023.py`.
"""

from __future__ import annotations

from typing import Sequence

import xarray as xr

from ..lab import Pair, Setting
from .shared import barrier_of, interpolation, width_sweep

__all__ = ["barriers", "width_sweep"]


def barriers(s: Setting, pairs: Sequence[Pair], search: str) -> xr.Dataset:
    """The paths A -> B and A -> pi(B) for `search`, with both test loss barriers per pair."""
    ds = interpolation(s, pairs, ("naive", search))
    ds["naive_barrier"] = barrier_of(ds, "naive")
    ds[f"{search}_barrier"] = barrier_of(ds, search)
    return ds
