"""Csiszárik, Kiss, Kőrösi-Szabó, Muntag, Papp, Varga 2023 (arXiv 2308.11511), transitivity
(abstract; ../shared/CLAIMS.md item 12).

Statement: two models re-based onto a common third model are also linearly mode connected.
Protocol: for each independent pair (A, B), C is the first model of the next pair (cyclically:
pair (0, 1) uses model 2, (2, 3) model 4, (4, 5) model 0), an already trained model outside the
pair; A and B are each weight-matched onto C, and the straight line between pi_A(A) and pi_B(B)
is evaluated at 25 points on test data (BatchNorm statistics reset at each point when present).
Because C is shared with a neighbouring pair, the pairs' transitive barriers are not fully
independent (each model takes part in two triples); training three further models per setting
would make them so at about twice the family's CPU cost.
Metric: test loss barrier B = max_lam [L(lam) - chord] of that line, against the naive barrier
between A and B (shared with ainsworth2023-wm-barrier); the direct WM barrier is stored too.
Criterion (ours, as CLAIMS.md item 2; the paper gives no number): 1 - B_transitive / B_naive
>= 0.8, one-sided 95% t-bound over pairs.
Confirmed from the paper's public text: the transitivity statement (abstract). Not confirmed:
how the paper chooses the third model and the barriers it reports (full text unavailable offline).
"""

import pytest

from lmc_claims.measurements import csiszarik2023, shared

pytestmark = pytest.mark.claims
CLAIM = "csiszarik2023-transitivity"


def test_models_rebased_onto_a_common_model_are_connected(setting_key, claims_lab, verify):
    s, pairs = claims_lab.setting(*setting_key), claims_lab.scale.pairs
    ds = csiszarik2023.transitivity(s, pairs)
    seeds = sorted(set(shared.seeds_of(pairs)) | {int(c) for c in ds.third_model.values})
    verify(CLAIM, ds, config={"arch": s.arch, "dataset": s.dataset, "width": s.width,
                              "third_model": "first model of the next pair (cyclic)"},
           seeds=seeds)
