"""Checks that a permutation spec is an exact symmetry of a model, that weight matching recovers a
planted permutation, and that permutations keep singular values, with tolerances stated per dtype;
and how much of a model a spec permutes."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from ..permutation.apply import Params, Perms, apply_permutation, identity_perms, random_perms
from ..permutation.spec import PermutationSpec

# Largest output difference, relative to the output's scale, that counts as equal: a few hundred
# ulps of accumulated rounding (sums reordered by the permutation), per dtype.
TOLERANCES = {torch.float64: 1e-9, torch.float32: 1e-4, torch.bfloat16: 5e-2, torch.float16: 5e-3}


def spec_of(model: nn.Module, example: torch.Tensor) -> PermutationSpec:
    """The model's own spec (`model.permutation_spec()`, when it has one), else the one derived from
    its graph on this example input (`permutation/derive`)."""
    own = getattr(model, "permutation_spec", None)
    if callable(own):
        return own()
    from ..permutation.derive import derive_spec

    return derive_spec(model, example)


class SymmetryError(AssertionError):
    """A spec that is not a symmetry of its model: which permutation, which parameters, how far."""


@dataclass(frozen=True)
class Difference:
    perm: str  # the permutation that changes the outputs ("" when only several together do)
    params: tuple[str, ...]  # the parameters it acts on
    mode: str  # "eval" or "train"
    size: float  # the largest output difference, relative to the output's scale
    tolerance: float

    def message(self) -> str:
        where = (f"permutation {self.perm!r} (acting on {', '.join(self.params[:6])}"
                 f"{', ...' if len(self.params) > 6 else ''})" if self.perm else "the permutations together")
        return (f"The permutation spec is not a symmetry of the model: {where} changes its {self.mode}-mode outputs "
                f"by {self.size:.3g} (relative; tolerance {self.tolerance:g}). Every claim measured with this spec "
                "would rest on a network that permuting changes. Fix the spec's entries for those parameters "
                "(axis order is (out, in) in torch), or let lmc-claims derive the spec from the model's graph.")


def _state(model: nn.Module) -> Params:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _outputs(model: nn.Module, params: Params, x: torch.Tensor, mode: str) -> torch.Tensor:
    model.train(mode == "train")
    with torch.random.fork_rng(devices=[]), torch.no_grad():  # the caller's generator state is kept
        torch.manual_seed(0)  # dropout draws the same mask for both (a symmetry in distribution only)
        out = functional_call(model, params, (x,))
    return out[0] if isinstance(out, (tuple, list)) else out


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = max(float(a.abs().max()), 1e-12)
    return float((a - b).abs().max()) / scale


def _acts_on(spec: PermutationSpec, perm: str) -> tuple[str, ...]:
    direct = [f"{p} axis {ax}" for p, ax in spec.perm_to_axes.get(perm, ())]
    composite = [f"{p} axis {ax} (segment)" for p, ax, *_ in spec.composite_axes_of(perm)]
    return tuple(direct + composite)


def check_symmetry(model: nn.Module, example: torch.Tensor, spec: PermutationSpec | None = None,
                   perms: Perms | None = None, seed: int = 0, modes=("eval", "train")) -> list[Difference]:
    """The differences `perms` (default: random ones drawn from `seed`) make to the model's outputs,
    in eval and train mode, beyond the dtype's tolerance; [] when the spec is a symmetry. A failing
    draw is narrowed down to the single permutation that changes the outputs, where one does."""
    model = copy.deepcopy(model)
    spec = spec if spec is not None else spec_of(model, example)
    params = _state(model)
    perms = perms if perms is not None else random_perms(spec, params, torch.Generator().manual_seed(seed))
    tol = TOLERANCES.get(example.dtype if example.is_floating_point() else next(iter(params.values())).dtype, 1e-4)
    found = []
    for mode in modes:
        base = _outputs(model, params, example, mode)
        size = _relative(base, _outputs(model, apply_permutation(spec, perms, params), example, mode))
        if size <= tol:
            continue
        ident = identity_perms(spec, params)
        culprits = []
        for p in perms:  # one permutation at a time, the others left as they are
            alone = _relative(base, _outputs(model, apply_permutation(spec, {**ident, p: perms[p]}, params), example, mode))
            if alone > tol:
                culprits.append(Difference(p, _acts_on(spec, p), mode, alone, tol))
        found += culprits or [Difference("", (), mode, size, tol)]
    return found


def assert_symmetry(model: nn.Module, example: torch.Tensor, spec: PermutationSpec | None = None, *,
                    draws: int = 5, seed: int = 0) -> PermutationSpec:
    """Assert that permuting the model by its spec (derived when not given) keeps its outputs, in
    eval and train mode, for `draws` random permutations; returns the spec."""
    spec = spec if spec is not None else spec_of(model, example)
    for k in range(draws):
        found = check_symmetry(model, example, spec, seed=seed + k)
        if found:
            raise SymmetryError(found[0].message())
    return spec


def recovery_difference(spec: PermutationSpec, params: Params, planted: Perms, seed: int = 0) -> float:
    """The largest weight difference, relative to the weights' scale, after weight matching brings a
    copy of `params` permuted by `planted` back onto `params` (0: recovered exactly)."""
    from ..matching.weight import weight_matching

    moved = apply_permutation(spec, planted, params)
    back = apply_permutation(spec, weight_matching(spec, params, moved, seed=seed).perms, moved)
    floats = [k for k in params if params[k].is_floating_point()]
    scale = max(max(float(params[k].abs().max()) for k in floats), 1e-300)
    return max(float((back[k] - params[k]).abs().max()) for k in floats) / scale


def sv_change(a: Params, b: Params) -> float:
    """The largest relative change of any weight's singular values from `a` to `b`, each weight taken
    as a matrix of (output units) x (everything else), as a permutation moves its rows and columns."""
    from ..metrics.spectral import singular_values

    worst = 0.0
    for k, w in a.items():
        if w.ndim >= 2 and w.is_floating_point():
            s, t = (singular_values(m.reshape(m.shape[0], -1)) for m in (w, b[k]))
            worst = max(worst, float((s - t).abs().max() / max(float(s.max()), 1e-300)))
    return worst


def assert_recovers_planted_permutation(model: nn.Module, example: torch.Tensor, spec: PermutationSpec | None = None,
                                        seed: int = 0) -> None:
    """Weight matching of a permuted copy of the model onto the model finds the inverse of the
    planted permutation: the copy is brought back to the model's exact weights."""
    spec = spec if spec is not None else spec_of(model, example)
    params = _state(model)
    size = recovery_difference(spec, params, random_perms(spec, params, torch.Generator().manual_seed(seed)), seed)
    if size > 0:
        raise SymmetryError(f"Weight matching did not recover a planted permutation: after matching the model's "
                            f"permuted copy back, its weights differ from the model's by {size:.3g} (relative).")


