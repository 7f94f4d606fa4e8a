import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from helpers import random_mlp
from lmc_claims.errors import LmcClaimsError
from lmc_claims.matching.weight import objective, weight_matching
from lmc_claims.metrics.distance import l2_distance
from lmc_claims.permutation import apply_permutation, identity_perms, random_perms
from lmc_claims.permutation.apply import inverse


@given(seed=st.integers(0, 10_000), width=st.integers(1, 12), depth=st.integers(1, 3))
def test_objective_never_decreases(seed, width, depth):
    _, spec, a = random_mlp(seed, width, depth)
    _, _, b = random_mlp(seed + 1, width, depth)
    res = weight_matching(spec, a, b, seed=seed)
    start = objective(spec, identity_perms(spec, a), a, b)
    trace = np.array([start] + res.objective)
    assert np.all(np.diff(trace) >= -1e-9 * max(1.0, abs(trace).max()))
    # The tracked objective is the true objective of the returned permutation.
    assert res.objective[-1] == pytest.approx(objective(spec, res.perms, a, b), rel=1e-9)


# Weight matching is coordinate descent, a local search: on random (untrained) weights
# with fewer than about 10 units per layer it can stop at a local optimum (measured: 7 of
# 100 seeds at width 4, depth 3; 0 of 100 at width >= 12). The recovery property is
# therefore checked from width 16 up; the local-optimum case is pinned down below.
@given(seed=st.integers(0, 10_000), width=st.integers(16, 48), depth=st.integers(1, 3))
def test_recovers_a_known_permutation_of_itself(seed, width, depth):
    _, spec, a = random_mlp(seed, width, depth)
    hidden = random_perms(spec, a, torch.Generator().manual_seed(seed))
    b = apply_permutation(spec, hidden, a)
    res = weight_matching(spec, a, b, seed=seed)
    aligned = apply_permutation(spec, res.perms, b)
    assert l2_distance(spec, a, aligned) == pytest.approx(0.0, abs=1e-9)
    truth = inverse(hidden)
    assert all(torch.equal(res.perms[p], truth[p]) for p in truth)


def test_models_of_different_shapes_are_refused_with_a_fix():
    _, spec, a = random_mlp(0, width=8)
    _, _, b = random_mlp(1, width=9)
    with pytest.raises(LmcClaimsError, match="same architecture, width and depth"):
        weight_matching(spec, a, b)


def test_models_of_different_architectures_are_refused():
    _, spec, a = random_mlp(0, depth=2)
    _, _, b = random_mlp(1, depth=3)
    with pytest.raises(LmcClaimsError, match="different parameters"):
        weight_matching(spec, a, b)


def test_nan_weights_are_refused():
    _, spec, a = random_mlp(0)
    _, _, b = random_mlp(1)
    b["layers.1.weight"][0, 0] = float("nan")
    with pytest.raises(LmcClaimsError, match="NaN or inf"):
        weight_matching(spec, a, b)


def test_tiny_layers_can_stop_at_a_local_optimum_without_losing_objective():
    # seed 1647, width 7, depth 3: found by the property search above when widths started at 2.
    _, spec, a = random_mlp(1647, 7, 3)
    b = apply_permutation(spec, random_perms(spec, a, torch.Generator().manual_seed(1647)), a)
    res = weight_matching(spec, a, b, seed=1647)
    best = objective(spec, inverse(random_perms(spec, a, torch.Generator().manual_seed(1647))), a, b)
    assert objective(spec, identity_perms(spec, a), a, b) <= res.objective[-1] <= best + 1e-9
