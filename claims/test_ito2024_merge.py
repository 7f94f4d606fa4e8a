"""Ito, Yamada, Kumagai 2024 (arXiv 2402.04051), §6: WM beats STE when merging 3+ models.

Statement: when N >= 3 models are merged (every other model permuted onto a reference, then all
N averaged), weight matching gives a better merged model than the straight-through estimator,
whose permutations are fitted to the midpoint of one pair at a time.
Protocol: for each model set the first model is the reference; WM and STE (Git Re-Basin Alg. 2,
midpoint lam = 1/2 variant) each permute the N - 1 others onto it; the average is evaluated on
test data. The naive average and the mean of the endpoints are stored for scale.
Criteria: test accuracy and test loss of the WM merge better than STE's, paired over model sets,
one-sided 95% t-bound above 0 (direction from the paper, bound ours).
"""

import pytest

from lmc_claims.measurements import ito2024

pytestmark = pytest.mark.claims
CLAIM = "ito2024-merge-wm-vs-ste"


def test_wm_beats_ste_when_merging(setting, n_models, claims_lab, verify):
    s, scale = claims_lab.setting(*setting), claims_lab.scale
    sets = [scale.merge_set(s.run, n_models, i) for i in range(scale.merge_sets)]
    ds = ito2024.merged(s, sets)
    verify(CLAIM, ds, config={**s.config, "n_models": n_models,
                              "ste": str(scale.ste)}, seeds=sorted({m for models in sets for m in models}))
