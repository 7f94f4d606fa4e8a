"""Ito, Yamada, Kumagai 2024 (arXiv 2402.04051), §4 Eq. (3): permutations keep singular values.

Statement: for every weight matrix W (conv kernels as (out, in*k*k)), P_l W P_{l-1}^T has the
same singular values as W; only the singular vectors move (to P_l U and P_{l-1} V).
Metric: max over layers and ranks of |s_i(W) - s_i(P W P^T)| / s_1(W), on every trained model
with a random permutation of all its hidden units; we also record how far the top singular
vector moved (1 - |cos|), which shows the directions do change.
Criterion: <= 1e-9 on the worst model (exact identity; the number is ours: float64 SVD error
is about eps * n * s_1, ~1e-13 here).
"""

import pytest

from lmc_claims.measurements import ito2024, shared

pytestmark = pytest.mark.claims
CLAIM = "ito2024-singular-values"


def test_permutations_keep_singular_values(setting_key, claims_lab, verify):
    s = claims_lab.setting(*setting_key)
    seeds = shared.seeds_of(claims_lab.scale.pairs)
    ds = ito2024.singular_value_change(s, seeds)  # exact maths: judged on the worst seed, in one look
    verify(CLAIM, ds, config=s.config, seeds=seeds)
