"""Measurements behind Theus et al. 2025 (arXiv 2506.22712): the barrier permutation-only weight
matching leaves between two transformers, beside the MLP's, whose barrier it removes.
Claims: `lmc_claims/catalogue/theus2025.py`.
"""

from __future__ import annotations

from typing import Sequence

import xarray as xr

from ..designs import Pair
from ..lab import Setting
from .shared import SPLITS, barrier_reduction, interpolation, with_barriers

PATHS = ("naive", "wm")


def transformer_barrier(s: Setting, reference: Setting, pairs: Sequence[Pair]) -> xr.Dataset:
    """The setting's paths A -> B and A -> pi_WM(B) with both barriers and the share WM removes
    (`wm_barrier_reduction_{split}`), on both splits, and the reference MLP's barriers
    (`mlp_naive_barrier_{split}`, `mlp_wm_barrier_{split}`) over its own pairs of the same seeds."""
    ds = with_barriers(interpolation(s, pairs, PATHS), PATHS)
    mlp = with_barriers(interpolation(reference, pairs, PATHS), PATHS)
    for split in SPLITS:
        ds[f"wm_barrier_reduction_{split}"] = barrier_reduction(ds[f"naive_barrier_{split}"], ds[f"wm_barrier_{split}"],
                                                                "WM", split)
        for search in PATHS:
            ds[f"mlp_{search}_barrier_{split}"] = mlp[f"{search}_barrier_{split}"].assign_attrs(
                long_name=f"{split} loss barrier, {search}, reference MLP {reference.label}")
    ds.attrs["reference_mlp"] = reference.label
    return ds
