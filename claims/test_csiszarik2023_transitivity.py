"""Csiszárik, Kiss, Kőrösi-Szabó, Muntag, Papp, Varga 2023 (arXiv 2308.11511), transitivity
(abstract; ../shared/CLAIMS.md item 12).

Statement: two models re-based onto a common third model are also linearly mode connected.
Protocol: for each independent pair (A, B), C is the pair's own third model (`Scale.thirds`: the
sample's third model, also its triple's in ito2024-merge-wm-vs-ste), so no two samples share a
model; A and B are each weight-matched onto C, and the straight line between pi_A(A) and pi_B(B)
is evaluated at 25 points (BatchNorm statistics reset at each point when present). Until
2026-12-07 C was the first model of the next pair (cyclically), which made neighbouring samples
share a model.
Premise (issue 20, declared before measuring with it): both re-basings onto C connect, the larger
of the two WM train barriers <= 0.05 nats; where it fails the test is "premise not met".
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
    s = claims_lab.setting(*setting_key)
    verify(CLAIM, lambda pairs: csiszarik2023.transitivity(s, pairs),
           config={"arch": s.arch, "dataset": s.dataset, "width": s.width, "third_model": "the pair's own third model"},
           seeds=lambda ds, pairs: sorted(set(shared.seeds_of(pairs)) | {int(c) for c in ds.third_model.values}))
