"""Straight-through estimator (STE; Git Re-Basin, Ainsworth et al. 2023, Algorithm 2).

A proxy theta_tilde, initialised at theta_A, is trained. Each batch, theta_hat = proj(theta_tilde)
is the weight-matching permutation of B onto the proxy (warm-started from the previous batch's
permutation); the loss is taken at a convex combination w_A theta_A + w_B theta_STE, where
theta_STE = stop_grad(theta_hat) + (theta_tilde - stop_grad(theta_tilde)) has theta_hat's value
and passes the gradient straight through to the proxy.

Two published recipes differ in everything but that loop, so both are expressible:

* `GIT_REBASIN_RECIPE` (samuela/git-re-basin src/mnist_mlp_ste2.py): SGD lr 1e-2 momentum 0.9,
  batch 1000, 250 epochs, loss at the fixed midpoint (w_A = w_B = 1/2), returns the permutation
  of the step with the lowest batch loss.
* `ITO_RECIPE` (Ito et al.'s e5-a/STE-MM, configs/rebasin/method/ste.yaml and
  srcs/search/mult/ste.py): Adam lr 1e-3, batch 256, 10 epochs, weights rand(2) normalised to
  sum 1, redrawn each batch (`mid: False`), returns the last permutation.

Per run the result records the batch-loss curve, the combination weights, how many units each
step's projection reassigned, and how far the proxy moved from theta_A (relative drift). A proxy
that never leaves theta_A (lr 0, or an optimiser that cannot move it) keeps projecting to
weight matching's answer; `SteResult.initial_perms` is that answer, so
`differing_fraction(result.perms, result.initial_perms) == 0` exposes the failure.

Cost per step: one warm-started `weight_matching` call, one forward/backward pass, and
re-permuting B only when the projection changed. The warm start keeps B under the current
projection and searches from the identity: the same search as `init=perms` on B, without
re-permuting B's columns and re-evaluating the objective in every call. On a CPU the search's
float64 cost matrices and assignment solves are most of a step (for a 784-512-512-512-10 MLP,
batch 256). Parameters are moved to the data's device once, not per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import functional_call

from ..errors import LmcClaimsError
from ..permutation.apply import Params, Perms, compose, permute_param
from ..permutation.spec import PermutationSpec
from ..recipes import GIT_REBASIN_RECIPE, ITO_RECIPE, SteConfig, SteRecipe  # noqa: F401  (the recipes live with the configuration)
from .weight import MatchResult, check_compatible, weight_matching

@dataclass
class SteResult(MatchResult):
    """An STE run. `perms` is the permutation the recipe selects (use it like MatchResult's)."""

    recipe: SteRecipe | None = None
    loss_curve: list[float] = field(default_factory=list)  # batch loss at each step
    weight_curve: list[float] = field(default_factory=list)  # weight on the projected B at each step
    moved_curve: list[int] = field(default_factory=list)  # units the step's projection reassigned
    drift: float = 0.0  # ||theta_tilde - theta_A|| / ||theta_A|| over the permuted parameters, at the end
    drift_curve: list[float] = field(default_factory=list)  # the same after each epoch
    best_step: int = -1  # step (0-based) with the lowest batch loss; -1 without steps
    best_loss: float = math.inf
    n_steps: int = 0
    initial_perms: Perms = field(default_factory=dict)  # step 0's projection: WM of B onto A
    last_perms: Perms = field(default_factory=dict)
    best_perms: Perms = field(default_factory=dict)


def differing_fraction(perms_a: Perms, perms_b: Perms) -> float:
    """Fraction of units, over all permutations, assigned differently by the two."""
    if perms_a.keys() != perms_b.keys():
        raise ValueError(f"different permutations: {sorted(perms_a)} vs {sorted(perms_b)}")
    total = sum(p.numel() for p in perms_a.values())
    if total == 0:
        return 0.0
    differ = sum(int((perms_a[k].cpu() != perms_b[k].cpu()).sum()) for k in perms_a)
    return differ / total


def ste_matching(
    spec: PermutationSpec,
    model: nn.Module,
    a: Params,
    b: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: SteRecipe = ITO_RECIPE,
) -> SteResult:
    """Permutation of B's units found by training a proxy of A with the straight-through
    estimator under `recipe`. With lr 0 the proxy stays at A and the result is
    `weight_matching(spec, a, b, seed=recipe.seed)`."""
    check_compatible(spec, a, b)
    device = x.device
    a = {k: v.detach().to(device) for k, v in a.items()}
    b = {k: v.detach().to(device) for k, v in b.items()}
    param_names = {n for n, _ in model.named_parameters()}
    # The proxy: every floating-point parameter the spec names. Buffers (BN statistics) stay at A
    # in the proxy, as in both published loops (nothing updates them).
    trained = [k for k in spec.axes_to_perm if k in param_names and a[k].is_floating_point()]
    tilde = {k: a[k].clone().requires_grad_(True) for k in trained}
    # Parameters the drift is measured on: those some permutation acts on (on a plain or a
    # composite axis).
    composite = getattr(spec, "composite_axes", {})
    permuted = [k for k in trained if any(p is not None for p in spec.axes_to_perm[k]) or k in composite]
    a_norm = math.sqrt(sum(float(a[k].double().pow(2).sum()) for k in permuted)) or 1.0

    def drift() -> float:
        with torch.no_grad():
            return math.sqrt(sum(float((tilde[k] - a[k]).double().pow(2).sum()) for k in permuted)) / a_norm

    # Keys of the combined model that depend on the projection (spec'd floats), those that do not
    # (other floats: w_A a + w_B b), and integer buffers (A's, copied: BN counters are updated in place).
    floats = [k for k in a if a[k].is_floating_point()]
    projected = [k for k in floats if k in spec.axes_to_perm]
    fixed = [k for k in floats if k not in spec.axes_to_perm]
    ints = {k: a[k].clone() for k in a if not a[k].is_floating_point()}
    wm_a = dict(a)  # the proxy as weight matching sees it: trained keys replaced each step

    params = list(tilde.values())
    if recipe.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=recipe.lr)
    else:
        opt = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum)

    gen = torch.Generator().manual_seed(recipe.seed)
    result = SteResult({}, recipe=recipe)
    perms: Perms | None = None
    wm_b = dict(b)  # B under the current projection
    ident = {p: torch.arange(n, device=device) for p, n in spec.perm_sizes(a).items()}
    total = recipe.n_steps(len(x))
    step = 0
    model.train()
    for _epoch in range(recipe.epochs):
        if step >= total:
            break
        order = torch.randperm(len(x), generator=gen).to(device)
        for i in range(0, len(x), recipe.batch_size):
            if step >= total:
                break
            batch = order[i : i + recipe.batch_size]
            for k in trained:
                wm_a[k] = tilde[k].detach()
            # Warm start: B already under the current projection, searched from the identity
            # (the same search as `init=perms` on B, without re-permuting B's columns and
            # re-evaluating the objective at the start of every call).
            rel = weight_matching(spec, wm_a, wm_b, seed=recipe.seed + step, max_sweeps=recipe.wm_max_sweeps).perms
            moved = sum(int((rel[p] != ident[p]).sum()) for p in rel)
            if perms is None or moved:
                perms = rel if perms is None else compose(perms, rel)
                for k in spec.axes_to_perm:
                    wm_b[k] = permute_param(spec, perms, k, b[k])
            if step == 0:
                result.initial_perms, moved = perms, 0  # step 0's projection starts from the identity
            if recipe.weights == "random":
                r = torch.rand(2, generator=gen, dtype=torch.float64)
                w_a, w_b = (r / r.sum()).tolist()
            else:
                w_a = w_b = 0.5
            mixed = dict(ints)
            for k in projected:
                v = tilde.get(k)
                ste = wm_b[k] if v is None else wm_b[k] + (v - v.detach())
                mixed[k] = w_a * a[k] + w_b * ste
            for k in fixed:
                mixed[k] = w_a * a[k] + w_b * b[k]
            loss = nn.functional.cross_entropy(functional_call(model, mixed, (x[batch],)), y[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = float(loss.detach())
            # Git Re-Basin's loop stops on a non-finite loss; the loss is taken at the projection,
            # so a diverging proxy shows in the proxy itself (a sum overflows with it).
            if not (math.isfinite(value) and bool(torch.stack([v.detach().sum() for v in params]).isfinite().all())):
                raise LmcClaimsError(f"STE diverged at step {step}: the batch loss ({value}) or the proxy is not finite.",
                                     "lower the recipe's learning rate.")
            result.loss_curve.append(value)
            result.weight_curve.append(w_b)
            result.moved_curve.append(moved)
            if value < result.best_loss:  # strict: the first step reaching the minimum
                result.best_loss, result.best_step, result.best_perms = value, step, perms
            step += 1
        result.drift_curve.append(drift())
    result.n_steps = step
    result.drift = drift()
    if perms is None:  # no steps at all: the proxy is A
        perms = weight_matching(spec, a, b, seed=recipe.seed, max_sweeps=recipe.wm_max_sweeps).perms
        result.initial_perms = result.best_perms = perms
    result.last_perms = perms
    result.perms = result.best_perms if recipe.select == "best" else result.last_perms
    return result
