"""Ito, Yamada, Kumagai 2024 (arXiv 2402.04051), §6, Figure 6 and Table 3: WM is more
advantageous than STE for merging three or more models.

Statement: with three models, theta_b and theta_c each permuted onto the anchor theta_a, the
barrier between pi_b(theta_b) and pi_c(theta_c) is smaller with WM than with STE.
Protocol (PUBLISHED.md): disjoint triples (a, b, c), one per independent pair (a, b) plus a third
model of its own (designs.model_triples, Scale.thirds), so triples share no model; b and c are permuted onto a
by WM and by STE (Ito et al.'s recipe; Git Re-Basin's Algorithm 2 is stored per pair by the alignment
claims, not per triple); the loss
along pi_b(b) -> pi_c(c) on 25 points, training and test data. Supporting data: the average of
N = 3, 4, 5 models permuted onto the set's anchor by WM / STE, and Git Re-Basin's MergeMany
(Algorithm 3, no anchor), over disjoint model sets (designs.model_sets), test loss and accuracy.
Criteria: precondition (ours): STE's permutations differ from their first projections (weight
matching onto the anchor) for >= 1% of the units; the
training loss barrier between pi_b(b) and pi_c(c), STE minus WM, above 0 (direction from the
paper; one-sided 95% bound over triples ours).
"""

import pytest

from lmc_claims.measurements import ito2024, shared

pytestmark = pytest.mark.claims
CLAIM = "ito2024-merge-wm-vs-ste"


def test_wm_beats_ste_with_three_models(setting_key, claims_lab, verify):
    s, scale = claims_lab.setting(*setting_key), claims_lab.scale
    verify(CLAIM, lambda pairs: ito2024.merge_wm_vs_ste(s, pairs, s.run.merge_sizes),
           config=lambda ds, pairs: {**s.config, "triples": list(ds.triple.values), "merge_sizes": list(s.run.merge_sizes),
                                     "ste": str(scale.ste), "ste_gr": str(scale.ste_gr)},
           seeds=lambda ds, pairs: sorted(shared.seeds_of(pairs) + scale.thirds(pairs)))
