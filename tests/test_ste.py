"""STE (Git Re-Basin Algorithm 2) under both published recipes: the proxy moves, a proxy that
cannot move gives weight matching's answer, the gradient passes straight through, the best
permutation is the one of the recorded best step, and everything is seeded."""

import dataclasses
import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from helpers import random_mlp
from lmc_claims.matching.ste import (GIT_REBASIN_RECIPE, ITO_RECIPE, SteConfig, SteRecipe, SteResult,
                                     differing_fraction, ste_matching)
from lmc_claims.errors import LmcClaimsError
from lmc_claims.matching.weight import MatchResult, weight_matching
from lmc_claims.models.registry import build_model, get_architecture
from lmc_claims.permutation import apply_permutation, random_perms


def _pair(width=16, depth=2, n=128, seed=0):
    model, spec, a = random_mlp(seed, width, depth)
    _, _, b = random_mlp(seed + 1, width, depth)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, dtype=torch.float64, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return model, spec, a, b, x, y


def _same(p, q):
    return p.keys() == q.keys() and all(torch.equal(p[k], q[k]) for k in p)


def test_published_recipes():
    assert (ITO_RECIPE.optimizer, ITO_RECIPE.lr, ITO_RECIPE.epochs, ITO_RECIPE.batch_size) == ("adam", 1e-3, 10, 256)
    assert (ITO_RECIPE.weights, ITO_RECIPE.select) == ("random", "last")
    g = GIT_REBASIN_RECIPE
    assert (g.optimizer, g.lr, g.momentum, g.batch_size, g.epochs) == ("sgd", 1e-2, 0.9, 1000, 250)
    assert (g.weights, g.select, g.max_steps) == ("midpoint", "best", None)
    assert SteRecipe.git_rebasin(epochs=20, max_steps=300) == dataclasses.replace(g, epochs=20, max_steps=300)
    assert SteRecipe.ito(epochs=2) == dataclasses.replace(ITO_RECIPE, epochs=2)
    # 60,000 MNIST examples in batches of 1000 for 250 epochs: the paper's 15,000 steps
    assert g.n_steps(60_000) == 15_000
    assert SteRecipe.git_rebasin(max_steps=400).n_steps(60_000) == 400
    assert ITO_RECIPE.n_steps(4000) == 160  # the last, smaller batch of each epoch counts


def test_former_config_name_still_builds_a_recipe():
    cfg = SteConfig(epochs=2, batch_size=256)
    assert cfg == SteRecipe.ito(epochs=2)
    d = dataclasses.asdict(cfg)
    assert d["epochs"] == 2 and d["batch_size"] == 256 and d["weights"] == "random"
    with pytest.raises(ValueError):
        SteRecipe(optimizer="rmsprop")
    with pytest.raises(ValueError):
        SteRecipe(select="median")


def test_result_is_a_match_result_with_curves():
    model, spec, a, b, x, y = _pair()
    res = ste_matching(spec, model, a, b, x, y, SteRecipe.ito(epochs=2, batch_size=48))
    assert isinstance(res, SteResult) and isinstance(res, MatchResult)
    assert res.n_steps == 6  # 128 examples in batches of 48: 3 per epoch
    assert len(res.loss_curve) == len(res.weight_curve) == len(res.moved_curve) == 6
    assert len(res.drift_curve) == 2 and res.drift_curve[-1] == res.drift
    assert all(math.isfinite(v) for v in res.loss_curve)
    assert 0 <= res.best_step < res.n_steps and res.loss_curve[res.best_step] == min(res.loss_curve)
    apply_permutation(spec, res.perms, b)  # valid permutations
    assert _same(res.perms, res.last_perms)


def test_max_steps_stops_early():
    model, spec, a, b, x, y = _pair()
    res = ste_matching(spec, model, a, b, x, y, SteRecipe.git_rebasin(epochs=5, batch_size=32, max_steps=7))
    assert res.n_steps == 7 and len(res.loss_curve) == 7
    assert len(res.drift_curve) == 2  # one full epoch (4 steps) and the partial second


@pytest.mark.parametrize("recipe", [SteRecipe.ito(epochs=2, batch_size=32), SteRecipe.git_rebasin(epochs=2, batch_size=32)])
def test_the_proxy_moves(recipe):
    model, spec, a, b, x, y = _pair()
    res = ste_matching(spec, model, a, b, x, y, recipe)
    assert res.drift > 0
    assert all(d > 0 for d in res.drift_curve)


