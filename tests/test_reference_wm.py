"""The library's weight matching against a plain NumPy + SciPy implementation of the same
algorithm (benchmarks/reference_wm.py): same visiting order, same permutations found."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import random_mlp
from lmc_claims.matching.weight import objective, weight_matching
from lmc_claims.permutation import PermutationSpec, apply_permutation, random_perms

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import reference_wm  # noqa: E402


def torch_orders(seed, n):
    """The visiting orders weight_matching draws (one torch.randperm per sweep)."""
    gen, cache = torch.Generator().manual_seed(seed), []

    def orders(sweep):
        while len(cache) <= sweep:
            cache.append(torch.randperm(n, generator=gen).tolist())
        return cache[sweep]

    return orders


def reference(spec, a, b, seed, init=None):
    perms, sweeps = reference_wm.weight_matching(
        spec.axes_to_perm,
        {k: a[k].numpy() for k in spec.axes_to_perm},
        {k: b[k].numpy() for k in spec.axes_to_perm},
        orders=torch_orders(seed, len(spec.perm_names)),
        init=None if init is None else {p: v.numpy() for p, v in init.items()},
    )
    return {p: torch.from_numpy(v) for p, v in perms.items()}, sweeps


def conv_net(seed, c=6, dtype=torch.float64, coupled=False):
    """A small residual conv net's parameters: a stream permutation S shared by a stem, two
    residual branches and a head, block interiors I0 and I1, 1-D norm parameters, a 1x1
    projection into a second stream T (and, if `coupled`, a parameter with T on both axes)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=dtype)  # noqa: E731
    axes = {
        "stem.weight": ("S", None, None, None),
        "stem.norm.weight": ("S",), "stem.norm.bias": ("S",),
        "b0.conv1.weight": ("I0", "S", None, None), "b0.norm1.weight": ("I0",),
        "b0.conv2.weight": ("S", "I0", None, None), "b0.norm2.bias": ("S",),
        "b1.conv1.weight": ("I1", "S", None, None),
        "b1.conv2.weight": ("T", "I1", None, None),
        "b1.proj.weight": ("T", "S", None, None),
        "mix.weight": ("T", "T"),
        "head.weight": (None, "T"), "head.bias": (None,),
    }
    shapes = {
        "stem.weight": (c, 3, 3, 3), "stem.norm.weight": (c,), "stem.norm.bias": (c,),
        "b0.conv1.weight": (c + 1, c, 3, 3), "b0.norm1.weight": (c + 1,),
        "b0.conv2.weight": (c, c + 1, 3, 3), "b0.norm2.bias": (c,),
        "b1.conv1.weight": (c + 2, c, 3, 3), "b1.conv2.weight": (2 * c, c + 2, 3, 3),
        "b1.proj.weight": (2 * c, c, 1, 1), "mix.weight": (2 * c, 2 * c),
        "head.weight": (4, 2 * c), "head.bias": (4,),
    }
    if not coupled:
        del axes["mix.weight"], shapes["mix.weight"]
    return PermutationSpec.from_axes(axes), {k: r(*s) for k, s in shapes.items()}


def assert_same(spec, a, b, ours, ref_perms):
    assert set(ours.perms) == set(ref_perms)
    for p in ref_perms:
        assert torch.equal(ours.perms[p].cpu(), ref_perms[p]), p
    true = objective(spec, ours.perms, a, b)
    assert ours.objective[-1] == pytest.approx(true, rel=1e-9, abs=1e-9)
    assert true == pytest.approx(reference_wm.objective(
        spec.axes_to_perm, {p: v.numpy() for p, v in ref_perms.items()},
        {k: a[k].numpy() for k in spec.axes_to_perm}, {k: b[k].numpy() for k in spec.axes_to_perm}), rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), width=st.integers(2, 24), depth=st.integers(1, 3))
