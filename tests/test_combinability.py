"""Mode-combinability building blocks: coefficients, combinations and perturbed matchings."""

import numpy as np
import pytest
import torch
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

from helpers import random_mlp
from lmc_claims.measurements import csiszarik2023
from lmc_claims.metrics import combination as cb
from lmc_claims.scales import FRACTIONS, SCALES
from lmc_claims.seeds import generator
from lmc_claims.models.resnet import ResNet20, resnet_spec
from lmc_claims.permutation import apply_permutation, random_perms

ONE = lambda spec, params: cb.constant_coefficients(spec, params, 1.0)
ZERO = lambda spec, params: cb.constant_coefficients(spec, params, 0.0)


def two_models(width=8):
    _, spec, a = random_mlp(0, width=width)
    _, _, b = random_mlp(1, width=width)
    return spec, a, b


def test_all_ones_gives_a_and_all_zeros_gives_b_exactly():
    spec, a, b = two_models()
    for k, v in cb.combine(a, b, ONE(spec, a)).items():
        assert torch.equal(v, a[k])
    for k, v in cb.combine(a, b, ZERO(spec, a)).items():
        assert torch.equal(v, b[k])


def test_tensors_outside_the_spec_come_from_a():
    model = ResNet20((1, 8, 8), 3, width=1, norm="bn")
    spec = resnet_spec(model)
    a = {k: v.clone() for k, v in model.state_dict().items()}
    b = {k: v + 1 if v.is_floating_point() else v + 5 for k, v in a.items()}
    c = cb.coefficients(spec, a, "uniform", torch.Generator().manual_seed(0))
    out = cb.combine(a, b, c)
    outside = [k for k in a if k not in spec.axes_to_perm]
    assert outside and all(torch.equal(out[k], a[k]) for k in outside)  # e.g. num_batches_tracked


@pytest.mark.parametrize("scheme", cb.SCHEMES)
def test_coefficients_lie_in_the_unit_cube_with_the_parameters_shapes(scheme):
    spec, a, _ = two_models()
    c = cb.coefficients(spec, a, scheme, torch.Generator().manual_seed(3))
    assert set(c) == set(spec.axes_to_perm)
    for k, v in c.items():
        assert v.shape == a[k].shape and v.dtype == a[k].dtype
        assert float(v.min()) >= 0 and float(v.max()) <= 1


def test_bernoulli_coefficients_are_corners_and_take_both_values():
    spec, a, _ = two_models(width=32)
    c = torch.cat([v.reshape(-1) for v in cb.coefficients(spec, a, "bernoulli", torch.Generator().manual_seed(1)).values()])
    assert set(c.unique().tolist()) == {0.0, 1.0}
    assert 0.4 < float(c.mean()) < 0.6


def test_layer_coefficients_are_constant_within_a_layer_and_shared_by_weight_and_bias():
    spec, a, _ = two_models()
    c = cb.coefficients(spec, a, "layer", torch.Generator().manual_seed(2))
    layers = {k.rsplit(".", 1)[0] for k in c}
    values = {}
    for k, v in c.items():
        assert torch.all(v == v.reshape(-1)[0])
        values.setdefault(k.rsplit(".", 1)[0], set()).add(float(v.reshape(-1)[0]))
    assert all(len(s) == 1 for s in values.values())
    assert len({next(iter(s)) for s in values.values()}) == len(layers)  # layers differ from each other


def test_neuron_coefficients_are_shared_along_a_units_row_and_its_bias():
    spec, a, _ = two_models()
    c = cb.coefficients(spec, a, "neuron", torch.Generator().manual_seed(4))
    w, bias = c["layers.0.weight"], c["layers.0.bias"]
    assert torch.equal(w, w[:, :1].expand_as(w))  # one value per row (unit)
    assert torch.equal(w[:, 0], bias)
    assert len(bias.unique()) == len(bias)


def test_a_seed_gives_the_same_coefficients_every_time():
    spec, a, _ = two_models()
    draw = lambda: cb.coefficients(spec, a, "uniform", generator("combination", 0, 1, 2, 3))
    first, again = draw(), draw()
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_combination_is_elementwise_convex():
    spec, a, b = two_models()
    c = cb.coefficients(spec, a, "uniform", torch.Generator().manual_seed(5))
    out = cb.combine(a, b, c)
    for k in spec.axes_to_perm:
        lo, hi = torch.minimum(a[k], b[k]), torch.maximum(a[k], b[k])
        assert torch.all(out[k] >= lo - 1e-12) and torch.all(out[k] <= hi + 1e-12)


