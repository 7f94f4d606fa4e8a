"""Every architecture: permutations are a symmetry (train and eval mode), hand-written and
derived specs agree, and weight matching recovers a permutation of a model's own copy."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call

from lmc_claims.errors import LmcClaimsError
from lmc_claims.matching.weight import weight_matching
from lmc_claims.metrics.distance import l2_distance
from lmc_claims.models import ARCHITECTURES
from lmc_claims.models.registry import build_model, get_architecture, permutation_spec
from lmc_claims.permutation import apply_permutation, random_perms
from lmc_claims.permutation.derive import derive_spec

SHAPES = {"mlp": (1, 8, 8), "mlp-d1": (1, 8, 8), "vgg11": (3, 8, 8), "resnet20": (3, 8, 8), "resnet20ln": (1, 8, 8),
          "vit": (1, 8, 8)}
WIDTH = {"mlp": 16, "mlp-d1": 16}
HAND_WRITTEN = sorted(a for a in SHAPES if ARCHITECTURES[a].spec is not None)  # the others' specs are derived


def spec_of(arch: str, model: nn.Module):
    """The spec a claims run uses: the hand-written one, else the one derived from the graph."""
    return permutation_spec(arch, model, torch.zeros(2, *SHAPES[arch], dtype=torch.float64))


def trained_like(arch: str, seed: int) -> tuple[nn.Module, dict]:
    """A model with random weights and non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    model = build_model(arch, SHAPES[arch], 5, WIDTH.get(arch, 1)).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith(("running_mean", "bias")):
                t.copy_(torch.randn(t.shape, generator=gen, dtype=t.dtype) * 0.1)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen, dtype=t.dtype) + 0.5)
            elif t.is_floating_point() and t.dim() == 1:  # norm scales
                t.copy_(torch.rand(t.shape, generator=gen, dtype=t.dtype) + 0.5)
    return model, {k: v.clone() for k, v in model.state_dict().items()}


@settings(max_examples=10)
@given(seed=st.integers(0, 10_000), arch=st.sampled_from(sorted(SHAPES)))
def test_random_permutation_leaves_outputs_unchanged(seed, arch):
    model, params = trained_like(arch, seed)
    spec = spec_of(arch, model)
    perms = random_perms(spec, params, torch.Generator().manual_seed(seed))
    permuted = apply_permutation(spec, perms, params)
    x = torch.randn(6, *SHAPES[arch], dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    for mode in ("eval", "train"):
        getattr(model, mode)()
        # train mode updates BN statistics in place: give each call its own copy
        out = functional_call(model, {k: v.clone() for k, v in params.items()}, (x,))
        out_p = functional_call(model, {k: v.clone() for k, v in permuted.items()}, (x,))
        torch.testing.assert_close(out, out_p, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("arch", HAND_WRITTEN)
def test_derived_spec_agrees_with_the_hand_written_one(arch):
    model, _ = trained_like(arch, 0)
    derived = derive_spec(model, torch.zeros(2, *SHAPES[arch], dtype=torch.float64))
    assert derived.partition() == get_architecture(arch).spec(model).partition()


@settings(max_examples=5)
@given(seed=st.integers(0, 10_000), arch=st.sampled_from(["vgg11", "resnet20", "resnet20ln", "vit"]))
def test_weight_matching_recovers_a_permutation_of_itself(seed, arch):
    model, params = trained_like(arch, seed)
    spec = spec_of(arch, model)
    b = apply_permutation(spec, random_perms(spec, params, torch.Generator().manual_seed(seed)), params)
    res = weight_matching(spec, params, b, seed=seed)
    assert l2_distance(spec, params, apply_permutation(spec, res.perms, b)) == pytest.approx(0.0, abs=1e-9)


class _Sorted(nn.Module):
    """Sorting a layer's units mixes them by value: no permutation rule exists for it."""

    def __init__(self, conv: bool = False):
        super().__init__()
        self.conv = conv
        self.a = nn.Conv2d(1, 4, 3, padding=1) if conv else nn.Linear(4, 8)
        self.b = nn.Linear(4 * 8 * 8 if conv else 8, 3)

    def forward(self, x):
        return self.b(torch.sort(self.a(x), dim=1).values.flatten(1))


# Products of branches, flattened maps and grouped convolutions have rules now
# (tests/test_torchvision_specs.py); sorting along the channel axis still has none.
@pytest.mark.parametrize("model, x, match", [
    (_Sorted(), torch.zeros(2, 4), "sort"),
    (_Sorted(conv=True), torch.zeros(2, 1, 8, 8), "sort"),
])
def test_unsupported_graph_names_the_node(model, x, match):
    with pytest.raises(LmcClaimsError, match=match):
        derive_spec(model, x)


def test_every_builtin_architecture_is_covered_here():
    assert set(ARCHITECTURES) == set(SHAPES)


def test_a_factory_with_a_permutation_spec_attribute_uses_it_and_it_is_exact(monkeypatch):
    """README's hand-written spec (examples/hand_spec.py): the registry takes the factory's
    `permutation_spec` instead of deriving one, and it is a symmetry of the model."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    arch = get_architecture("examples.hand_spec:make_net")
    assert arch.spec is not None and "spec given" in arch.description
    torch.manual_seed(0)
    model = arch.factory((1, 8, 8), 5, 1).double()
    params = {k: v.detach().clone() for k, v in model.state_dict().items()}
    spec = permutation_spec("examples.hand_spec:make_net", model, torch.zeros(2, 1, 8, 8, dtype=torch.float64))
    assert spec.partition() == derive_spec(model, torch.zeros(2, 1, 8, 8, dtype=torch.float64)).partition()
    permuted = apply_permutation(spec, random_perms(spec, params, torch.Generator().manual_seed(0)), params)
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(functional_call(model, params, (x,)), functional_call(model, permuted, (x,)))
