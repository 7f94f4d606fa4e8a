"""Element-wise combinations of two models and perturbed matchings (Csiszárik, Kiss,
Kőrösi-Szabó, Muntag, Papp, Varga 2023, arXiv 2308.11511): pure functions of parameters.

For two permutation-aligned models A and pi(B) and a coefficient vector c in [0, 1]^d,

    theta_c = c * theta_A + (1 - c) * pi(theta_B)        (element-wise),

over the parameters the permutation spec names; every other tensor (e.g. BatchNorm counters)
comes from A, and BatchNorm statistics are reset on training data when the net has BatchNorm.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from ..permutation.apply import Params, Perms
from ..permutation.spec import PermutationSpec
from .interpolation import reset_bn_stats

# How c is drawn. uniform: the hypercube [0, 1]^d, one value per weight; bernoulli: its
# corners, each weight from A or from B with probability 1/2; neuron: one value per unit
# (output row / channel) of a layer, shared by the unit's weights, bias and norm parameters;
# layer: one value per layer (module), shared by all of its parameters.
SCHEMES = ("uniform", "bernoulli", "neuron", "layer")


# -- coefficients and combinations ----------------------------------------------------

def _module(name: str) -> str:
    """The layer a parameter belongs to: 'layers.0.weight' -> 'layers.0'."""
    return name.rsplit(".", 1)[0]


def _per_weight(scheme: str, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    return u if scheme == "uniform" else (u < 0.5).double()


def coefficients(spec: PermutationSpec, params: Params, scheme: str, generator: torch.Generator) -> Params:
    """A coefficient tensor in [0, 1] for every parameter the spec names (its shape, dtype, device).

    Draws happen on the CPU generator in the spec's order, so a seed gives the same c on every device."""
    shared: dict[str, torch.Tensor] = {}  # one draw per layer (or per unit of a layer), shared by its tensors
    out = {}
    for name in spec.axes_to_perm:
        p = params[name]
        if scheme in ("uniform", "bernoulli"):
            c = _per_weight(scheme, p.shape, generator)
        elif scheme in ("neuron", "layer"):
            layer = _module(name)
            if layer not in shared:  # drawn once per layer, in the spec's order
                size = (p.shape[0],) if scheme == "neuron" else ()
                shared[layer] = torch.rand(size, generator=generator, dtype=torch.float64)
            c = shared[layer].view(-1, *([1] * (p.dim() - 1))) if scheme == "neuron" else shared[layer]
            c = c.expand(p.shape)
        else:
            raise ValueError(f"unknown coefficient scheme {scheme!r}; use one of {SCHEMES}")
        out[name] = c.to(device=p.device, dtype=p.dtype)
    return out


def constant_coefficients(spec: PermutationSpec, params: Params, value: float) -> Params:
    """c = value everywhere: the straight line's point lam = 1 - value (lam = 0 is A)."""
    return {name: torch.full_like(params[name], value) for name in spec.axes_to_perm}


def combine(a: Params, b: Params, c: Params) -> Params:
    """theta_c = c * a + (1 - c) * b for the tensors c covers; every other tensor from a.

    Written as a sum of products (not b + c (a - b)) so that c = 1 gives a and c = 0 gives b exactly."""
    return {k: c[k] * a[k] + (1 - c[k]) * b[k] if k in c else a[k] for k in a}


# -- perturbed matchings ------------------------------------------------------------

def perturb(perm: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """The permutation with round(fraction * n) of its matched pairs broken.

    The chosen units' partners are rotated along a random cycle (for two units, a swap), so
    every chosen unit gets another chosen unit's partner: exactly k units move when k >= 2
    (one unit alone cannot move and is left as it is)."""
    n = perm.numel()
    k = int(round(fraction * n))
    out = perm.clone()
    if k < 2:
        return out
    chosen = torch.randperm(n, generator=generator)[:k].to(perm.device)
    out[chosen] = perm[chosen.roll(1)]
    return out


def perturb_perms(perms: Perms, fraction: float, generator: torch.Generator,
                  spec: PermutationSpec | None = None) -> Perms:
    """Every permutation perturbed by the same fraction (in a fixed order, for reproducibility).
    A block-structured permutation of the spec (attention heads: `PermutationSpec.blocks`) is
    perturbed inside each block, the blocks' own assignment kept: a unit moved across heads
    would not be a symmetry of the network, so the perturbed model would compute another function."""
    blocks = spec.blocks if spec is not None else {}
    out = {}
    for p in sorted(perms):
        if p in blocks:
            _, n, b = blocks[p]
            rows = perms[p].reshape(n, b)
            out[p] = torch.stack([perturb(row, fraction, generator) for row in rows]).reshape(-1)
        else:
            out[p] = perturb(perms[p], fraction, generator)
    return out


def moved_fraction(before: Perms, after: Perms) -> float:
    """Fraction of all units (over every permutation) whose partner changed."""
    moved = sum(int((before[p] != after[p]).sum()) for p in before)
    return moved / sum(before[p].numel() for p in before)


# -- predictions ------------------------------------------------------------------------

@torch.no_grad()
def outputs(model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, batch: int = 1000):
    """Mean cross-entropy, accuracy and the predicted class of every example."""
    model.eval()
    loss, preds = 0.0, []
    for i in range(0, len(x), batch):
        out = functional_call(model, params, (x[i : i + batch],))
        loss += nn.functional.cross_entropy(out, y[i : i + batch], reduction="sum").item()
        preds.append(out.argmax(1))
    pred = torch.cat(preds)
    return loss / len(x), (pred == y).double().mean().item(), pred


def disagreement(p: torch.Tensor, q: torch.Tensor) -> float:
    """Fraction of examples on which two models predict different classes."""
    return (p != q).double().mean().item()


def prepared(model: nn.Module, params: Params, bn_data: torch.Tensor | None) -> Params:
    """Combined weights match neither endpoint's BatchNorm statistics: reset them (Git Re-Basin / REPAIR)."""
    return params if bn_data is None else reset_bn_stats(model, params, bn_data)
