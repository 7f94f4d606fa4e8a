"""Ito, Yamada, Kumagai 2024 (arXiv 2402.04051), width discussion (seed 003, open question 2):
wider models satisfy LMC more easily.

Statement: the barrier after weight matching falls as the width grows, and the share of
singular values needed to hold most of a layer's spectrum falls with width (fewer dominant
singular vectors to align).
Metric: per independent pair, the least-squares slope against log2(width) of (a) the WM test
loss barrier and (b) the fraction of singular values holding 90% of sum s_i^2, averaged over
the hidden-layer weight matrices (90% is ours).
Criteria: both slopes below 0 with a one-sided 95% bound over pairs (direction from the paper).
"""

import pytest

from lmc_claims.measurements import shared
from lmc_claims.scales import ENERGY

pytestmark = pytest.mark.claims
CLAIM = "ito2024-width"


def test_width_makes_lmc_easier(width_run, claims_lab, verify):
    arch, dataset = width_run
    settings = claims_lab.settings(arch, dataset)
    verify(CLAIM, lambda pairs: shared.width_sweep(settings, pairs, searches=("wm", "am")),
           config=lambda ds, pairs: {"arch": arch, "dataset": dataset, "widths": list(ds.width.values), "energy": ENERGY},
           seeds=lambda ds, pairs: shared.seeds_of(pairs))
