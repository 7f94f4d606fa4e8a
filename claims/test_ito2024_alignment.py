"""Ito, Yamada, Kumagai 2024 (arXiv 2402.04051), §4 and Figure 2: WM aligns the singular
vectors with large singular values.

Statement: after WM, the singular vectors of A and pi(B) that belong to large singular values
point in similar directions; this does not happen before matching or for a random permutation.
Metric, the paper's R (Figure 2; PUBLISHED.md gives its form [secondary, one reading written
out, denominator and threshold agreed by three]):
R = sum_l sum_{i,j in S_l} (u_i^a . P_l u_j^b)(v_i^a . P_{l-1} v_j^b) / sum_l n_l, S_l the singular
values >= gamma * s_1 of each model's own spectrum (our reading; PUBLISHED.md: open), n_l = |S_l|,
at gamma = 0 and 0.3 (lmc_claims.metrics.spectral.ito_r_terms). The subspace overlaps O_k of
CLAIMS.md item 3 and per-rank cosines are stored beside, as supporting data.
Criteria (issue item 5; PUBLISHED.md [secondary] for the directions, bounds ours): R after WM at
gamma = 0.3 above R without permutation and above R after random permutations, and R after WM
higher at gamma = 0.3 than at gamma = 0; one-sided 95% t-bounds over independent pairs.
Published beside ours: R ~ 0 without permutation; R after WM ~0.2 (VGG11, ResNet20) to ~0.8 (MLP).
"""

import pytest

from lmc_claims.measurements import ito2024, shared
from lmc_claims.scales import TOP_FRACTION

pytestmark = pytest.mark.claims
CLAIM = "ito2024-sv-alignment"


def test_wm_aligns_large_singular_vectors(setting_key, claims_lab, verify):
    s, n_random = claims_lab.setting(*setting_key), claims_lab.scale.n_random
    verify(CLAIM, lambda pairs: ito2024.alignment(s, pairs, n_random), config={**s.config, "top_fraction": TOP_FRACTION},
           seeds=lambda ds, pairs: shared.seeds_of(pairs),
           notes=lambda ds, pairs: ("O_k is the subspace overlap defined in CLAIMS.md. " + ito2024.ito_r_note(ds),))
