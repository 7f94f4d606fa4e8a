"""`lmc_claims.testing`, the property checks users run on their own models: a correct spec passes,
a wrong one is named (permutation, parameters, size), weight matching recovers a planted
permutation, singular values are kept; the strategies draw block-structured permutations too."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmc_claims.models.mlp import MLP, mlp_spec
from lmc_claims.permutation import PermutationSpec
from lmc_claims.testing import (SymmetryError, assert_keeps_singular_values, assert_recovers_planted_permutation,
                                assert_symmetry, check_symmetry, permutations, small_models, spec_coverage)


@settings(max_examples=6, deadline=None)
@given(drawn=small_models(families=("mlp", "resnet20ln", "vit")))
def test_built_in_models_pass_every_check(drawn):
    model, x = drawn
    spec = assert_symmetry(model, x, draws=2)
    assert_recovers_planted_permutation(model, x, spec)
    assert assert_keeps_singular_values(model, x, spec) < 1e-9


def wrong_spec(model):
    """A hand-written spec with Git Re-Basin's most reported typo: one weight's axes swapped."""
    spec = mlp_spec(model)
    axes = dict(spec.axes_to_perm)
    axes["layers.2.weight"] = tuple(reversed(axes["layers.2.weight"]))
    return PermutationSpec.from_axes(axes)


def test_a_wrong_spec_is_named_with_its_permutation_parameter_and_size():
    torch.manual_seed(0)
    model = MLP((6,), 3, width=8, depth=3).double()
    x = torch.randn(5, 6, dtype=torch.float64)
    with pytest.raises(SymmetryError) as e:
        assert_symmetry(model, x, wrong_spec(model))
    text = str(e.value)
    assert "not a symmetry" in text and "layers.2.weight" in text and "eval-mode outputs by" in text
    found = check_symmetry(model, x, wrong_spec(model))
    assert found and all(d.size > d.tolerance for d in found) and {d.mode for d in found} == {"eval", "train"}


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), data=st.data())
def test_drawn_permutations_are_permutations_and_keep_heads_together(seed, data):
    from lmc_claims.models.registry import build_model
    from lmc_claims.permutation.derive import derive_spec

    torch.manual_seed(seed)
    model = build_model("vit", (1, 8, 8), 10, 2).double()
    spec = derive_spec(model, torch.randn(2, 1, 8, 8, dtype=torch.float64))
    params = {k: v.detach() for k, v in model.state_dict().items()}
    perms = data.draw(permutations(spec, params))
    assert spec.blocks and all(torch.equal(torch.sort(p).values, torch.arange(len(p))) for p in perms.values())
    for p, (outer, n_blocks, block) in spec.blocks.items():
        heads = perms[p].view(n_blocks, block) // block  # every new head takes all its units from one old head
        assert all(len(set(h.tolist())) == 1 for h in heads)
    assert not check_symmetry(model, torch.randn(3, 1, 8, 8, dtype=torch.float64), spec, perms=perms)


def test_spec_coverage_counts_hidden_units_permuted():
    model = MLP((6,), 3, width=8, depth=2)
    params = model.state_dict()
    assert spec_coverage(mlp_spec(model), params) == (1.0, [])
    nothing = PermutationSpec.from_axes({k: (None,) * v.ndim for k, v in params.items()})
    share, fixed = spec_coverage(nothing, params)
    assert share == 0.0 and fixed == [k for k, v in params.items() if v.ndim == 2][:-1]


class Written(torch.nn.Module):
    """A layer outside torch.nn: a Parameter applied with torch.addmm, torch.matmul / @ or F.linear."""

    def __init__(self, n_in, n_out, how):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(n_in, n_out, dtype=torch.float64) / n_in ** 0.5)
        self.bias = torch.nn.Parameter(torch.randn(n_out, dtype=torch.float64))
        self.how = how

    def forward(self, x):
        if self.how == "addmm":
            return torch.addmm(self.bias, x, self.weight)
        if self.how == "matmul":
            return torch.matmul(x, self.weight) + self.bias
        if self.how == "at":
            return x @ self.weight + self.bias
        return torch.nn.functional.linear(x, self.weight.t(), self.bias)


@pytest.mark.parametrize("how", ["addmm", "matmul", "at", "linear"])
def test_layers_written_outside_torch_nn_permute_and_stay_exact(how):
    torch.manual_seed(0)
    net = torch.nn.Sequential(Written(6, 8, how), torch.nn.ReLU(), Written(8, 8, how), torch.nn.ReLU(), Written(8, 3, how))
    x = torch.randn(5, 6, dtype=torch.float64)
    spec = assert_symmetry(net, x)
    assert spec_coverage(spec, net.state_dict())[0] == 1.0 and len(spec.perm_names) == 2


def test_a_rule_that_fails_unforeseen_is_an_error_naming_the_node_and_the_fix(monkeypatch):
    """A derivation never ends in a bare Python exception (a TypeError from inside a rule included)."""
    from lmc_claims.errors import LmcClaimsError
    from lmc_claims.permutation.derive import derive_spec, ops

    def broken(A, node, args, kwargs):
        raise TypeError("unexpected keyword argument 'scale'")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(6, 8), torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))  # relu as a function: through the rule table

    monkeypatch.setitem(ops.RULES, "relu", broken)
    with pytest.raises(LmcClaimsError) as e:
        derive_spec(Net(), torch.randn(2, 6), tracer="fx")
    text = str(e.value)
    assert "graph node 'relu'" in text and "TypeError" in text and "How to fix" in text
