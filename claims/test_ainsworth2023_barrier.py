"""Ainsworth, Hayase, Srinivasa 2023 (Git Re-Basin, arXiv 2209.04836), §3 and Figure 2:
MLPs on MNIST are linearly mode connected after weight matching.

Statement: the loss along the straight line between two independently trained MLPs rises
well above the endpoints (a large barrier); after permuting one of them by weight matching
the barrier is near zero.
Metric: test loss barrier B = max_lam [L(theta(lam)) - ((1 - lam) L(A) + lam L(B'))] on 25
points (Entezari et al. 2022 / Git Re-Basin), naive and after WM; train curves stored too.
Criteria (ours; the paper gives no tolerance): naive barrier >= 0.3 nats and WM barrier
<= 0.05 nats, one-sided 95% t-bounds over independent pairs.
"""

import pytest

from lmc_claims import measure

pytestmark = pytest.mark.claims
CLAIM = "ainsworth2023-wm-barrier"


def test_wm_removes_the_barrier(setting, claims_lab, verify):
    arch, dataset, width = setting
    ds = measure.interpolation(claims_lab, arch, dataset, width)
    b = ds.loss_barrier.sel(split="test", drop=True)
    ds["naive_barrier"] = b.sel(search="naive", drop=True).assign_attrs(units="nats")
    ds["wm_barrier"] = b.sel(search="wm", drop=True).assign_attrs(units="nats")
    verify(CLAIM, ds, config={"arch": arch, "dataset": dataset, "width": width},
           seeds=[s for p in claims_lab.scale.pairs for s in p])
