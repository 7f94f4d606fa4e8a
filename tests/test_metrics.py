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


# -- interpolation curves: the batched evaluation against one `evaluate` per point ------------

import warnings  # noqa: E402

from torch import nn  # noqa: E402

import lmc_claims.metrics.interpolation as interp  # noqa: E402
from lmc_claims.metrics.interpolation import engine, evaluation, paths  # noqa: E402
from lmc_claims.metrics.interpolation import evaluate, reset_bn_stats  # noqa: E402
from lmc_claims.models.mlp import MLP  # noqa: E402
from lmc_claims.models.registry import build_model  # noqa: E402

LAMS = np.linspace(0.0, 1.0, 9)


def per_point(model, a, b, x, y, lambdas=LAMS, bn_data=None, reset=reset_bn_stats):
    """The plain definition: lerp, reset BatchNorm statistics if asked, evaluate."""
    pts = []
    for lam in lambdas:
        params = lerp(a, b, float(lam))
        if bn_data is not None:
            params = reset(model, params, bn_data)
        pts.append(evaluate(model, params, x, y))
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


def two_inits(make, seed=0):
    torch.manual_seed(seed)
    model = make()
    a = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.manual_seed(seed + 1)
    b = {k: v.detach().clone() for k, v in make().state_dict().items()}
    return model, a, b


def data(n, shape, classes=10, seed=2, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=gen, dtype=dtype), torch.randint(0, classes, (n,), generator=gen)


@pytest.fixture
def runs(monkeypatch):
    """Records (stem used, points per pass) of every interior evaluation."""
    seen = []
    plain = engine._run

    def spy(model, a, b, batches, lams, stem, chunk):
        seen.append((stem is not None, chunk))
        return plain(model, a, b, batches, lams, stem, chunk)

    monkeypatch.setattr(engine, "_run", spy)
    return seen


def assert_same_curve(curve, ref, model, a, b, x, y, exact=False):
    loss, acc = ref
    if exact:
        assert np.array_equal(curve.loss, loss) and np.array_equal(curve.accuracy, acc)
    else:
        np.testing.assert_allclose(curve.loss, loss, rtol=1e-6, atol=0)
        np.testing.assert_array_equal(curve.accuracy, acc)
    # the endpoints are exactly what `evaluate` gives for the two models
    assert (curve.loss[0], curve.accuracy[0]) == evaluate(model, a, x, y)
    assert (curve.loss[-1], curve.accuracy[-1]) == evaluate(model, b, x, y)


@pytest.mark.parametrize("stem, batched", [(True, True), (False, True), (True, False), (False, False)])
def test_mlp_curve_matches_one_evaluation_per_point(monkeypatch, runs, stem, batched):
    model, a, b = two_inits(lambda: MLP((1, 8, 8), 10, width=16, depth=3))
    x, y = data(2100, (1, 8, 8))  # two batches of `evaluate`: 2048 + 52 examples
    if not stem:
        monkeypatch.setattr(engine, "STEM_BYTES", 0)
    monkeypatch.setattr(engine, "CPU_CHUNK_BYTES", 32 * 2**20 if batched else 0)
    computed = []  # forward passes of the first layer itself
    first = model.layers[0].forward
    monkeypatch.setattr(model.layers[0], "forward", lambda inp: computed.append(1) or first(inp))
    curve = interpolation_curve(model, a, b, x, y, LAMS)
    assert runs and all(s == stem and (c > 1) == batched for s, c in runs)
    # with the stem: computed for the two endpoints (2 batches each) and a one-example probe of
    # the layer sizes (batched only), interpolated in between
    assert (len(computed) == 4 + batched) if stem else len(computed) > 5
    assert_same_curve(curve, per_point(model, a, b, x, y), model, a, b, x, y)


@pytest.mark.parametrize("batched", [False, True])
def test_layernorm_resnet_curve_matches_one_evaluation_per_point(monkeypatch, runs, batched):
    model, a, b = two_inits(lambda: build_model("resnet20ln", (1, 8, 8), 10, 1))
    x, y = data(64, (1, 8, 8))
    monkeypatch.setattr(engine, "CPU_CHUNK_BYTES", 32 * 2**20)
    monkeypatch.setattr(engine, "BATCH_CONV_ON_CPU", batched)  # what an accelerator does
    curve = interpolation_curve(model, a, b, x, y, LAMS)
    assert runs and all(not s and (c > 1) == batched for s, c in runs)
    # one point at a time is the plain loop itself: bitwise the same numbers
    assert_same_curve(curve, per_point(model, a, b, x, y), model, a, b, x, y, exact=not batched)


