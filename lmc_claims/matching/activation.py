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
samples of that channel. A grouped Conv2d's input permutation (one shared by its groups, see
permutation/derive/) is read in every group's run of input channels.

A residual stream has several consumers (each block's first conv, the next stage's conv and
shortcut): their correlations are summed, a tensor read by two consumers counting once. Only a
permutation without any consumer Linear/Conv2d falls back to its producers' outputs (weight with
P on axis 0): pre-activation, the best available there.

nn.MultiheadAttention computes its projections from its own parameters (its out_proj Linear is
never called), so its features are read by a hook on the module: the query, key and value
projections for the permutations of their rows, the heads' outputs before out_proj (out_proj's
input) for the permutation of out_proj's columns, and the module's output for its rows.

Block-structured permutations (attention heads, `PermutationSpec.blocks`) sharing an outer
permutation are solved together, as in weight matching (`lap.solve_blocks`): the assignment
inside every pair of heads, then one over heads on the summed correlations.

Statistics are accumulated batch by batch (means, second moments, cross moments, in float64),
so memory is one batch of features, not the data set's.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..permutation.apply import Params, Perms
from ..permutation.spec import PermutationSpec
from .weight import MatchResult, block_units, check_compatible, solve_unit

LAYERS = (nn.Linear, nn.Conv2d)
STATISTICS = ("correlation", "inner")


# (module name, offset, block): where a permutation's units sit in a layer's channels (its input
# or output); (module name, offset, block, feature): in a feature an nn.MultiheadAttention
# computes (`_attention_features`)
Site = tuple


def _segments(spec: PermutationSpec, param: str, axis: int):
    """(perm, offset, block) of each permutation on a parameter axis, plain or composite."""
    p = spec.axes_to_perm[param][axis]
    if p is not None:
        return [(p, 0, 1)]
    out, offset = [], 0
    for p, units, block in spec.composite_axes.get(param, {}).get(axis, ()):
        if p is not None:
            out.append((p, offset, block))
        offset += units * block
    return out


