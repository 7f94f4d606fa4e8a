"""Activation matching (AM; Git Re-Basin, Ainsworth et al. 2023, §3.1).

For each permutation P, AM solves one linear assignment that maximises the summed correlation
between model A's and model B's features on P's units over training data. As in Git Re-Basin's
code (src/mnist_mlp_activation_matching.py, src/cifar10_vgg_activation_matching.py), the
features are post-activation: relu(Dense(x)) for an MLP, relu(norm(conv(x))) for a conv net.

They are read where the next layer reads them: the input of P's *consumers*, the Linear/Conv2d
layers whose weight has P on axis 1 (a forward pre-hook), which is the post-activation, post-norm
(and, where a pooling sits in between, post-pooling) feature, without knowing where functional
activations sit in forward(). Channels are dim 1 of conv maps and the last dim of (N, ..., C)
features; every position of a map is one more sample of its channels. Where P sits on a
composite input axis (`PermutationSpec.composite_axes`: a (C, H, W) map flattened before a
Linear gives C blocks of H*W entries; concatenated channels give one segment per operand), its
segment of the input is read as (N, C, block) and each channel's block of entries is more
samples of that channel.

A residual stream has several consumers (each block's first conv, the next stage's conv and
shortcut): their correlations are summed, a tensor read by two consumers counting once. Only a
permutation without any consumer Linear/Conv2d falls back to its producers' outputs (weight with
P on axis 0): pre-activation, the best available there.

Statistics are accumulated batch by batch (means, second moments, cross moments, in float64),
so memory is one batch of features, not the data set's.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from ..permutation.apply import Params, Perms
from ..permutation.spec import PermutationSpec
from .lap import solve_lap
from .weight import MatchResult, check_compatible

LAYERS = (nn.Linear, nn.Conv2d)
STATISTICS = ("correlation", "inner")


Site = tuple  # (module name, offset, block): where a permutation's units sit in a layer's channels


def _layer_sites(spec: PermutationSpec, model: nn.Module, axis: int) -> dict[str, list[Site]]:
    """For each permutation, the Linear/Conv2d layers whose weight it permutes on `axis` (0:
    output channels, 1: input channels), with where its units sit along those channels: a
    plain axis is (offset 0, block 1); a composite axis (spec.composite_axes, e.g. a feature map
    flattened before a Linear, or channels concatenated) gives each segment's offset and block."""
    modules = dict(model.named_modules())
    composite = getattr(spec, "composite_axes", {})
    out: dict[str, list[Site]] = {}
    for param, perms in spec.axes_to_perm.items():
        module_name, _, leaf = param.rpartition(".")
        if leaf != "weight" or len(perms) < 2 or not isinstance(modules.get(module_name), LAYERS):
            continue
        if perms[axis] is not None:
            out.setdefault(perms[axis], []).append((module_name, 0, 1))
        offset = 0
        for p, units, block in composite.get(param, {}).get(axis, ()):
            if p is not None:
                out.setdefault(p, []).append((module_name, offset, block))
            offset += units * block
    return out


def producers(spec: PermutationSpec, model: nn.Module) -> dict[str, list[str]]:
    """Linear/Conv2d module names whose output channels each permutation acts on."""
    return {p: [n for n, _, _ in v] for p, v in _layer_sites(spec, model, 0).items()}


def consumers(spec: PermutationSpec, model: nn.Module) -> dict[str, list[str]]:
    """Linear/Conv2d module names whose input channels each permutation acts on."""
    return {p: [n for n, _, _ in v] for p, v in _layer_sites(spec, model, 1).items()}


def sites(spec: PermutationSpec, model: nn.Module) -> dict[str, tuple[str, list[Site]]]:
    """For each permutation: ("input", its consumers' sites), or ("output", its producers'
    sites) where it has no consumer Linear/Conv2d."""
    cons, prod = _layer_sites(spec, model, 1), _layer_sites(spec, model, 0)
    out: dict[str, tuple[str, list[Site]]] = {}
    for p in spec.perm_names:
        if p in cons:
            out[p] = ("input", cons[p])
        elif p in prod:
            # No layer reads P's units (e.g. a custom head that is not Linear/Conv2d): the
            # producers' outputs, before normalisation and activation, are the only features.
            out[p] = ("output", prod[p])
    return out


def _features(t: torch.Tensor, conv: bool, offset: int, n: int, block: int) -> torch.Tensor:
    """(samples, n) features of n units sitting at `offset` along the channels of t (dim 1 of a
    conv map, the last dim otherwise) in blocks of `block` entries: every position of a map and
    every entry of a unit's block is one more sample of that unit."""
    dim = 1 if conv else t.dim() - 1
    if t.dim() < 2 or t.shape[dim] < offset + n * block:
        raise ValueError(f"activation matching: a feature of shape {tuple(t.shape)} does not hold "
                         f"{n} units of {block} entries at offset {offset} of dim {dim}")
    t = t.narrow(dim, offset, n * block).unflatten(dim, (n, block))
    return t.movedim(dim, -1).reshape(-1, n)


