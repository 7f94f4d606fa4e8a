"""Measurements behind Git Re-Basin (Ainsworth, Hayase, Srinivasa 2023): the barrier between
two independently trained networks before and after a permutation search, and its fall with
width. Claims: `lmc_claims/catalogue/ainsworth2023.py`.
"""

from __future__ import annotations

from typing import Sequence

import xarray as xr

from ..designs import Pair
from ..lab import Setting
from .shared import interpolation, width_sweep, with_barriers

__all__ = ["barriers", "width_sweep"]


def barriers(s: Setting, pairs: Sequence[Pair], search: str) -> xr.Dataset:
    """The paths A -> B and A -> pi(B) for `search`, with both barriers per pair on both splits."""
    return with_barriers(interpolation(s, pairs, ("naive", search)), ("naive", search))
