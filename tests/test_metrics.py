import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from helpers import random_mlp
from lmc_claims.metrics.interpolation import barrier, interpolation_curve, lerp
from lmc_claims.metrics.spectral import (LayerSVD, chance_overlap, ito_r_terms, singular_values, subspace_overlap, svd,
                                        vector_cosines)


def layer(w):
    return LayerSVD("w", *svd(w), True, True)
from lmc_claims.permutation import apply_permutation, random_perms


@given(seed=st.integers(0, 10_000), m=st.integers(1, 40), n=st.integers(1, 40))
def test_permutations_preserve_singular_values(seed, m, n):
    rng = np.random.default_rng(seed)
    w = torch.from_numpy(rng.standard_normal((m, n)))
    pw = w[torch.from_numpy(rng.permutation(m))][:, torch.from_numpy(rng.permutation(n))]
    s, ps = singular_values(w), singular_values(pw)
    tol = 20 * np.finfo(np.float64).eps * max(m, n) * float(s[0])
    assert torch.allclose(s, ps, atol=tol, rtol=0)


@given(seed=st.integers(0, 10_000))
def test_permutation_moves_singular_vectors_to_pu(seed):
    rng = np.random.default_rng(seed)
    # Distinct singular values (a spectral gap) so single vectors are well defined.
    u, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    v, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    w = torch.from_numpy(u[:, :5] @ np.diag([5.0, 4.0, 3.0, 2.0, 1.0]) @ v.T)
    p, q = torch.from_numpy(rng.permutation(6)), torch.from_numpy(rng.permutation(5))
    ua, _, va = svd(w)
    ub, _, vb = svd(w[p][:, q])
    assert torch.allclose((ua[p] * ub).sum(0).abs(), torch.ones(5, dtype=torch.float64), atol=1e-9)
    assert torch.allclose((va[q] * vb).sum(0).abs(), torch.ones(5, dtype=torch.float64), atol=1e-9)


@given(seed=st.integers(0, 10_000), gamma=st.sampled_from([0.0, 0.3]))
def test_ito_r_is_one_for_aligned_copies_sign_free_and_small_for_unrelated_matrices(seed, gamma):
    rng = np.random.default_rng(seed)
    w = torch.from_numpy(rng.standard_normal((30, 20)))
    a = layer(w)
    total, n = ito_r_terms(a, a, gamma)
    assert n >= 1 and total / n == pytest.approx(1.0)
    # Flipping the signs of singular vector pairs (an equally valid SVD) changes nothing.
    signs = torch.from_numpy(rng.choice([-1.0, 1.0], size=a.rank))
    flipped = LayerSVD("w", a.u * signs, a.s, a.v * signs, True, True)
    assert ito_r_terms(a, flipped, gamma)[0] == pytest.approx(total)
    # Unrelated weights are far from aligned.
    other = layer(torch.from_numpy(rng.standard_normal((30, 20))))
    assert abs(ito_r_terms(a, other, gamma)[0] / n) < 0.5
    assert ito_r_terms(layer(torch.zeros(3, 2, dtype=torch.float64)), a, gamma) == (0.0, 0)


def test_subspace_overlap_bounds_and_repeated_singular_values():
    eye = torch.eye(6, dtype=torch.float64)
    # Identity has all singular values equal: vectors are arbitrary, subspace overlap is not.
    u, s, _ = svd(eye)
    assert torch.allclose(s, torch.ones(6, dtype=torch.float64))
    assert subspace_overlap(u, u, 3) == pytest.approx(1.0)
    assert subspace_overlap(u, u, 6) == pytest.approx(1.0)
    assert chance_overlap(3, 6) == 0.5
    with pytest.raises(ValueError):
        subspace_overlap(u, u, 0)
    # Rank-deficient and width-1 matrices stay defined.
    assert np.isfinite(vector_cosines(layer(torch.zeros(4, 3, dtype=torch.float64)), layer(torch.ones(4, 3, dtype=torch.float64))).numpy()).all()
    assert vector_cosines(layer(torch.ones(1, 5, dtype=torch.float64)), layer(torch.ones(1, 5, dtype=torch.float64))).item() == pytest.approx(1.0)


@given(seed=st.integers(0, 1000))
def test_interpolation_endpoints_are_the_models(seed):
    _, _, a = random_mlp(seed)
    _, _, b = random_mlp(seed + 1)
    assert all(torch.equal(lerp(a, b, 0.0)[k], a[k]) for k in a)
    assert all(torch.equal(lerp(a, b, 1.0)[k], b[k]) for k in a)


@given(seed=st.integers(0, 1000))
def test_barrier_of_a_model_with_itself_or_its_permutation_is_zero(seed):
    model, spec, a = random_mlp(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(50, 6, dtype=torch.float64, generator=gen)
    y = torch.randint(0, 3, (50,), generator=gen)
    curve = interpolation_curve(model, a, a, x, y)
    assert curve.loss_barrier == 0.0 and curve.accuracy_barrier == 0.0
    # Interpolating between A and a permuted copy is not trivial, but the endpoints agree.
    pa = apply_permutation(spec, random_perms(spec, a, gen), a)
    c2 = interpolation_curve(model, a, pa, x, y)
    assert c2.loss[0] == pytest.approx(c2.loss[-1], rel=1e-9)


def test_barrier_is_the_largest_gap_above_the_chord():
    lams = np.linspace(0, 1, 5)
    assert barrier(lams, np.array([1.0, 2.0, 3.0, 2.0, 1.0])) == pytest.approx(2.0)
    assert barrier(lams, np.array([0.0, 0.25, 0.5, 0.75, 1.0])) == pytest.approx(0.0)


def test_batchnorm_statistics_reset_averages_over_all_the_data():
    from torch import nn

    from lmc_claims.metrics.interpolation import reset_bn_stats

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3)).double()
    params = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(40, 1, 6, 6, dtype=torch.float64)
    out = reset_bn_stats(model, params, x, batch=8)  # 5 equal batches: mean of batch means = exact mean
    pre = model[0](x)
    torch.testing.assert_close(out["1.running_mean"], pre.mean((0, 2, 3)))
    assert model[1].momentum == 0.1 and torch.equal(params["1.running_mean"], model.state_dict()["1.running_mean"])
