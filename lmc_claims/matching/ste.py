"""Straight-through estimator (STE; Git Re-Basin, Ainsworth et al. 2023, Algorithm 2).

A proxy theta_tilde (initialised to theta_A) is trained. Its forward pass uses
theta_hat = proj(theta_tilde) = WM permutation of B onto theta_tilde; the loss is that of
the midpoint (theta_A + theta_hat) / 2 (the fixed lam = 1/2 variant), and the gradient
with respect to theta_hat is passed straight through to theta_tilde.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from ..permutation.apply import Params, apply_permutation, identity_perms
from ..permutation.spec import PermutationSpec
from .weight import MatchResult, check_compatible, weight_matching


@dataclass(frozen=True)
class SteConfig:
    epochs: int = 2
    batch_size: int = 256
    lr: float = 1e-3  # Adam
    seed: int = 0


def ste_matching(
    spec: PermutationSpec,
    model: nn.Module,
    a: Params,
    b: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    config: SteConfig = SteConfig(),
) -> MatchResult:
    check_compatible(spec, a, b)
    device = x.device
    a = {k: v.to(device) for k, v in a.items()}
    b = {k: v.to(device) for k, v in b.items()}
    tilde = {k: v.clone().requires_grad_(k in spec.axes_to_perm) for k, v in a.items()}
    opt = torch.optim.Adam([v for k, v in tilde.items() if k in spec.axes_to_perm], lr=config.lr)
    order = torch.Generator().manual_seed(config.seed)
    perms = identity_perms(spec, a)
    model.train()
    for epoch in range(config.epochs):
        idx = torch.randperm(len(x), generator=order).to(device)
        for i in range(0, len(x), config.batch_size):
            batch = idx[i : i + config.batch_size]
            detached = {k: v.detach() for k, v in tilde.items()}
            # Warm start from the previous projection: one or two sweeps suffice.
            perms = weight_matching(spec, detached, b, init=perms, seed=config.seed).perms
            b_hat = apply_permutation(spec, perms, b)
            mid = {}
            for k, v in tilde.items():
                if k in spec.axes_to_perm:
                    straight = v + (b_hat[k] - v).detach()
                    mid[k] = 0.5 * (a[k] + straight)
                else:
                    mid[k] = a[k]
            loss = nn.functional.cross_entropy(functional_call(model, mid, (x[batch],)), y[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    detached = {k: v.detach() for k, v in tilde.items()}
    return weight_matching(spec, detached, b, init=perms, seed=config.seed)