def _layer_sites(spec: PermutationSpec, model: nn.Module, axis: int) -> dict[str, list[Site]]:
    """For each permutation, the Linear/Conv2d layers whose weight it permutes on `axis` (0:
    output channels, 1: input channels), with where its units sit along those channels: a
    plain axis is (offset 0, block 1); a composite axis (spec.composite_axes, e.g. a feature map
    flattened before a Linear, or channels concatenated) gives each segment's offset and block.
    An nn.MultiheadAttention's out_proj is not called as a layer: its sites are the module's."""
    modules = dict(model.named_modules())
    inside = {f"{name}.out_proj" for name, m in modules.items() if isinstance(m, nn.MultiheadAttention)}
    out: dict[str, list[Site]] = {}
    for param, perms in spec.axes_to_perm.items():
        module_name, _, leaf = param.rpartition(".")
        if leaf != "weight" or len(perms) < 2 or not isinstance(modules.get(module_name), LAYERS):
            continue
        if module_name in inside:
            continue
        m = modules[module_name]
        # A grouped Conv2d's weight axis 1 indexes the channels inside a group for every group
        # at once: its permutation's units sit in each group's run of input channels.
        runs, run = (m.groups, m.in_channels // m.groups) if axis == 1 and isinstance(m, nn.Conv2d) else (1, 0)
        for p, offset, block in _segments(spec, param, axis):
            for i in range(runs):
                out.setdefault(p, []).append((module_name, i * run + offset, block))
    for name, m in modules.items():
        if isinstance(m, nn.MultiheadAttention):
            for p, site in _attention_sites(spec, name, m, axis):
                out.setdefault(p, []).append(site)
    return out


def _attention_sites(spec: PermutationSpec, name: str, m: nn.MultiheadAttention, axis: int):
    """(perm, site) of an nn.MultiheadAttention: on axis 0 (what it produces) the rows of its
    q/k/v projections and of out_proj, on axis 1 (what it reads) out_proj's columns."""
    e = m.embed_dim
    out = []
    if axis == 1:
        key = f"{name}.out_proj.weight"
        if key in spec.axes_to_perm:
            out += [(p, (name, offset, block, "heads")) for p, offset, block in _segments(spec, key, 1)]
        return out
    if m._qkv_same_embed_dim:
        key = f"{name}.in_proj_weight"
        if key in spec.axes_to_perm:
            for p, offset, block in _segments(spec, key, 0):
                which = "qkv"[min(offset // e, 2)]
                out.append((p, (name, offset - "qkv".index(which) * e, block, which)))
    else:
        for which in "qkv":
            key = f"{name}.{which}_proj_weight"
            if key in spec.axes_to_perm:
                out += [(p, (name, offset, block, which)) for p, offset, block in _segments(spec, key, 0)]
    key = f"{name}.out_proj.weight"
    if key in spec.axes_to_perm:
        out += [(p, (name, offset, block, "out")) for p, offset, block in _segments(spec, key, 0)]
    return out


def _attention_features(m: nn.MultiheadAttention, args, kwargs, output) -> dict[str, torch.Tensor]:
    """The features an nn.MultiheadAttention computes (channels last): "q", "k", "v" (the
    projections of query, key, value), "heads" (the heads' outputs, out_proj's input), "out"."""
    bound = inspect.signature(m.forward).bind(*args, **kwargs).arguments
    query, key, value = bound["query"], bound["key"], bound["value"]
    e = m.embed_dim
    if m._qkv_same_embed_dim:
        w_q, w_k, w_v = m.in_proj_weight.split(e)
    else:
        w_q, w_k, w_v = m.q_proj_weight, m.k_proj_weight, m.v_proj_weight
    b_q, b_k, b_v = m.in_proj_bias.split(e) if m.in_proj_bias is not None else (None, None, None)
    feats = {"q": F.linear(query, w_q, b_q), "k": F.linear(key, w_k, b_k), "v": F.linear(value, w_v, b_v),
             "out": output[0]}
    if m.batch_first and query.dim() == 3:
        query, key, value = (t.transpose(0, 1) for t in (query, key, value))
    # the module's own computation with an identity output projection: out_proj's input
    heads, _ = F.multi_head_attention_forward(
        query, key, value, e, m.num_heads, m.in_proj_weight, m.in_proj_bias, m.bias_k, m.bias_v, m.add_zero_attn,
        0.0, torch.eye(e, dtype=query.dtype, device=query.device), None, training=False,
        key_padding_mask=bound.get("key_padding_mask"), need_weights=False, attn_mask=bound.get("attn_mask"),
        use_separate_proj_weight=not m._qkv_same_embed_dim, q_proj_weight=m.q_proj_weight,
        k_proj_weight=m.k_proj_weight, v_proj_weight=m.v_proj_weight, is_causal=bound.get("is_causal", False))
    feats["heads"] = heads
    return feats


def producers(spec: PermutationSpec, model: nn.Module) -> dict[str, list[str]]:
    """Linear/Conv2d module names whose output channels each permutation acts on."""
    return {p: [site[0] for site in v] for p, v in _layer_sites(spec, model, 0).items()}


def consumers(spec: PermutationSpec, model: nn.Module) -> dict[str, list[str]]:
    """Linear/Conv2d module names whose input channels each permutation acts on."""
    return {p: [site[0] for site in v] for p, v in _layer_sites(spec, model, 1).items()}


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
        attention: dict[str, list[tuple]] = {}
        for p, (kind, places) in where.items():
            for name, offset, block, *feature in places:
                m = modules[name]
                site = (p, isinstance(m, nn.Conv2d), offset, sizes[p], block)
                if feature:
                    attention.setdefault(name, []).append((feature[0], site))
                elif kind == "input":
                    self.handles.append(m.register_forward_pre_hook(self._pre_hook(site)))
                else:
                    self.handles.append(m.register_forward_hook(self._out_hook(site)))
        for name, wanted in attention.items():
            self.handles.append(modules[name].register_forward_hook(self._attention_hook(wanted), with_kwargs=True))

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

    def _attention_hook(self, wanted):
        def fn(module, args, kwargs, out):
            feats = _attention_features(module, args, kwargs, out)
            for feature, site in wanted:
                self._add(site, feats[feature])
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
    costs = {p: sum(s.matrix(statistic) for s in stats[p]).cpu().numpy() for p in where}
    device = next(iter(a.values())).device
    perms: Perms = {}
    for unit in block_units(spec, spec.perm_names):
        for p, perm in zip(unit, solve_unit(spec, unit, [costs[p] for p in unit])):
            perms[p] = torch.from_numpy(perm).to(device)
    return MatchResult(perms)