@pytest.mark.parametrize("recipe", [SteRecipe.ito(epochs=2, batch_size=32, lr=0.0, seed=5),
                                    SteRecipe.git_rebasin(epochs=2, batch_size=32, lr=0.0, seed=5)])
def test_a_proxy_that_cannot_move_gives_weight_matching(recipe):
    # The failure mode to detect: the proxy never leaves A, so every projection is WM of B onto A.
    model, spec, a, b, x, y = _pair()
    wm = weight_matching(spec, a, b, seed=recipe.seed).perms
    assert differing_fraction(wm, {p: torch.arange(len(v)) for p, v in wm.items()}) > 0  # a non-trivial WM
    res = ste_matching(spec, model, a, b, x, y, recipe)
    assert res.drift == 0 and all(d == 0 for d in res.drift_curve)
    assert res.moved_curve == [0] * res.n_steps
    assert _same(res.perms, wm) and _same(res.initial_perms, wm)
    assert differing_fraction(res.perms, res.initial_perms) == 0


def test_the_loss_is_taken_at_the_combination_with_the_projection():
    model, spec, a, b, x, y = _pair()
    recipe = SteRecipe.ito(epochs=1, batch_size=len(x))  # one full batch
    res = ste_matching(spec, model, a, b, x, y, recipe)
    w_b = res.weight_curve[0]
    b_hat = apply_permutation(spec, res.initial_perms, b)
    mixed = {k: (1 - w_b) * a[k] + w_b * b_hat[k] for k in a}
    expected = nn.functional.cross_entropy(functional_call(model, mixed, (x,)), y)
    assert res.loss_curve[0] == pytest.approx(float(expected), rel=1e-10)


def test_the_gradient_passes_straight_through_to_the_proxy():
    # One plain SGD step at the midpoint: theta_tilde - theta_A = -lr * 1/2 * dL/dtheta(midpoint).
    model, spec, a, b, x, y = _pair()
    lr = 0.05
    recipe = SteRecipe.git_rebasin(epochs=1, batch_size=len(x), lr=lr, momentum=0.0)
    res = ste_matching(spec, model, a, b, x, y, recipe)
    b_hat = apply_permutation(spec, res.initial_perms, b)
    mid = {k: (0.5 * (a[k] + b_hat[k])).requires_grad_() for k in a}
    nn.functional.cross_entropy(functional_call(model, mid, (x,)), y).backward()
    permuted = [k for k, axes in spec.axes_to_perm.items() if any(axes)]  # drift is over these
    assert "layers.2.bias" not in permuted
    step = math.sqrt(sum(float((lr * 0.5 * mid[k].grad).pow(2).sum()) for k in permuted))
    norm_a = math.sqrt(sum(float(a[k].pow(2).sum()) for k in permuted))
    assert res.drift == pytest.approx(step / norm_a, rel=1e-9)


def _moving_run(select):
    # A large step size makes the projection change along the way.
    model, spec, a, b, x, y = _pair(width=16, depth=2, n=96)
    recipe = SteRecipe(optimizer="adam", lr=0.05, epochs=6, batch_size=16, weights="midpoint", select=select, seed=3)
    return (model, spec, a, b, x, y), recipe, ste_matching(spec, model, a, b, x, y, recipe)


def test_best_mode_returns_the_permutation_of_the_best_step():
    (model, spec, a, b, x, y), recipe, res = _moving_run("best")
    assert sum(res.moved_curve) > 0  # the projection changed during the run
    losses = res.loss_curve
    assert res.best_step == losses.index(min(losses)) and res.best_loss == min(losses)
    assert _same(res.perms, res.best_perms)
    # Rerun up to the best step and take its last permutation: the same one.
    upto = ste_matching(spec, model, a, b, x, y, dataclasses.replace(recipe, max_steps=res.best_step + 1, select="last"))
    assert upto.loss_curve == losses[: res.best_step + 1]
    assert _same(upto.perms, res.perms)
    # ... and differs from the last one: the projection moved after the best step
    assert res.best_step < res.n_steps - 1 and sum(res.moved_curve[res.best_step + 1 :]) > 0
    assert not _same(res.best_perms, res.last_perms)


def test_last_mode_returns_the_last_permutation():
    _, _, res = _moving_run("last")
    assert _same(res.perms, res.last_perms)


def test_seeded_and_deterministic():
    model, spec, a, b, x, y = _pair()
    recipe = SteRecipe.ito(epochs=2, batch_size=32, seed=11)
    r1 = ste_matching(spec, model, a, b, x, y, recipe)
    r2 = ste_matching(spec, model, a, b, x, y, recipe)
    assert r1.loss_curve == r2.loss_curve and r1.weight_curve == r2.weight_curve and r1.drift == r2.drift
    assert _same(r1.perms, r2.perms)
    r3 = ste_matching(spec, model, a, b, x, y, dataclasses.replace(recipe, seed=12))
    assert r3.weight_curve != r1.weight_curve and r3.loss_curve != r1.loss_curve


