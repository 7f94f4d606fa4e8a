"""Deriving a permutation spec from a model's graph (torch.fx), for models nobody wrote one for.

Each traced value gets a *channel group* for its feature axis (dim 1 of conv maps, the last
dim of (N, C) features). Linear/Conv2d outputs start a new group; norms, element-wise
activations, pooling and dropout pass their input's group through; a residual addition
unites the groups of its operands (they must share one permutation); the network's input and
output belong to the fixed group, which is never permuted. Anything else raises an error that
names the node, so an unsupported model fails loudly instead of getting a wrong spec.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import LmcClaimsError
from .spec import PermutationSpec

PASS_THROUGH_MODULES = (
    nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.Dropout, nn.Identity,
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
)
PASS_THROUGH_FUNCTIONS = {
    torch.relu, F.relu, F.gelu, F.silu, torch.tanh, torch.sigmoid, F.leaky_relu, F.dropout,
    F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d,
}
PASS_THROUGH_METHODS = {"relu", "sigmoid", "tanh", "contiguous", "clone"}
ADDITIONS = {operator.add, operator.iadd, torch.add}


class _Groups:
    """Union-find over channel groups; group 0 is the fixed (never permuted) group."""

    def __init__(self):
        self.parent = [0]
        self.origin = ["fixed"]

    def new(self, origin: str) -> int:
        self.parent.append(len(self.parent))
        self.origin.append(origin)
        return len(self.parent) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        keep, drop = (ra, rb) if ra < rb else (rb, ra)  # the fixed group (0) always wins
        self.parent[drop] = keep
        return keep


def _unsupported(node: fx.Node, what: str) -> LmcClaimsError:
    return LmcClaimsError(
        f"Cannot derive a permutation spec: {what} (graph node {node.name!r}, target {node.target!r}).",
        "use Linear, Conv2d, BatchNorm, LayerNorm/GroupNorm(1, C), element-wise activations, pooling, "
        "residual additions and flatten after global pooling, or pass a hand-written PermutationSpec "
        "(attribute `permutation_spec` on the factory).",
    )


def derive_spec(model: nn.Module, example_input: torch.Tensor) -> PermutationSpec:
    try:
        gm = fx.symbolic_trace(model)
    except Exception as e:  # fx raises many types for untraceable control flow
        raise LmcClaimsError(
            f"Cannot derive a permutation spec: torch.fx could not trace {type(model).__name__} ({type(e).__name__}: {e}).",
            "remove data-dependent Python control flow from forward(), or pass a hand-written PermutationSpec.",
        ) from None
    was_training = model.training
    model.eval()
    with torch.no_grad():
        ShapeProp(gm).propagate(example_input)
    model.train(was_training)
    modules = dict(gm.named_modules())
    groups = _Groups()
    value: dict[fx.Node, int] = {}
    axes: dict[str, list[int | None]] = {}

    def record(param: str, per_axis: list[int | None]) -> None:
        if param in axes:  # a module used twice: its axes must share permutations
            for i, (old, new) in enumerate(zip(axes[param], per_axis)):
                if old is not None and new is not None:
                    groups.union(old, new)
        else:
            axes[param] = per_axis

    def shape(node) -> torch.Size:
        return node.meta["tensor_meta"].shape

    def flatten(node: fx.Node, src: fx.Node) -> int:
        g, s = value[src], shape(src)
        if groups.find(g) == 0 or len(s) <= 2 or all(d == 1 for d in s[2:]):
            return g
        raise _unsupported(node, f"flatten of a {tuple(s[1:])} feature map mixes channels with positions; "
                                 "add a global pooling before it")

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            value[node] = 0
        elif node.op == "call_module":
            m, src = modules[node.target], node.args[0]
            g_in = value[src]
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                if isinstance(m, nn.Conv2d) and m.groups != 1:
                    raise _unsupported(node, "grouped convolution")
                g = groups.new(node.target)
                record(f"{node.target}.weight", [g, g_in] + [None] * (m.weight.dim() - 2))
                if m.bias is not None:
                    record(f"{node.target}.bias", [g])
                value[node] = g
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
                if isinstance(m, nn.GroupNorm) and m.num_groups != 1:
                    raise _unsupported(node, f"GroupNorm with {m.num_groups} groups (only 1 group is permutation-symmetric)")
                if isinstance(m, nn.LayerNorm) and (len(m.normalized_shape) != 1 or len(shape(src)) != 2):
                    raise _unsupported(node, "LayerNorm is supported over the features of (N, C) inputs only")
                for name, t in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False)):
                    if t.dim() == 1:
                        record(f"{node.target}.{name}", [g_in])
                value[node] = g_in
            elif isinstance(m, nn.Flatten):
                value[node] = flatten(node, src)
            elif isinstance(m, PASS_THROUGH_MODULES):
                value[node] = g_in
            else:
                raise _unsupported(node, f"module {node.target!r} of type {type(m).__name__} is not supported")
        elif node.op == "call_function":
            if node.target in ADDITIONS:
                tensors = [a for a in node.args if isinstance(a, fx.Node)]
                g = value[tensors[0]]
                for a in tensors[1:]:
                    g = groups.union(g, value[a])
                value[node] = g
            elif node.target in PASS_THROUGH_FUNCTIONS:
                value[node] = value[node.args[0]]
            elif node.target is torch.flatten:
                value[node] = flatten(node, node.args[0])
            else:
                raise _unsupported(node, f"function {getattr(node.target, '__name__', node.target)} is not supported")
        elif node.op == "call_method":
            if node.target in PASS_THROUGH_METHODS:
                value[node] = value[node.args[0]]
            elif node.target == "flatten":
                value[node] = flatten(node, node.args[0])
            elif node.target == "mean" and len(shape(node.args[0])) == 4 and len(shape(node)) in (2, 4) and shape(node)[1] == shape(node.args[0])[1]:
                value[node] = value[node.args[0]]  # spatial average: channels unchanged
            else:
                raise _unsupported(node, f"method .{node.target}() is not supported")
        elif node.op == "output":
            out = node.args[0]
            for o in (out if isinstance(out, (tuple, list)) else [out]):
                if isinstance(o, fx.Node):
                    groups.union(value[o], 0)
        else:
            raise _unsupported(node, f"graph operation {node.op} is not supported")

    names: dict[int, str] = {}
    spec_axes: dict[str, tuple[str | None, ...]] = {}
    for param, per_axis in axes.items():
        resolved = []
        for g in per_axis:
            root = None if g is None else groups.find(g)
            if root is None or root == 0:
                resolved.append(None)
            else:
                resolved.append(names.setdefault(root, f"P_{groups.origin[root]}"))
        spec_axes[param] = tuple(resolved)
    state = model.state_dict()
    missing = [k for k, v in state.items() if k not in spec_axes and v.is_floating_point()]
    if missing:
        raise LmcClaimsError(
            f"Cannot derive a permutation spec: parameters {missing[:5]} are used outside the supported layers.",
            "use them through standard modules (Linear, Conv2d, norms) or pass a hand-written PermutationSpec.",
        )
    return PermutationSpec.from_axes(spec_axes)
