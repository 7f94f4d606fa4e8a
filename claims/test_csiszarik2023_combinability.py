"""Csiszárik, Kiss, Kőrösi-Szabó, Muntag, Papp, Varga 2023 (arXiv 2308.11511), mode combinability
(abstract; ../shared/CLAIMS.md item 11).

Statement: for permutation-aligned A and pi(B), element-wise convex combinations
theta_c = c * theta_A + (1 - c) * pi(theta_B), c in [0, 1]^d, keep a low loss over broad regions
of the hypercube, while the same combinations of unaligned models do not.
Protocol: pi = weight matching (Git Re-Basin Alg. 1); c from four schemes (CLAIMS.md item 11):
uniform per weight (the hypercube), Bernoulli(1/2) per weight (its corners), one uniform c per
neuron (output unit / channel of a layer: its weights, bias and norm parameters), one uniform c
per layer. Combinations cover the permutation spec's tensors; other tensors come from A and
BatchNorm statistics are reset on training data when the net has BatchNorm. The same c is
applied to the unaligned pair (naive) and the aligned one (paired). Samples per scheme and
pair (scales.Scale.combination_samples): smoke 2, ci 8, paper 32. The midpoint c = 1/2 is stored beside.
Metric: excess test loss = mean loss of theta_c over samples minus the endpoints' mean test
loss; per scheme, the share removed by WM: 1 - excess_WM / excess_naive.
Criterion (ours, in the style of CLAIMS.md item 2; the paper gives no number): >= 0.8 for every
scheme, one-sided 95% t-bound over independent pairs.
Confirmed from the paper's public text (abstract): the element-wise combination, c drawn from
"various distributions" on the hypercube "and its vicinity", low loss over broad regions. Not
confirmed (full text unavailable offline): which distributions exactly (the four schemes are
CLAIMS.md's), the vicinity's extent (not measured here) and any number the paper reports.
"""

import pytest

from lmc_claims.measurements import csiszarik2023, shared
from lmc_claims.metrics.combination import SCHEMES

pytestmark = pytest.mark.claims
CLAIM = "csiszarik2023-combinability"


def test_aligned_combinations_keep_a_low_loss(setting_key, claims_lab, verify):
    s, n = claims_lab.setting(*setting_key), claims_lab.scale.combination_samples
    verify(CLAIM, lambda pairs: csiszarik2023.combinability(s, pairs, n),
           config=lambda ds, pairs: {**s.config, "schemes": list(SCHEMES), "samples_per_scheme": int(ds.attrs["samples_per_scheme"]),
                                     "n_test_eval": int(ds.attrs["n_test_eval"])},
           seeds=lambda ds, pairs: shared.seeds_of(pairs))
