import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import random_mlp
from lmc_claims.matching.activation import activation_matching, producers
from lmc_claims.metrics.distance import l2_distance
from lmc_claims.models.registry import build_model, get_architecture
from lmc_claims.permutation import apply_permutation, random_perms


@given(seed=st.integers(0, 10_000), width=st.integers(4, 32), depth=st.integers(1, 3))
def test_recovers_a_known_permutation_of_itself(seed, width, depth):
    model, spec, a = random_mlp(seed, width, depth)
    b = apply_permutation(spec, random_perms(spec, a, torch.Generator().manual_seed(seed)), a)
    x = torch.randn(200, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    res = activation_matching(spec, model, a, b, x)
    assert l2_distance(spec, a, apply_permutation(spec, res.perms, b)) == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=5)
@given(seed=st.integers(0, 1000))
def test_residual_streams_use_every_producer(seed):
    torch.manual_seed(seed)
    model = build_model("resnet20ln", (1, 8, 8), 3, 1).double()
    spec = get_architecture("resnet20ln").spec(model)
    prod = producers(spec, model)
    assert set(prod) == set(spec.perm_names)
    assert len(prod["P_stream0"]) == 4  # stem conv + conv2 of the three stage-0 blocks
    a = {k: v.clone() for k, v in model.state_dict().items()}
    b = apply_permutation(spec, random_perms(spec, a, torch.Generator().manual_seed(seed)), a)
    x = torch.randn(64, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    res = activation_matching(spec, model, a, b, x)
    assert l2_distance(spec, a, apply_permutation(spec, res.perms, b)) == pytest.approx(0.0, abs=1e-9)