def test_combination_weights_are_redrawn_each_batch():
    model, spec, a, b, x, y = _pair()
    res = ste_matching(spec, model, a, b, x, y, SteRecipe.ito(epochs=2, batch_size=16))
    w = res.weight_curve
    assert len(set(w)) == len(w) == 16  # a fresh draw per batch
    assert all(0 < v < 1 for v in w)
    mid = ste_matching(spec, model, a, b, x, y, SteRecipe.git_rebasin(epochs=1, batch_size=16))
    assert mid.weight_curve == [0.5] * 8


def test_inputs_are_left_untouched():
    torch.manual_seed(0)
    model = build_model("resnet20", (1, 8, 8), 3, 1).double()
    spec = get_architecture("resnet20").spec(model)
    a = {k: v.detach().clone() for k, v in model.state_dict().items()}
    b = apply_permutation(spec, random_perms(spec, a, torch.Generator().manual_seed(1)), a)
    before = {k: v.clone() for k, v in {**{f"a.{k}": v for k, v in a.items()}, **{f"b.{k}": v for k, v in b.items()}}.items()}
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 1, 8, 8, dtype=torch.float64, generator=g)
    y = torch.randint(0, 3, (48,), generator=g)
    res = ste_matching(spec, model, a, b, x, y, SteRecipe.ito(epochs=1, batch_size=16))
    assert res.n_steps == 3 and res.drift > 0
    after = {**{f"a.{k}": v for k, v in a.items()}, **{f"b.{k}": v for k, v in b.items()}}
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN counters and statistics too


def test_resnet20ln_runs():
    torch.manual_seed(0)
    model = build_model("resnet20ln", (1, 8, 8), 3, 1).double()
    spec = get_architecture("resnet20ln").spec(model)
    a = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.manual_seed(1)
    b = {k: v.detach().clone() for k, v in build_model("resnet20ln", (1, 8, 8), 3, 1).double().state_dict().items()}
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 8, 8, dtype=torch.float64, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    res = ste_matching(spec, model, a, b, x, y, SteRecipe.git_rebasin(epochs=2, batch_size=32))
    assert res.n_steps == 4 and res.drift > 0
    apply_permutation(spec, res.perms, b)


def test_a_diverging_run_stops_with_a_clear_error():
    model, spec, a, b, x, y = _pair()
    with pytest.raises(LmcClaimsError, match="STE diverged"):
        ste_matching(spec, model, a, b, x, y, SteRecipe.git_rebasin(epochs=3, batch_size=32, lr=1e308))


def test_differing_fraction():
    p = {"P_0": torch.arange(4), "P_1": torch.arange(6)}
    assert differing_fraction(p, p) == 0.0
    q = {"P_0": torch.tensor([1, 0, 2, 3]), "P_1": torch.arange(6)}
    assert differing_fraction(p, q) == pytest.approx(2 / 10)
    with pytest.raises(ValueError):
        differing_fraction(p, {"P_0": torch.arange(4)})


def test_ste_searches_run_together_give_what_each_gives_alone(tmp_path):
    """Lab.searches runs a measurement's STE searches several at once on a CPU (threads, one
    intra-op thread each, each on its own copy of the template): every result must be bitwise the
    one the search gives on its own in a fresh process state."""
    from lmc_claims.lab import Lab
    from lmc_claims.scales import get_scale
    from lmc_claims.zoo import Zoo

    wanted = [("ste", 0, 1), ("ste-gr", 0, 1), ("ste", 2, 3), ("wm", 0, 1)]
    together = Lab(get_scale("smoke"), torch.device("cpu"), Zoo(tmp_path / "together")).setting("mlp", "mnist5k", 16)
    together.prefetch(wanted)
    for method, a, b in wanted:
        alone = Lab(get_scale("smoke"), torch.device("cpu"), Zoo(tmp_path / f"alone-{method}-{a}")).setting(
            "mlp", "mnist5k", 16)
        got, want = together.match(method, a, b), alone.match(method, a, b)
        assert all(torch.equal(got[p], want[p]) for p in want), (method, a, b)
        if method.startswith("ste"):
            curves = [s.diagnostics(method, a, b)["loss_curve"] for s in (together, alone)]
            assert torch.equal(*curves) and len(curves[0]) > 0