@pytest.mark.parametrize("batched", [False, True])
def test_curve_keeps_any_order_of_lambdas_and_points_outside_the_segment(monkeypatch, batched):
    monkeypatch.setattr(engine, "CPU_CHUNK_BYTES", 32 * 2**20 if batched else 0)
    model, a, b = two_inits(lambda: MLP((6,), 3, width=16, depth=2))
    x, y = data(300, (6,), classes=3)
    lams = np.array([1.0, 0.5, -0.25, 0.0, 1.5, 0.5])
    curve = interpolation_curve(model, a, b, x, y, lams)
    loss, acc = per_point(model, a, b, x, y, lams)
    np.testing.assert_allclose(curve.loss, loss, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(curve.accuracy, acc)
    assert curve.loss[0] == evaluate(model, b, x, y)[0] and curve.loss[3] == evaluate(model, a, x, y)[0]


class _Branching(nn.Module):
    """Data-dependent control flow: vmap cannot run it."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 16), nn.Linear(16, 3)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        return self.fc2(h) if h.mean() > 0.1 else self.fc2(-h)


class _InPlace(nn.Module):
    """A batched value written in place into a fresh tensor: vmap cannot run it."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 16), nn.Linear(16, 3)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        centre = torch.zeros(16)
        centre.add_(h.mean(0))
        return self.fc2(h - centre)


@pytest.mark.parametrize("cls", [_Branching, _InPlace])
def test_models_vmap_cannot_run_fall_back_to_one_point_at_a_time(monkeypatch, runs, cls):
    monkeypatch.setattr(engine, "CPU_CHUNK_BYTES", 32 * 2**20)
    model, a, b = two_inits(cls)
    x, y = data(200, (6,), classes=3)
    ref = per_point(model, a, b, x, y)
    with pytest.warns(RuntimeWarning, match="one point at a time"):
        curve = interpolation_curve(model, a, b, x, y, LAMS)
    assert cls in engine._NO_VMAP and runs[-1][1] == 1
    assert_same_curve(curve, ref, model, a, b, x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # remembered: no second attempt, no second warning
        again = interpolation_curve(model, a, b, x, y, LAMS)
    assert np.array_equal(again.loss, curve.loss) and all(c == 1 for _, c in runs[-2:])


def test_batchnorm_path_resets_once_per_point_for_both_splits(monkeypatch):
    model, a, b = two_inits(lambda: nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(),
                                                  nn.Linear(16, 3)).double())
    xt, yt = data(600, (6,), 3, seed=3, dtype=torch.float64)
    xs, ys = data(200, (6,), 3, seed=4, dtype=torch.float64)
    refs = [per_point(model, a, b, x, y, bn_data=xt) for x, y in ((xt, yt), (xs, ys))]
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return reset_bn_stats(*args, **kwargs)

    for where in (evaluation, paths):  # where points and identical endpoints reset their statistics
        monkeypatch.setattr(where, "reset_bn_stats", counted)
    for (x, y), ref in zip(((xt, yt), (xs, ys)), refs):
        curve = interpolation_curve(model, a, b, x, y, LAMS, bn_data=xt)
        assert np.array_equal(curve.loss, ref[0]) and np.array_equal(curve.accuracy, ref[1])
    assert len(calls) == len(LAMS)  # the test split reused the train split's statistics
    with torch.no_grad():
        a["0.weight"].mul_(2)  # an endpoint changed in place: its statistics are recomputed
    curve = interpolation_curve(model, a, b, xs, ys, LAMS, bn_data=xt)
    assert len(calls) == 2 * len(LAMS)
    assert np.array_equal(curve.loss, per_point(model, a, b, xs, ys, bn_data=xt)[0])
    same = interpolation_curve(model, a, a, xs, ys, LAMS, bn_data=xt)  # a model with itself: one reset
    assert len(calls) == 2 * len(LAMS) + 1 and same.loss_barrier == 0.0
    assert same.loss[0] == evaluate(model, reset_bn_stats(model, a, xt), xs, ys)[0]


def fitted(model, params, x, y, steps=40):
    """params after a few full-batch Adam steps on (x, y)."""
    model.load_state_dict(params)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("make, batched", [
    (lambda: MLP((1, 8, 8), 10, width=16, depth=3), True),
    (lambda: MLP((1, 8, 8), 10, width=16, depth=3), False),
    (lambda: build_model("resnet20ln", (1, 8, 8), 10, 1), False),
])
def test_a_line_answers_a_barrier_bound_as_the_whole_curve_does_with_fewer_points(monkeypatch, make, batched):
    monkeypatch.setattr(engine, "CPU_CHUNK_BYTES", 2**18 if batched else 0)  # several chunks when batched
    computed, plain = [], engine._run  # the interior points each evaluation computes

    def spy(model, a, b, batches, lams, stem, chunk):
        computed.extend(lams)
        assert (chunk > 1) == (batched and len(lams) > 1)
        return plain(model, a, b, batches, lams, stem, chunk)

    monkeypatch.setattr(engine, "_run", spy)
    x, y = data(300 if batched else 100, (1, 8, 8))
    y = (x.flatten(1) @ torch.randn(64, 10, generator=torch.Generator().manual_seed(5))).argmax(1)  # learnable
    model, a, b = two_inits(make)
    a, b = fitted(model, a, x, y), fitted(model, b, x, y)  # two basins: a bump between them
    lams = np.linspace(0.0, 1.0, 25)
    t = 0.75
    # the path a -> lerp(a, b, t) at lams is the line's points at lam t, as one evaluation per point gives them
    curve = interp.Line(model, a, b, x, y).curve(t, lams)
    ref = per_point(model, a, b, x, y, lams * t)
    np.testing.assert_allclose(curve.loss, ref[0], rtol=1e-6, atol=0)
    assert (curve.loss[0], curve.accuracy[0]) == evaluate(model, a, x, y)
    b_star = curve.loss_barrier
    assert b_star > 0
    for goal in [b_star, np.nextafter(b_star, -np.inf), np.nextafter(b_star, np.inf), 0.0, -1.0, b_star / 2, 2 * b_star]:
        computed.clear()
        assert interp.Line(model, a, b, x, y).barrier_at_most(t, goal, lams) == (b_star <= goal), goal
        assert len(computed) <= 24  # every point but a's (B_t, the path's end, is inside the line)
        if goal < b_star / 2 + 1e-12:  # the middle of the path is above the chord by more than that
            assert len(computed) < 24
    # the naive curve's points serve the paths that share them: at t = 1/2, 13 of 25
    line = interp.Line(model, a, b, x, y)
    line.know(interpolation_curve(model, a, b, x, y, lams))
    computed.clear()
    half = line.curve(0.5, lams)
    assert len(computed) == 12
    np.testing.assert_allclose(half.loss, per_point(model, a, b, x, y, lams / 2)[0], rtol=1e-6, atol=0)
    # a constant path has no barrier, an empty one neither
    assert interp.Line(model, a, a, x, y).barrier_at_most(t, 0.0, lams)
    assert not interp.Line(model, a, b, x, y).barrier_at_most(t, -1e-9, lams)
    assert interp.Line(model, a, b, x, y).barrier_at_most(t, 0.0, [])


def test_a_line_resets_batchnorm_statistics_at_every_point():
    model, a, b = two_inits(lambda: nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(),
                                                  nn.Linear(16, 3)).double())
    xt, yt = data(600, (6,), 3, seed=3, dtype=torch.float64)
    line = interp.Line(model, a, b, xt, yt, bn_data=xt)
    ref = per_point(model, a, b, xt, yt, LAMS * 0.5, bn_data=xt)
    curve = line.curve(0.5, LAMS)
    assert np.array_equal(curve.loss, ref[0]) and np.array_equal(curve.accuracy, ref[1])
    assert line.barrier_at_most(0.5, curve.loss_barrier, LAMS)
    assert not interp.Line(model, a, b, xt, yt, bn_data=xt).barrier_at_most(0.5, np.nextafter(curve.loss_barrier, -1), LAMS)


