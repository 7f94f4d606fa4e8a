"""Ito, Yamada, Kumagai 2024 (arXiv 2402.04051), §6: STE reaches LMC without aligning the
singular vectors the way WM does.

Statement: the straight-through estimator (Git Re-Basin Alg. 2; midpoint lam = 1/2 variant)
finds permutations with a low barrier, but its permutations do not align the singular vectors
with large singular values as weight matching's do.
Metric: O_k overlap of the top 10% singular subspaces (../shared/CLAIMS.md item 3), WM minus
STE, per pair; STE's test loss barrier reduction 1 - B_STE / B_naive. Ito et al.'s R, in the
form secondary summaries quote (see test_ito2024_alignment.py), is stored beside it as `ito_r`;
those summaries say the paper finds R near 0 for STE's permutations.
Criteria: WM - STE overlap gain above 0 (one-sided 95% bound; direction from the paper, bound
ours); STE barrier reduction >= 0.8 (CLAIMS.md item 2's number reused for "reaches LMC", ours).
"""

import pytest

from lmc_claims.measurements import ito2024, shared

pytestmark = pytest.mark.claims
CLAIM = "ito2024-ste-alignment"


def test_ste_does_not_align_singular_vectors(setting, claims_lab, verify):
    s, pairs = claims_lab.setting(*setting), claims_lab.scale.pairs
    ds = ito2024.ste_alignment(s, pairs, claims_lab.scale.n_random)
    verify(CLAIM, ds, config={**s.config, "ste": str(claims_lab.scale.ste)},
           seeds=shared.seeds_of(pairs), notes=(ito2024.ito_r_note(ds),))