class _Stats:
    """Running sums for one permutation's features in A and B."""

    def __init__(self):
        self.count = 0
        self.sa = self.sb = self.qa = self.qb = self.ab = None

    def update(self, fa: torch.Tensor, fb: torch.Tensor) -> None:
        fa, fb = fa.double(), fb.double()
        parts = (fa.sum(0), fb.sum(0), fa.pow(2).sum(0), fb.pow(2).sum(0), fa.T @ fb)
        if self.ab is None:
            self.sa, self.sb, self.qa, self.qb, self.ab = parts
        else:
            for name, v in zip(("sa", "sb", "qa", "qb", "ab"), parts):
                getattr(self, name).add_(v)
        self.count += fa.shape[0]

    def matrix(self, statistic: str) -> torch.Tensor:
        m = self.count
        if statistic == "inner":
            return self.ab / m  # E[a b^T]
        ma, mb = self.sa / m, self.sb / m
        cov = self.ab / m - torch.outer(ma, mb)
        sd_a = (self.qa / m - ma**2).clamp_min(0).sqrt()
        sd_b = (self.qb / m - mb**2).clamp_min(0).sqrt()
        # Dead units (zero variance) get zero correlation instead of NaN.
        return cov / torch.outer(sd_a, sd_b).clamp_min(1e-12)


class _Recorder:
    """Hooks that collect, during one forward pass, each permutation's features."""

    def __init__(self, model: nn.Module, where: dict[str, tuple[str, list[Site]]], sizes: dict[str, int]):
        modules = dict(model.named_modules())
        self.features: dict[str, list[torch.Tensor]] = {p: [] for p in where}
        self._seen: dict[str, list[tuple]] = {p: [] for p in where}
        self.handles = []
        for p, (kind, places) in where.items():
            for name, offset, block in places:
                m = modules[name]
                site = (p, isinstance(m, nn.Conv2d), offset, sizes[p], block)
                if kind == "input":
                    self.handles.append(m.register_forward_pre_hook(self._pre_hook(site)))
                else:
                    self.handles.append(m.register_forward_hook(self._out_hook(site)))

    def _add(self, site: tuple, t: torch.Tensor) -> None:
        p, conv, offset, n, block = site
        # One tensor read by several consumers (a stream feeding a block's conv and its
        # shortcut) counts once.
        if any(t is s and (offset, block) == ob for s, ob in self._seen[p]):
            return
        self._seen[p].append((t, (offset, block)))
        self.features[p].append(_features(t, conv, offset, n, block))

    def _pre_hook(self, site):
        def fn(_module, args):
            self._add(site, args[0])
        return fn

    def _out_hook(self, site):
        def fn(_module, _args, out):
            self._add(site, out)
        return fn

    def take(self) -> dict[str, list[torch.Tensor]]:
        out = self.features
        self.features = {p: [] for p in out}
        self._seen = {p: [] for p in out}
        return out

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


@torch.no_grad()
def activation_matching(spec: PermutationSpec, model: nn.Module, a: Params, b: Params, x: torch.Tensor,
                        batch: int = 500, *, statistic: str = "correlation") -> MatchResult:
    """Permutations of B's units matching A's by the post-activation features on x.

    statistic: "correlation" (Pearson; Git Re-Basin's VGG script) or "inner" (E[a b^T], the
    line its MNIST MLP script runs, with the correlation line commented out)."""
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, not {statistic!r}")
    if len(x) == 0:
        raise ValueError("activation matching needs at least one example")
    check_compatible(spec, a, b)
    where = sites(spec, model)
    missing = [p for p in spec.perm_names if p not in where]
    if missing:
        raise ValueError(f"activation matching needs a Linear/Conv2d reading or producing each permutation; "
                         f"none for {missing}")
    sizes = spec.perm_sizes(a)
    # One set of statistics per feature tensor a forward pass gives each permutation (hooks
    # fire in the same order for A and B): the correlations of a stream's consumers are summed.
    stats: dict[str, list[_Stats]] = {p: [] for p in where}
    recorder = _Recorder(model, where, sizes)
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(x), batch):
            xb = x[i : i + batch]
            functional_call(model, a, (xb,))
            fa = recorder.take()
            functional_call(model, b, (xb,))
            fb = recorder.take()
            for p in where:
                for j, (ta, tb) in enumerate(zip(fa[p], fb[p], strict=True)):
                    if j == len(stats[p]):
                        stats[p].append(_Stats())
                    stats[p][j].update(ta, tb)
    finally:
        recorder.remove()
        model.train(was_training)
    perms: Perms = {p: solve_lap(sum(s.matrix(statistic) for s in stats[p])) for p in where}
    return MatchResult(perms)