class _PackedAttention(nn.Module):
    """nn.MultiheadAttention packs q, k and v in one weight: its rows are a composite axis."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(5, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        h = self.inp(x)
        return self.out(self.attn(h, h, h, need_weights=False)[0].mean(1))


@pytest.mark.parametrize("arch", ["mlp", "resnet20ln", "vit", "packed-attention"])
def test_permuted_svds_are_svds_of_the_permuted_weights(monkeypatch, arch):
    from lmc_claims.metrics import spectral
    from lmc_claims.metrics.spectral import layer_svds, permuted_svds, weight_matrices
    from lmc_claims.models.registry import permutation_spec
    from lmc_claims.permutation.derive import derive_spec

    torch.manual_seed(0)
    if arch == "packed-attention":
        model, x = _PackedAttention().double(), torch.randn(2, 4, 5, dtype=torch.float64)
        spec = derive_spec(model, x)
    else:
        shape = (1, 28, 28) if arch == "vit" else (1, 8, 8)
        width = {"mlp": 16, "resnet20ln": 1, "vit": 2}[arch]
        model, x = build_model(arch, shape, 10, width).double(), torch.randn(2, *shape, dtype=torch.float64)
        spec = permutation_spec(arch, model, x)
    params = {k: v.detach().clone() for k, v in model.state_dict().items()}
    perms = random_perms(spec, params, torch.Generator().manual_seed(1))
    moved = {w.name: w.matrix for w in weight_matrices(spec, apply_permutation(spec, perms, params))}
    base = layer_svds(spec, params)
    monkeypatch.setattr(spectral, "layer_svds", lambda *a: pytest.fail("decomposed again"))  # rows and columns move
    derived = permuted_svds(spec, perms, params, base)
    assert [l.name for l in derived] == [l.name for l in base] == list(moved)
    assert any(not torch.equal(l.u, b.u) or not torch.equal(l.v, b.v) for l, b in zip(derived, base))  # vectors moved
    for layer, b in zip(derived, base):
        assert layer.s is b.s  # the singular values are B's, not a decomposition's
        np.testing.assert_allclose(layer.u @ torch.diag(layer.s) @ layer.v.T, moved[layer.name], rtol=0, atol=1e-12)
        eye = torch.eye(layer.rank, dtype=torch.float64)
        np.testing.assert_allclose(layer.u.T @ layer.u, eye, atol=1e-12)
        np.testing.assert_allclose(layer.v.T @ layer.v, eye, atol=1e-12)


def test_an_endpoint_is_evaluated_once_until_it_changes(monkeypatch):
    model, a, b = two_inits(lambda: MLP((6,), 3, width=16, depth=2))
    x, y = data(50, (6,), 3)
    calls, plain = [], evaluation.evaluate
    for where in (evaluation, paths):
        monkeypatch.setattr(where, "evaluate", lambda *args, **kw: calls.append(1) or plain(*args, **kw))
    first = interpolation_curve(model, a, b, x, y, LAMS)
    n = len(calls)
    again = interpolation_curve(model, a, b, x, y, LAMS)  # both ends remembered
    assert n == 2 and len(calls) == n and np.array_equal(first.loss, again.loss)
    with torch.no_grad():
        a["layers.0.weight"].mul_(2)  # changed in place: evaluated again
    changed = interpolation_curve(model, a, b, x, y, LAMS)
    assert len(calls) == n + 1  # a again, b remembered
    assert (changed.loss[0], changed.accuracy[0]) == plain(model, a, x, y)
    with torch.inference_mode():
        c = {k: v.clone() for k, v in a.items()}  # no version counter: never remembered
    interp.endpoint(model, c, x, y), interp.endpoint(model, c, x, y)
    assert len(calls) == n + 3


def test_permuted_svds_decompose_a_matrix_a_permutation_changes_otherwise(monkeypatch):
    from lmc_claims.metrics.spectral import layer_svds, permuted_svds
    from lmc_claims.permutation import apply as apply_module

    model, spec, params = random_mlp(0, width=8)
    perms = random_perms(spec, params, torch.Generator().manual_seed(1))
    plain = apply_module.apply_permutation

    def scaling(spec_, perms_, params_):  # a "permutation" that also scales the first layer's weights
        out = plain(spec_, perms_, params_)
        return {**out, "layers.0.weight": out["layers.0.weight"] * 2}

    monkeypatch.setattr(apply_module, "apply_permutation", scaling)
    derived = {l.name: l for l in permuted_svds(spec, perms, params, layer_svds(spec, params))}
    fresh = {l.name: l for l in layer_svds(spec, scaling(spec, perms, params))}
    w = derived["layers.0.weight"]
    np.testing.assert_allclose(w.u @ torch.diag(w.s) @ w.v.T, fresh["layers.0.weight"].u @ torch.diag(fresh["layers.0.weight"].s)
                               @ fresh["layers.0.weight"].v.T, atol=1e-12)
    assert torch.equal(w.u, fresh["layers.0.weight"].u)  # decomposed afresh, not moved
