"""The property checks every verified architecture gets first (catalogue/properties.py): its
permutation spec is an exact symmetry (hypothesis-drawn permutations, eval and train mode), weight
matching recovers a permutation planted in its own copy, permutations keep singular values.

The spec's coverage (the share of hidden units it permutes, the weights whose units stay fixed)
is noted beside; the run warns before anything trains when it permutes less than half.
"""

import pytest

from lmc_claims.measurements import properties

pytestmark = pytest.mark.claims
DRAWS = 5  # hypothesis-drawn permutations per architecture


@pytest.mark.parametrize("claim", ["spec-symmetry", "spec-planted-recovery", "spec-singular-values"])
def test_the_spec_is_exact(setting_key, claim, claims_lab, verify):
    s = claims_lab.setting(*setting_key, checked=False)  # the check itself: not stopped by a failing symmetry
    ds = s.memo("spec-properties", DRAWS, compute=lambda: properties.spec_properties(s, DRAWS))
    note = (f"the spec permutes {ds.attrs['permuted_share']:.0%} of the hidden units ({ds.attrs['perms']} permutations); "
            f"weights whose units stay fixed: {ds.attrs['fixed_weights']}")
    verify(claim, ds, config={**s.config, "draws": DRAWS}, seeds=[], notes=(note,))
