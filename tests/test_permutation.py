import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.func import functional_call

from helpers import random_mlp
from lmc_claims.errors import LmcClaimsError
from lmc_claims.permutation import PermutationSpec, apply_permutation, random_perms
from lmc_claims.permutation.apply import compose, inverse


@given(seed=st.integers(0, 10_000), width=st.integers(1, 16), depth=st.integers(1, 4))
def test_permuted_network_computes_the_same_function(seed, width, depth):
    model, spec, params = random_mlp(seed, width, depth)
    perms = random_perms(spec, params, torch.Generator().manual_seed(seed))
    x = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    for mode in (model.train, model.eval):
        mode()
        out = functional_call(model, params, (x,))
        out_p = functional_call(model, apply_permutation(spec, perms, params), (x,))
        torch.testing.assert_close(out, out_p, rtol=1e-12, atol=1e-12)


@given(seed=st.integers(0, 10_000))
def test_inverse_permutation_restores_the_parameters(seed):
    _, spec, params = random_mlp(seed)
    perms = random_perms(spec, params, torch.Generator().manual_seed(seed))
    back = apply_permutation(spec, inverse(perms), apply_permutation(spec, perms, params))
    assert all(torch.equal(back[k], params[k]) for k in params)
    ident = compose(perms, inverse(perms))
    assert all(torch.equal(v, torch.arange(len(v))) for v in ident.values())


def test_spec_naming_a_missing_parameter_is_a_clear_error():
    _, spec, params = random_mlp(0)
    bad = PermutationSpec.from_axes({**spec.axes_to_perm, "layers.9.weight": ("P_0", None)})
    with pytest.raises(LmcClaimsError, match="does not have"):
        bad.check(params)


def test_spec_with_inconsistent_sizes_is_a_clear_error():
    _, spec, params = random_mlp(0, width=8)
    # Claim that the input axis of layer 0 (6 inputs) is hidden permutation P_0 (8 units).
    bad = PermutationSpec.from_axes({**spec.axes_to_perm, "layers.0.weight": ("P_0", "P_0")})
    with pytest.raises(LmcClaimsError, match="different sizes"):
        bad.check(params)


def test_applying_something_that_is_not_a_permutation_fails():
    _, spec, params = random_mlp(0, width=4)
    perms = {p: torch.zeros(4, dtype=torch.long) for p in spec.perm_names}
    with pytest.raises(LmcClaimsError, match="not a permutation"):
        apply_permutation(spec, perms, params)
