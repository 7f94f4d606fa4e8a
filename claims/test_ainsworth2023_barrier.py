"""Ainsworth, Hayase, Srinivasa 2023 (Git Re-Basin, arXiv 2209.04836), §3 and Figure 2;
Entezari et al. 2022: independently trained networks are separated by a barrier that weight
matching and activation matching remove.

Statement: the loss along the straight line between two independently trained MLPs rises
well above the endpoints (a large barrier); after permuting one of them by weight matching
(or by activation matching) the barrier is near zero.
Metric: training loss barrier B = max_lam [L(theta(lam)) - ((1 - lam) L(A) + lam L(B'))] on 25
points (Git Re-Basin Def. 2.2, Entezari et al. 2022 Eq. 1: training loss), naive, after WM and
after AM (Git Re-Basin's AM: correlations of post-activation features over training data); the
test split and the signed midpoint excess L(1/2) - (L(A) + L(B')) / 2 (not clipped at 0) are
stored beside. BatchNorm statistics are reset on training data at each point.
Regime (PUBLISHED.md): the MNIST MLP 3x512; ResNet20 only from 32x width (Figure 4).
Criteria (ours; the paper gives no tolerance): naive barrier >= 0.3 nats and matched barrier
<= 0.05 nats, one-sided 95% t-bounds over independent pairs.
"""

import pytest

from lmc_claims.measurements import ainsworth2023, shared

pytestmark = pytest.mark.claims


@pytest.mark.parametrize("search, claim", [("wm", "ainsworth2023-wm-barrier"), ("am", "ainsworth2023-am-barrier")])
def test_matching_removes_the_barrier(setting_key, search, claim, claims_lab, verify):
    s = claims_lab.setting(*setting_key)
    verify(claim, lambda pairs: ainsworth2023.barriers(s, pairs, search), config={**s.config, "search": search},
           seeds=lambda ds, pairs: shared.seeds_of(pairs))