def test_same_permutations_as_the_reference_on_mlps(seed, width, depth):
    _, spec, a = random_mlp(seed, width, depth)
    _, _, b = random_mlp(seed + 1, width, depth)
    ours = weight_matching(spec, a, b, seed=seed)
    ref_perms, sweeps = reference(spec, a, b, seed)
    assert ours.sweeps == sweeps
    assert_same(spec, a, b, ours, ref_perms)


@pytest.mark.parametrize("seed", range(8))
def test_same_permutations_as_the_reference_on_a_residual_conv_net(seed):
    spec, a = conv_net(seed)
    _, b = conv_net(seed + 100)
    ours = weight_matching(spec, a, b, seed=seed)
    ref_perms, sweeps = reference(spec, a, b, seed)
    assert ours.sweeps == sweeps
    assert_same(spec, a, b, ours, ref_perms)
    trace = np.array(ours.objective)
    assert np.all(np.diff(trace) >= -1e-9 * abs(trace).max())


@pytest.mark.parametrize("seed", range(4))
def test_float32_models_match_like_the_reference(seed):
    spec, a = conv_net(seed, dtype=torch.float32)
    _, b = conv_net(seed + 100, dtype=torch.float32)
    ours = weight_matching(spec, a, b, seed=seed)
    ref_perms, _ = reference(spec, a, b, seed)
    assert all(torch.equal(ours.perms[p], ref_perms[p]) for p in ref_perms)


@pytest.mark.parametrize("seed", range(4))
def test_warm_start_matches_the_reference_from_the_same_start(seed):
    spec, a = conv_net(seed)
    _, b = conv_net(seed + 100)
    init = random_perms(spec, a, torch.Generator().manual_seed(seed))
    ours = weight_matching(spec, a, b, seed=seed, init=init)
    ref_perms, sweeps = reference(spec, a, b, seed, init=init)
    assert ours.sweeps == sweeps
    assert_same(spec, a, b, ours, ref_perms)
    # The objective trace starts from the warm start's objective, not the identity's.
    assert ours.objective[0] >= objective(spec, init, a, b) - 1e-9


@pytest.mark.parametrize("seed", range(4))
def test_a_permutation_on_two_axes_of_one_parameter(seed):
    # Not a linear assignment any more (C_T depends on T); the steps are the reference's
    # linearised ones and the reported objective is still the true one.
    spec, a = conv_net(seed, coupled=True)
    _, b = conv_net(seed + 100, coupled=True)
    ours = weight_matching(spec, a, b, seed=seed)
    ref_perms, sweeps = reference(spec, a, b, seed)
    assert ours.sweeps == sweeps
    assert_same(spec, a, b, ours, ref_perms)


def test_identity_init_is_the_same_as_no_init():
    spec, a = conv_net(3)
    _, b = conv_net(4)
    plain = weight_matching(spec, a, b, seed=5)
    ident = weight_matching(spec, a, b, seed=5, init={p: torch.arange(len(v)) for p, v in plain.perms.items()})
    assert plain.objective == pytest.approx(ident.objective, rel=1e-12)
    assert all(torch.equal(plain.perms[p], ident.perms[p]) for p in plain.perms)


def test_recovers_a_hidden_permutation_of_a_conv_net():
    spec, a = conv_net(7, c=12)
    hidden = random_perms(spec, a, torch.Generator().manual_seed(7))
    b = apply_permutation(spec, hidden, a)
    res = weight_matching(spec, a, b, seed=7)
    aligned = apply_permutation(spec, res.perms, b)
    assert all(torch.allclose(aligned[k], a[k]) for k in a)


def test_huge_but_finite_weights_are_accepted():
    # float64 sums of these overflow to inf; the per-parameter check must decide.
    _, spec, a = random_mlp(0, 4, 1)
    _, _, b = random_mlp(1, 4, 1)
    a = {k: v * 1e306 for k, v in a.items()}
    res = weight_matching(spec, a, b, seed=0)
    assert len(res.objective) > 0