def test_perturbing_fraction_zero_leaves_the_permutation_unchanged():
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(0))
    assert torch.equal(cb.perturb(perm, 0.0, torch.Generator().manual_seed(1)), perm)


@given(n=st.integers(2, 300), fraction=st.floats(0.0, 1.0), seed=st.integers(0, 2**31 - 1))
def test_perturbing_moves_round_f_n_units_and_stays_a_permutation(n, fraction, seed):
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    out = cb.perturb(perm, fraction, torch.Generator().manual_seed(seed + 1))
    assert torch.equal(out.sort().values, torch.arange(n))
    k = int(round(fraction * n))
    assert int((out != perm).sum()) == (k if k >= 2 else 0)


def test_perturbed_perms_and_the_moved_fraction():
    spec, a, _ = two_models(width=40)
    perms = random_perms(spec, a, torch.Generator().manual_seed(0))
    broken = cb.perturb_perms(perms, 0.25, torch.Generator().manual_seed(1))
    assert cb.moved_fraction(perms, broken) == pytest.approx(0.25)
    assert cb.moved_fraction(perms, cb.perturb_perms(perms, 1.0, torch.Generator().manual_seed(1))) == 1.0


def test_outputs_and_disagreement_of_permuted_models():
    model, spec, a = random_mlp(0)
    perms = random_perms(spec, a, torch.Generator().manual_seed(0))
    x = torch.randn(64, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(2))
    loss, acc, pred = cb.outputs(model, a, x, y, batch=10)
    loss_p, _, pred_p = cb.outputs(model, apply_permutation(spec, perms, a), x, y)
    assert loss == pytest.approx(loss_p) and cb.disagreement(pred, pred_p) == 0.0
    assert acc == pytest.approx(float((pred == y).double().mean()))


def test_each_pair_has_a_third_model_of_its_own():
    """The transitivity claim's common model C is the sample's own: no two samples share a model."""
    from lmc_claims.scales import SCALES

    scale = SCALES["ci"]
    pairs = scale.sample_pairs(10)
    thirds = scale.thirds(pairs)
    assert all(c not in p for c, p in zip(thirds, pairs))
    models = [m for p in pairs for m in p] + thirds
    assert len(models) == len(set(models))


def test_every_scale_draws_at_least_two_combinations():
    assert min(scale.combination_samples for scale in SCALES.values()) >= 2  # disagreement between samples needs two


def test_robustness_statistics_of_a_monotone_degradation():
    loss = np.array([[0.1, 0.2, 0.3, 0.6, 1.1]])[:, :, None]  # excess over endpoints (0.1): 0, .1, .2, .5, 1
    ds = xr.Dataset({"perturbed_loss": (("pair", "fraction", "sample"), loss),
                     "endpoint_loss": (("pair", "endpoint"), np.array([[0.1, 0.1]]))},
                    coords={"pair": ["0-1"], "fraction": list(FRACTIONS), "sample": [0], "endpoint": ["A", "B"]})
    out = csiszarik2023.robustness_statistics(ds)
    assert out.excess_removed_at_quarter.values.tolist() == pytest.approx([0.8])
    assert out.loss_rank_correlation.values.tolist() == pytest.approx([1.0])


def test_perturbed_head_permutations_stay_symmetries_of_a_vit():
    """Csiszarik et al.'s perturbed matchings on a transformer: units are rotated inside each head,
    never across heads, so the perturbed permutation still leaves the network's function unchanged."""
    from lmc_claims.models.vit import ViT
    from lmc_claims.permutation.derive import derive_spec

    torch.manual_seed(0)
    model = ViT((1, 28, 28), 10, width=2).double().eval()
    x = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    spec = derive_spec(model, x)
    assert spec.blocks, "the ViT's spec should have head-structured permutations"
    params = {k: v.detach().clone() for k, v in model.state_dict().items()}
    perms = random_perms(spec, params, torch.Generator().manual_seed(1))
    for fraction in (0.25, 1.0):
        broken = cb.perturb_perms(perms, fraction, torch.Generator().manual_seed(2), spec)
        assert spec.respects_blocks(broken)
        assert cb.moved_fraction(perms, broken) > 0
        want = torch.func.functional_call(model, params, (x,))
        got = torch.func.functional_call(model, apply_permutation(spec, broken, params), (x,))
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)
