"""Ainsworth, Hayase, Srinivasa 2023 (Git Re-Basin, arXiv 2209.04836), §5 / Figure 4: the
barrier after matching falls as the width multiplier grows.

Metric: per independent pair, the least-squares slope of the test loss barrier after weight
matching and after activation matching against log2(width), over the widths of the scale.
Criteria: both slopes below 0 with a one-sided 95% bound over pairs (direction from the
paper; the bound is ours).
"""

import pytest

from lmc_claims.measurements import ainsworth2023, shared

pytestmark = pytest.mark.claims
CLAIM = "ainsworth2023-width"


def test_barrier_falls_with_width(width_run, claims_lab, verify):
    arch, dataset = width_run
    settings = claims_lab.settings(arch, dataset)
    verify(CLAIM, lambda pairs: ainsworth2023.width_sweep(settings, pairs, searches=("wm", "am")),
           config=lambda ds, pairs: {"arch": arch, "dataset": dataset, "widths": list(ds.width.values)},
           seeds=lambda ds, pairs: shared.seeds_of(pairs))