def assert_keeps_singular_values(model: nn.Module, example: torch.Tensor, spec: PermutationSpec | None = None,
                                 seed: int = 0) -> float:
    """Every weight matrix's singular values are the same after a permutation (Ito et al. 2024, Eq. 3),
    within eps * n * s_max of float64 (the SVD's precision); returns the largest relative change."""
    spec = spec if spec is not None else spec_of(model, example)
    params = _state(model)
    moved = apply_permutation(spec, random_perms(spec, params, torch.Generator().manual_seed(seed)), params)
    worst = sv_change(params, moved)
    tol = torch.finfo(torch.float64).eps * max(max(w.shape[0], w[0].numel()) for w in params.values()
                                               if w.ndim >= 2) * 100
    if worst > tol:
        raise SymmetryError(f"Permuting changed the singular values by {worst:.3g} (relative; tolerance {tol:.3g}).")
    return worst


def spec_coverage(spec: PermutationSpec, params: Params) -> tuple[float, list[str]]:
    """(share of the hidden units the spec permutes, the weights whose units stay fixed). Each weight
    but the network's last (in state-dict order) holds one axis of hidden units: the first it
    permutes (axis 0, the output units, for torch.nn layers; axis 1 for a written-out x @ W), or,
    when it permutes none, its axis 0, counted as fixed."""
    weights = [k for k, v in params.items() if v.ndim >= 2 and v.is_floating_point()]
    total = moved = 0
    fixed = []
    for k in weights[:-1]:
        axes = list(spec.axes_to_perm.get(k, (None,) * params[k].ndim))
        for ax in spec.composite_axes.get(k, {}):
            axes[ax] = "composite"
        permuted = [ax for ax, p in enumerate(axes) if p is not None]
        n = params[k].shape[permuted[0] if permuted else 0]
        total += n
        if permuted:
            moved += n
        else:
            fixed.append(k)
    return (moved / total if total else 0.0), fixed
