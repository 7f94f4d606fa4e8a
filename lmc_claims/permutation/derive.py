"""Deriving a permutation spec from a model's graph, for models nobody wrote one for.

Tracing. The model is traced with torch.fx (torch.nn layers that have a rule below are leaves,
other modules are traced through); when fx cannot follow forward() (Python control flow on
shapes or values), `torch.export.export` records the ATen ops actually run for the example
input instead. It is traced in eval and in train mode, so that layers used in one mode only
(auxiliary heads) are covered too. A model neither can trace, an op without a rule, or an
example input the model rejects gives an `LmcClaimsError` naming the graph node and the fix.

Layouts. Every tensor in the graph carries a *layout*: the dimension holding its channels and,
along it, a list of segments (group, units, block): `units` consecutive blocks of `block`
channels each, and the permutation of `group` moves whole blocks. Groups are classes of a
union-find; group 0 is fixed (never permuted). A plain feature map has one segment with
block 1; flattening a (C, 7, 7) map gives block 49; a channel concatenation gives one segment
per operand. A parameter axis whose layout is one segment with block 1 gets that group's
permutation in the spec; an axis with several segments or blocks becomes a *composite* axis
(`PermutationSpec.composite_axes`); an axis in group 0 is None. A tensor split into heads is
re-indexed along several dimensions at once (`_Multi`: heads and the channels inside them,
flattened in order, carry one layout), and a group may be *restricted*: split into parts
that stay in place (q, k and v of a packed projection), or made of blocks (heads) moved by
another group's permutation and permuted inside (`_Groups`); a restricted permutation is one
of the unrestricted ones, so restricting never breaks exactness. A block-structured group
becomes an entry of `PermutationSpec.blocks`, its head group the blocks' outer permutation.

Why every derived permutation is an exact symmetry. With the parameters permuted as the spec
says, every value of the permuted network equals the original one re-indexed along its
channel dimension by its layout (a value whose layout is fixed is identical). The network
input and output are fixed. Each rule keeps this true:
- Linear / convolution: output channels start a new group (weight axis 0, bias); the input
  layout goes to the weight's input axis. Depthwise convolutions (groups == in_channels)
  keep their input's layout (output channel c*m + j follows input channel c). Grouped ones
  (1 < groups < in_channels; output group i reads input group i only): the output channels
  are a new group made of blocks (the groups) that stay in place, permuted inside each block,
  freely per block; the input layout is restricted to one layout that every group's channels
  follow alike (the weight's axis 1 indexes the channels inside a group for all groups at
  once), the producer's channels split into parts at the groups' edges and united. Transposed
  grouped convolutions mirror this (input blocks in place, one output layout shared by the
  groups). Moving whole groups is a symmetry too, but it would permute the input by a group
  permutation combined with one permutation shared inside the groups, which a spec cannot
  declare: the groups keep their order.
- Element-wise ops (every activation in torch.nn / torch.nn.functional, arithmetic, dropout,
  torchvision's StochasticDepth, softmax along any dimension) unite the layouts of their
  operands, broadcasting included: a squeeze-and-excitation gate shares the gated tensor's
  permutation, a per-channel parameter (layer scale, class token, position embedding, PReLU)
  takes the layout of the dimension it is broadcast along. A fixed operand that varies along
  the channels fixes the others.
- Norms (BatchNorm, InstanceNorm, LayerNorm over the last dimensions, RMSNorm, GroupNorm whose
  groups the layout keeps intact): per-channel parameters follow the layout; statistics over
  permuted channels are unchanged.
- Pooling, padding, interpolation, rolls and flips over other dimensions keep the layout.
  Reductions over the channels (mean, sum, amax, ...) give a fixed value.
- Reshapes (view, reshape, flatten, unflatten, squeeze, unsqueeze) and permute/transpose move
  the channel dimension; merging it with trailing dimensions multiplies the blocks, merging
  it with leading ones repeats the layout. Splitting it into several dimensions (heads) keeps
  the layout on the flattened index of those dimensions, followed through later reshapes by
  the reshape's common factors (`_regroup`): they may merge with other dimensions only in
  front (the layout repeats) or behind (its blocks grow). Concatenation along the channels
  joins the operands' segments; along another dimension it unites their layouts. Slices and
  splits of the channels keep the segments they cut out whole, splitting a group into parts
  between its blocks where they cut it (an index into the outermost of several re-indexed
  dimensions, q/k/v of a packed projection, is such a slice).
- Shape reads (x.shape, x.size(), getitem on them) and anything computed from fixed values
  only are fixed: they are the same in the permuted network.
- Matrix products (`_mm_value`) and scaled_dot_product_attention: contracting two operands'
  channels that one layout re-indexes leaves the sum unchanged; with heads as batch
  dimensions, the groups are restricted to keep each head's channels together, and the
  scores are re-indexed along the heads only. Scores @ values unite the scores' heads with
  the values'. Softmax inside the heads (over the keys) keeps it all. So written-out attention
  gets, per layer, one block-structured permutation of the query and key rows (and biases),
  one of the value rows and the output projection's columns, their heads moved by one head
  permutation (spec.py says why that is exact).
- nn.MultiheadAttention (a leaf): the same permutations of its packed in_proj (or q/k/v_proj)
  rows, bias_k / bias_v, and out_proj columns; the embedding channels move as for a Linear.
  Per-head attention weights in the output move with the heads. torchvision's Swin attention
  adds a bias per head to the scores: its heads stay, the channels inside them move.
Where no permutation is a symmetry, or none is proved, the axes stay FIXED: the order of a
grouped convolution's groups, and its input channels where they cannot follow one layout
alike in every group (they come from another grouped convolution with other groups), a
reshape that mixes the channels with other dimensions (shufflenet's channel shuffle), reading
single channels (x[:, 0], argmax over channels, indexing by tensors), products with a fixed operand
along permuted channels, einsum, and operands whose layouts differ segment by segment. For
attention: heads stay where a parameter or mask differs per head, or the heads' scores differ
while the values' heads would move; q and k stay under ops on heads without a rule (a
LayerNorm over head_dim shared by the heads, rotary embeddings, einsum scores). A head
permutation that would move a parameter axis itself stays too (blocks' outer permutations
are not permutations of the spec).
Dropout is a symmetry in distribution (identity in eval mode): a random mask at the same
positions meets permuted channels.
"""

from __future__ import annotations

import inspect
import math
import operator

import torch
from torch import fx, nn

from ..errors import LmcClaimsError
from .spec import PermutationSpec

HAND_WRITTEN = ("pass a hand-written PermutationSpec (attribute `permutation_spec` on the architecture's "
                "factory, see README: 'The permutation spec is derived ...')")


class _Groups:
    """Union-find over channel groups; group 0 is the fixed (never permuted) group.

    A group's permutation may be restricted, which keeps every symmetry found exact (a
    restricted permutation is still one of those the rules allowed):
    - `blocks[g] = (h, m)`: g's units form blocks of m consecutive units (heads); group h's
      permutation moves whole blocks, and the units inside each block are permuted freely;
    - `parts[g] = ((g1, n1), (g2, n2), ...)`: g's units split into consecutive parts that stay
      where they are, each permuted by its own group (a slice of a packed q/k/v projection).
    Uniting groups unites their restrictions; where they cannot be united (different block
    sizes or parts), the group is fixed.
    """

    def __init__(self):
        self.parent = [0]
        self.origin = ["fixed"]
        self.blocks: dict[int, tuple[int, int]] = {}
        self.parts: dict[int, tuple[tuple[int, int], ...]] = {}

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
        if ra == rb:
            return ra
        keep, drop = (ra, rb) if ra < rb else (rb, ra)  # the fixed group (0) always wins
        self.parent[drop] = keep
        bd, pd = self.blocks.pop(drop, None), self.parts.pop(drop, None)
        if keep == 0:
            self._fix_restrictions(bd, pd)
            return 0
        bk, pk = self.blocks.get(keep), self.parts.get(keep)
        clash = False
        if pd is not None and pk is not None:
            if [n for _, n in pd] == [n for _, n in pk]:
                for (x, _), (y, _) in zip(pd, pk):
                    self.union(x, y)
            else:
                clash = True
        elif pd is not None:
            self.parts[keep] = pd
        if bd is not None and bk is not None:
            if bd[1] == bk[1]:
                self.union(bd[0], bk[0])
            else:
                clash = True
        elif bd is not None:
            self.blocks[keep] = bd
        keep = self.find(keep)
        if clash or (keep in self.blocks and keep in self.parts):
            self._fix_restrictions(bd, pd)
            self.fix(keep)
        return self.find(keep)

    def fix(self, g: int) -> None:
        """Fix group g, and the groups its restrictions name."""
        r = self.find(g)
        if r == 0:
            return
        self.parent[r] = 0
        self._fix_restrictions(self.blocks.pop(r, None), self.parts.pop(r, None))

    def _fix_restrictions(self, blocks, parts) -> None:
        if blocks is not None:
            self.fix(blocks[0])
        for x, _ in parts or ():
            self.fix(x)

    def head_roots(self) -> set[int]:
        return {self.find(h) for h, _ in self.blocks.values()} - {0}

    def structure(self, g: int, m: int) -> int | None:
        """Restrict g to blocks of m units; returns the group moving the blocks (0: they stay),
        None where g cannot be restricted so (it is split into parts)."""
        r = self.find(g)
        if r == 0:
            return 0
        if r in self.parts:
            return None
        if r in self.head_roots():  # heads of heads: not a structure a spec can declare
            self.fix(r)
            return 0
        if r in self.blocks:
            h, m0 = self.blocks[r]
            if m0 == m:
                return self.find(h)
            self.fix(r)
            return 0
        h = self.new(f"{self.origin[r]}:heads")
        self.blocks[r] = (h, m)
        return h

    def refine(self, g: int, sizes: list[int]) -> bool:
        """Split g's units into consecutive parts of these sizes; False where g is restricted."""
        r = self.find(g)
        if r == 0:
            return True
        if r in self.blocks or r in self.parts or r in self.head_roots():
            return False
        # parts are named by their units' range in the group first split
        base, start = self.origin[r], 0
        if base.endswith("]") and "[" in base:
            head, _, span = base[:-1].rpartition("[")
            lo = span.partition(":")[0]
            if lo.isdigit():
                base, start = head, int(lo)
        parts = []
        for n in sizes:
            parts.append((self.new(f"{base}[{start}:{start + n}]"), n))
            start += n
        self.parts[r] = tuple(parts)
        return True


class _T:
    """A tensor whose dimension `dim` is re-indexed by `layout` in the permuted network
    (dim None: the tensor is the same there)."""

    __slots__ = ("dim", "layout")

    def __init__(self, dim: int | None, layout: tuple = ()):
        self.dim, self.layout = dim, layout


class _Multi:
    """A tensor re-indexed jointly along several dimensions (the heads and the channels inside
    them): flatten dimensions `dims` row-major, in the order listed (which need not be the
    tensor's order), and the flattened index is re-indexed by `layout`."""

    __slots__ = ("dims", "layout")

    def __init__(self, dims: tuple, layout: tuple):
        self.dims, self.layout = tuple(dims), layout


class _Par:
    """A parameter or buffer, or a view of one that moves no data across its axes: value
    dimension i is parameter axis `axes[i]` (None: a new, broadcast or cut dimension) from
    entry `offsets[i]` on (a slice or chunk of the axis)."""

    __slots__ = ("name", "axes", "shape", "offsets")

    def __init__(self, name: str, axes: tuple, shape: tuple, offsets: tuple | None = None):
        self.name, self.axes, self.shape = name, tuple(axes), tuple(shape)
        self.offsets = tuple(offsets) if offsets is not None else (0,) * len(self.axes)


class _Static:
    """Not a tensor (a shape, a flag): the same in the permuted network."""


STATIC = _Static()
FIXED = _T(None)


class _Shape(tuple):
    """The shape of a tensor output (distinguishes it from a tuple of outputs)."""


class _Unsupported(LmcClaimsError):
    pass


def _unsupported(node: fx.Node, what: str) -> _Unsupported:
    where = node.meta.get("nn_module_stack")
    module = f", in module {list(where.values())[-1][0]!r}" if where else ""
    return _Unsupported(
        f"Cannot derive a permutation spec: {what} (graph node {node.name!r}, target "
        f"{_target_name(node.target)}{module}).",
        "replace the op by a supported one (Linear, convolutions, norms, element-wise activations, pooling, "
        "residual additions, concatenation, flatten, reshape/permute of the channel dimension), or "
        + HAND_WRITTEN + ".",
    )


def _target_name(t) -> str:
    if isinstance(t, str):
        return repr(t)
    mod = getattr(t, "__module__", None) or ""
    return f"{mod}.{getattr(t, '__name__', t)}" if mod else repr(t)


# ------------------------------------------------------------------ layouts


def _prod(xs) -> int:
    return math.prod(int(x) for x in xs)


def _fixed_layout(n: int) -> tuple:
    return ((0, int(n), 1),)


def _layout_size(layout) -> int:
    return sum(n * b for _, n, b in layout)


class _Analysis:
    """Layouts of the values of one or more graphs, and of the parameters they use."""

    def __init__(self, model: nn.Module):
        self.groups = _Groups()
        self.params: dict[str, list[tuple]] = {}  # parameter -> layout per axis (None: known only in ranges)
        self.ranges: dict[tuple[str, int], list[tuple]] = {}  # (parameter, axis) -> (offset, size, layout) of its slices
        self.state_shapes = {k: tuple(v.shape) for k, v in model.state_dict(keep_vars=True).items()}
        self.values: dict[fx.Node, object] = {}
        self.node: fx.Node | None = None

    # -- layouts
    def canon(self, layout) -> tuple:
        out: list[tuple[int, int, int]] = []
        for g, n, b in layout:
            if n * b == 0:
                continue
            g = self.groups.find(g)
            if g in self.groups.parts:  # a group split into parts: its parts, one after the other
                segs = self.canon(tuple((x, u, b) for x, u in self.groups.parts[g]))
            else:
                segs = ((g, n, b),)
            for g, n, b in segs:
                if g == 0:
                    if out and out[-1][0] == 0:
                        out[-1] = (0, out[-1][1] + n * b, 1)
                    else:
                        out.append((0, n * b, 1))
                else:
                    out.append((g, n, b))
        return tuple(out)

    def is_fixed_layout(self, layout) -> bool:
        return all(g == 0 for g, _, _ in self.canon(layout))

    def fix_layout(self, layout) -> None:
        for g, _, _ in layout:
            self.groups.union(g, 0)

    def unify(self, la, lb):
        """The layout both share, uniting their groups; None where their segments differ.
        A permuted segment that spans several of the other's is split into parts there first
        (a packed projection sliced in one graph and not yet in another)."""
        ca, cb = self.canon(la), self.canon(lb)
        while [(n, b) for _, n, b in ca] != [(n, b) for _, n, b in cb]:
            if not (self._cut_at(ca, cb) | self._cut_at(cb, ca)):
                return None
            ca, cb = self.canon(la), self.canon(lb)
        for (ga, _, _), (gb, _, _) in zip(ca, cb):
            self.groups.union(ga, gb)
        return self.canon(ca)

    def _cut_at(self, layout, other) -> bool:
        """Split the permuted segments of `layout` at the segment boundaries of `other` that
        fall between their blocks; whether any was split."""
        bounds, offset = set(), 0
        for _, n, b in other:
            offset += n * b
            bounds.add(offset)
        cut, offset = False, 0
        for g, n, b in layout:
            lo, offset = offset, offset + n * b
            inner = sorted(x for x in bounds if lo < x < offset and (x - lo) % b == 0)
            if g == 0 or not inner:
                continue
            edges = [lo] + inner + [offset]
            cut |= self.groups.refine(g, [(e - s) // b for s, e in zip(edges, edges[1:])])
        return cut

    def unify_all(self, layouts):
        out = layouts[0]
        for other in layouts[1:]:
            out = self.unify(out, other)
            if out is None:
                for lay in layouts:
                    self.fix_layout(lay)
                return None
        return out

    def slice_layout(self, layout, start: int, stop: int):
        """The segments of channels start..stop-1. A permuted segment cut between its blocks is
        split into parts first (its permutation then keeps the parts in place: a restriction,
        so still exact); None where a block is cut, or the group cannot be split."""
        for _ in range(3):  # at most two cuts, then the slice
            out, offset, cut = [], 0, None
            for g, n, b in self.canon(layout):
                lo, hi = offset, offset + n * b
                offset = hi
                s, e = max(lo, start), min(hi, stop)
                if s >= e:
                    continue
                if s == lo and e == hi:
                    out.append((g, n, b))
                elif g == 0:
                    out.append((0, e - s, 1))
                elif (s - lo) % b or (e - lo) % b:
                    return None
                else:
                    cut = (g, [u for u in ((s - lo) // b, (e - s) // b, (hi - e) // b) if u])
                    break
            if cut is None:
                return tuple(out)
            if not self.groups.refine(*cut):
                return None
        return None

    def heads(self, layout, k: int):
        """A flattened index re-indexed by `layout`, read as blocks of k entries (heads over
        channels inside them): the layout of the blocks, after restricting each group so that
        its permutation keeps every block's entries together; None where that cannot be."""
        out, offset = [], 0
        for g, n, b in self.canon(layout):
            size = n * b
            if offset % k or size % k:
                return None
            offset += size
            if g == 0:
                out.append((0, size // k, 1))
            elif b % k == 0:  # blocks of whole heads: the heads move with them, in order
                out.append((g, n, b // k))
            elif k % b == 0 and n % (k // b) == 0:
                h = self.groups.structure(g, k // b)
                if h is None:
                    return None
                out.append((h, n // (k // b), 1))
            else:
                return None
        return self.canon(out)

    def period(self, layout, p: int, r: int):
        """The layout's first p entries when the layout is them repeated r times (a fixed
        segment may be cut anywhere), else None."""
        chunks: list[list] = [[] for _ in range(r)]
        offset = 0
        for g, n, b in self.canon(layout):
            lo, offset = offset, offset + n * b
            if g == 0:
                pos = lo
                while pos < offset:
                    end = min(offset, (pos // p + 1) * p)
                    chunks[pos // p].append((0, end - pos, 1))
                    pos = end
            elif lo // p != (offset - 1) // p:
                return None
            else:
                chunks[lo // p].append((g, n, b))
        first = self.canon(chunks[0])
        return first if all(self.canon(c) == first for c in chunks[1:]) else None

    def aligned(self, layout, size: int) -> bool:
        """Whether permuting by the layout keeps each run of `size` channels together (as a set)."""
        offset = 0
        for g, n, b in self.canon(layout):
            span = n * b
            if g != 0 and offset // size != (offset + span - 1) // size and (b % size or offset % size):
                return False
            offset += span
        return True

    # -- values
    def v(self, a, allow_par: bool = False):
        """The value of an argument; a parameter becomes a fixed tensor unless allowed."""
        if isinstance(a, fx.Node):
            val = self.values[a]
        elif isinstance(a, (_T, _Par)):
            val = a
        else:
            return STATIC
        if isinstance(val, _Par) and not allow_par:
            self.fix(val)
            return FIXED
        return val

    def shape(self, a):
        if isinstance(a, fx.Node):
            return a.meta.get("lmc_shape")
        if isinstance(a, _Par):
            return _Shape(a.shape)
        return None

    def const(self, a):
        """An argument with graph nodes replaced by their (static) values from the example run."""
        return fx.node.map_aggregate(a, lambda x: x.meta.get("lmc_value") if isinstance(x, fx.Node) else x)

    def live(self, val) -> bool:
        """Whether a value may differ in the permuted network (a parameter, or a permuted tensor)."""
        if isinstance(val, _Par):
            return True
        if isinstance(val, _T):
            return val.dim is not None and not self.is_fixed_layout(val.layout)
        if isinstance(val, _Multi):
            return not self.is_fixed_layout(val.layout)
        if isinstance(val, (tuple, list)):
            return any(self.live(x) for x in val)
        return False

    def fix(self, val) -> None:
        if isinstance(val, _Par):
            self.assign(val, {})
        elif isinstance(val, (_T, _Multi)):
            self.fix_layout(val.layout)
        elif isinstance(val, (tuple, list)):
            for x in val:
                self.fix(x)

    def fix_args(self, args, kwargs) -> None:
        for a in _nodes_in((args, kwargs)):
            self.fix(self.values[a])

    def tensor_layout(self, a, dim: int):
        """The layout along `dim` of a tensor argument; None if its channels are elsewhere."""
        val, shp = self.v(a), self.shape(a)
        if val.dim is None or self.is_fixed_layout(val.layout):
            return _fixed_layout(shp[dim])
        return val.layout if val.dim == dim else None

    def fresh(self, origin: str, n: int) -> tuple:
        return ((self.groups.new(origin), int(n), 1),)

    def out_like(self, shapes, make):
        """A value for each tensor in an output structure."""
        if isinstance(shapes, _Shape):
            return make(shapes)
        if isinstance(shapes, (tuple, list)):
            return tuple(self.out_like(s, make) for s in shapes)
        return STATIC

    # -- parameters
    def record(self, name: str, per_axis: list) -> None:
        """Layouts of a parameter's axes (None: this use says nothing about the axis)."""
        shape = self.state_shapes[name]
        if len(per_axis) != len(shape) or any(lay is not None and _layout_size(lay) != n
                                              for lay, n in zip(per_axis, shape)):
            raise _unsupported(self.node, f"internal: layouts {per_axis} do not fit {name!r} of shape {shape}")
        if name not in self.params:
            self.params[name] = list(per_axis)
            return
        old = self.params[name]
        for i, (a, b) in enumerate(zip(old, per_axis)):
            if b is None:
                continue
            if a is None:
                old[i] = b
            elif self.unify(a, b) is None:
                self.fix_layout(a)
                self.fix_layout(b)

    def assign(self, par, dims: dict) -> None:
        """A parameter (view) whose value dimensions follow the given layouts; its other axes
        are fixed. A view of part of an axis (a chunk of a packed projection) gives the layout
        of that range of the axis, and the axis is put together in `finish_ranges`."""
        if not isinstance(par, _Par):
            if par is not None and par is not STATIC:
                self.fix(par)
                for lay in dims.values():
                    self.fix_layout(lay)
            return
        shape = self.state_shapes[par.name]
        per_axis = [_fixed_layout(n) for n in shape]
        partial = {}
        for i, a in enumerate(par.axes):
            if a is not None and (par.offsets[i] != 0 or par.shape[i] != shape[a]):
                partial[a] = [par.offsets[i], par.shape[i], _fixed_layout(par.shape[i])]
                per_axis[a] = None
        for d, lay in dims.items():
            a = par.axes[d] if d < len(par.axes) else None
            if a is None or _layout_size(lay) != par.shape[d]:
                self.fix_layout(lay)
            elif a in partial:
                partial[a][2] = lay
            else:
                per_axis[a] = lay
        self.record(par.name, per_axis)
        for a, (offset, size, lay) in partial.items():
            self.ranges.setdefault((par.name, a), []).append((offset, size, lay))

    def finish_ranges(self) -> None:
        """Each parameter axis used in slices: its slices' layouts one after the other (the same
        slice used twice unites its layouts; overlapping slices or a slice that does not fit
        how the whole axis is used elsewhere are fixed; entries no slice covers are fixed)."""
        for (name, axis), pieces in self.ranges.items():
            n = self.state_shapes[name][axis]
            by_range: dict[tuple[int, int], tuple] = {}
            for offset, size, lay in pieces:
                key = (offset, size)
                if key in by_range and self.unify(by_range[key], lay) is None:
                    self.fix_layout(by_range[key])
                    self.fix_layout(lay)
                by_range.setdefault(key, lay)
            per_axis = self.params[name]
            whole, layout, pos = per_axis[axis], [], 0
            for (offset, size), lay in sorted(by_range.items()):
                if offset < pos:  # overlapping slices
                    for lay in by_range.values():
                        self.fix_layout(lay)
                    layout, pos = [], 0
                    break
                layout += list(_fixed_layout(offset - pos)) + list(lay)
                pos = offset + size
            layout = tuple(layout) + _fixed_layout(n - pos)
            if whole is None:
                per_axis[axis] = layout
                continue
            for (offset, size), lay in by_range.items():
                part = self.slice_layout(whole, offset, offset + size)
                if part is None or self.unify(part, lay) is None:
                    self.fix_layout(whole)
                    self.fix_layout(lay)


def _nodes_in(a) -> list[fx.Node]:
    out: list[fx.Node] = []
    fx.node.map_arg(a, out.append)
    return out


def _arg(args, kwargs, i: int, name: str, default=None):
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


def _dims(d, nd: int) -> list[int]:
    if d is None:
        return list(range(nd))
    if isinstance(d, (list, tuple, torch.Size)):
        return [int(x) % nd for x in d] if nd else []
    return [int(d) % nd] if nd else []


def _origin(par) -> str:
    name = par.name if isinstance(par, _Par) else "computed"
    return name[: -len(".weight")] if name.endswith(".weight") else name


# ------------------------------------------------------------------ rules


def _join(A: _Analysis, node, operands):
    """Element-wise over broadcast operands: they all share one layout."""
    out = A.shape(node)
    if not isinstance(out, _Shape):  # e.g. torch.where(cond): indices
        for a in operands:
            A.fix(A.values[a])
        return A.out_like(out, lambda s: FIXED)
    nd = len(out)
    vals = [(A.v(a, allow_par=True), A.shape(a)) for a in operands if isinstance(A.shape(a), _Shape)]
    if any(isinstance(v, _Multi) and A.live(v) for v, _ in vals):
        return _join_multi(A, out, vals)
    live = [(v, s) for v, s in vals if isinstance(v, _T) and A.live(v)]
    if not live:
        pars = [v for v, s in vals if isinstance(v, _Par)]
        if len(vals) == 1 and pars and tuple(vals[0][1]) == tuple(out):
            return pars[0]  # a function of one parameter: still a view of its axes
        for p in pars:
            A.fix(p)
        return FIXED
    dims = {v.dim + nd - len(s) for v, s in live}
    if len(dims) > 1:
        for v, _ in vals:
            A.fix(v)
        return FIXED
    d = dims.pop()
    ok = True
    for v, s in vals:
        pos = d - (nd - len(s))
        if not isinstance(v, _Par) and not A.live(v) and pos >= 0 and s[pos] != 1:
            ok = False  # a fixed operand that varies along the channels
    layout = A.unify_all([v.layout for v, _ in live]) if ok else None
    if layout is None:
        for v, _ in vals:
            A.fix(v)
        return FIXED
    for v, s in vals:
        if isinstance(v, _Par):
            pos = d - (nd - len(s))
            if pos < 0 or s[pos] == 1:
                A.fix(v)
            else:
                A.assign(v, {pos: layout})
    return _T(d, layout)


def _join_multi(A, out, vals):
    """Element-wise over operands re-indexed along several dimensions (heads): they must be
    re-indexed along the same dimensions, not broadcast along them, and share one layout;
    every other operand must be constant along those dimensions."""
    nd = len(out)
    multis = [v for v, _ in vals if isinstance(v, _Multi) and A.live(v)]
    dims = {tuple(d + nd - len(s) for d in v.dims) for v, s in vals if isinstance(v, _Multi) and A.live(v)}
    ok = len(dims) == 1
    if ok:
        (dims,) = dims
        for v, s in vals:
            lead = nd - len(s)
            if isinstance(v, _Multi) and A.live(v):
                ok = ok and all(s[d - lead] == out[d] for d in dims)
            else:  # a constant (or parameter) must not vary along the re-indexed dimensions
                ok = ok and not (isinstance(v, _T) and A.live(v)) and all(d < lead or s[d - lead] == 1 for d in dims)
    layout = A.unify_all([v.layout for v in multis]) if ok else None
    for v, _ in vals:
        if layout is None or not isinstance(v, _Multi):
            A.fix(v)
    return FIXED if layout is None else _Multi(dims, layout)


def _elementwise(A, node, args, kwargs):
    return _join(A, node, _nodes_in((args, kwargs)))


def _first_only(A, node, args, kwargs):
    """Casts and copies: only the first argument is data (others give a dtype or device)."""
    val = A.v(args[0], allow_par=True)
    if isinstance(val, _Par):
        return val if tuple(A.shape(node)) == val.shape else _reshape_par(A, val, A.shape(args[0]), A.shape(node))
    return val


def _softmax_like(A, node, args, kwargs):
    """Softmax along one dimension: equivariant to permutations of that dimension and of the
    others; re-indexed along several (heads), only when the softmax runs inside the heads."""
    val = A.v(args[0])
    for a in _nodes_in((args[1:], kwargs)):
        A.fix(A.values[a])
    if isinstance(val, _Multi) and A.live(val):
        shp = A.shape(args[0])
        d = A.const(_arg(args, kwargs, 1, "dim"))
        d = int(d) % len(shp) if isinstance(d, int) else None
        if d is not None and d not in val.dims:
            return val
        if d is None or d != val.dims[-1] or A.heads(val.layout, shp[d]) is None:
            A.fix(val)
            return FIXED
    return val


def _opaque(A, node, args, kwargs):
    """An op that mixes everything it gets (matrix products, attention): inputs fixed."""
    A.fix_args(args, kwargs)
    return A.out_like(A.shape(node), lambda s: FIXED)


def _static_result(A, node, args, kwargs):
    return A.out_like(A.shape(node), lambda s: FIXED)


def _read_values(A, node, args, kwargs):
    """Reading tensor values out (item, tolist): they must not depend on the permutation."""
    A.fix_args(args, kwargs)
    return A.out_like(A.shape(node), lambda s: FIXED)


def _reduce(A, node, args, kwargs, order_sensitive=False):
    x = args[0]
    if len(args) > 1 and isinstance(args[1], fx.Node) and isinstance(A.shape(args[1]), _Shape):
        return _elementwise(A, node, args, kwargs)  # torch.max(a, b) and friends
    val, shp = A.v(x), A.shape(x)
    nd = len(shp)
    outs = A.shape(node)
    if not A.live(val):
        return A.out_like(outs, lambda s: FIXED)
    name = _op_name(node)
    d = A.const(_arg(args, kwargs, 2 if name == "norm" else 1, "dim", kwargs.get("axis")))
    dims = _dims(None if isinstance(d, (bool, str, float)) else d, nd) or list(range(nd))  # dim=[]: all
    if val.dim in dims:
        # the values of a reduction over the channels do not depend on their order; which
        # channel holds them (argmax, the indices of max(dim=...)) does
        if order_sensitive and not (isinstance(outs, _Shape) and name in ("max", "min", "median")):
            A.fix(val)
        return A.out_like(outs, lambda s: FIXED)
    first = outs if isinstance(outs, _Shape) else outs[0]
    keep = len(first) == nd
    d = val.dim if keep else val.dim - sum(1 for k in dims if k < val.dim)
    return A.out_like(outs, lambda s: _T(d, val.layout))


def _reduce_order(A, node, args, kwargs):
    return _reduce(A, node, args, kwargs, order_sensitive=True)


def _stride_map(s_in, s_out, d):
    """Where dimension d of a row-major reshape s_in -> s_out ends up: (out dim, block
    factor, repeat factor), or None when it is split across several output dimensions."""
    c, low = int(s_in[d]), _prod(s_in[d + 1 :])
    top = c * low
    for j in range(len(s_out)):
        lo = _prod(s_out[j + 1 :])
        hi = int(s_out[j]) * lo
        if lo <= low and hi >= top and lo and low % lo == 0 and hi % top == 0 and s_out[j] != 1:
            return j, low // lo, hi // top
    return None


def _reshape_par(A, par, s_in, s_out):
    axes: list = [None] * len(s_out)
    offsets = [0] * len(s_out)
    for i, a in enumerate(par.axes):
        if a is None or s_in[i] == 1:
            continue
        m = _stride_map(s_in, s_out, i)
        if m is None or m[1] != 1 or m[2] != 1:
            A.fix(par)
            return FIXED
        axes[m[0]], offsets[m[0]] = a, par.offsets[i]
    return _Par(par.name, axes, s_out, offsets)


def _atoms(s_in, s_out):
    """The common refinement of the two shapes of a row-major reshape: atom sizes, and for
    every input and every output dimension the atoms it is made of, in order (dimensions of
    size 1 have none); None where no refinement exists (e.g. (6, 4) -> (4, 6))."""
    ins = [int(n) for n in s_in if n != 1]
    outs = [int(n) for n in s_out if n != 1]
    if 0 in ins or 0 in outs:
        return None
    sizes: list[int] = []
    atoms_in: list[list[int]] = [[] for n in s_in if n != 1]
    atoms_out: list[list[int]] = [[] for n in s_out if n != 1]
    i = j = 0
    ri, ro = (ins[0] if ins else 0), (outs[0] if outs else 0)
    while i < len(ins) and j < len(outs):
        atom = min(ri, ro)
        if max(ri, ro) % atom:
            return None
        atoms_in[i].append(len(sizes))
        atoms_out[j].append(len(sizes))
        sizes.append(atom)
        ri, ro = ri // atom, ro // atom
        if ri == 1:
            i += 1
            ri = ins[i] if i < len(ins) else 0
        if ro == 1:
            j += 1
            ro = outs[j] if j < len(outs) else 0
    if i < len(ins) or j < len(outs):
        return None
    full_in, full_out = iter(atoms_in), iter(atoms_out)
    return (sizes, [next(full_in) if n != 1 else [] for n in s_in],
            [next(full_out) if n != 1 else [] for n in s_out])


def _regroup(A, dims, layout, s_in, s_out):
    """The value after a reshape of a tensor re-indexed along `dims` (flattened in that order)
    by `layout`, or None where the reshape mixes the re-indexed entries with others.

    The flattened index is followed through the reshape's atoms: an outer atom whose entries
    the layout only repeats, or an inner one inside every block, is not re-indexed and may
    merge with other dimensions; the remaining atoms must stay together, in order, in the
    output dimensions that hold them. Atoms of other dimensions merged in front of them
    repeat the layout, atoms merged behind them enlarge its blocks."""
    found = _atoms(s_in, s_out)
    if found is None:
        return None
    sizes, atoms_in, atoms_out = found
    mine = [x for d in dims for x in atoms_in[d]]
    lay = A.canon(layout)
    total = _layout_size(lay)
    while mine and total:
        r = sizes[mine[0]]
        first = A.period(lay, total // r, r)
        if first is None:
            break
        lay, total = first, total // r
        mine.pop(0)
    while mine:
        r = sizes[mine[-1]]
        if not all(b % r == 0 if g else n % r == 0 for g, n, b in lay):
            break
        lay = A.canon(tuple((g, n, b // r) if g else (0, n // r, 1) for g, n, b in lay))
        mine.pop()
    if not mine or A.is_fixed_layout(lay):
        return FIXED
    rank = {x: k for k, x in enumerate(mine)}
    held = []
    for j, atoms in enumerate(atoms_out):
        pos = [k for k, x in enumerate(atoms) if x in rank]
        if not pos:
            continue
        if pos != list(range(pos[0], pos[-1] + 1)):
            return None
        held.append((rank[atoms[pos[0]]], j, atoms[: pos[0]], atoms[pos[0] : pos[-1] + 1], atoms[pos[-1] + 1 :]))
    held.sort()
    if [x for h in held for x in h[3]] != mine:
        return None
    rep = block = 1
    for k, (_, _, before, _, after) in enumerate(held):
        if (before and k) or (after and k != len(held) - 1):
            return None
        rep *= _prod(sizes[x] for x in before)
        block *= _prod(sizes[x] for x in after)
    lay = A.canon(tuple((g, n, b * block) for g, n, b in lay) * rep)
    return _value(tuple(h[1] for h in held), lay)


def _value(dims, layout):
    """A tensor re-indexed along one dimension (_T) or several (_Multi)."""
    return _T(dims[0], layout) if len(dims) == 1 else _Multi(dims, layout)


def _live_dims(A, val) -> tuple:
    if isinstance(val, _T) and A.live(val):
        return (val.dim,)
    if isinstance(val, _Multi) and A.live(val):
        return val.dims
    return ()


def _reshape(A, node, args, kwargs):
    x = args[0]
    val, s_in, s_out = A.v(x, allow_par=True), A.shape(x), A.shape(node)
    if isinstance(val, _Par):
        return _reshape_par(A, val, s_in, s_out)
    if not A.live(val):
        return FIXED
    if isinstance(val, _T):
        m = _stride_map(s_in, s_out, val.dim)
        if m is not None:
            j, block, rep = m
            layout = tuple((g, n, b * block) for g, n, b in A.canon(val.layout)) * rep
            return _T(j, layout)
    # the channels split over several dimensions (heads), or a value re-indexed along several
    out = _regroup(A, _live_dims(A, val), val.layout, s_in, s_out)
    if out is None:
        A.fix(val)
        return FIXED
    return out


def _tiled_par(val, s_in, s_out):
    """A parameter view expanded or repeated to s_out: dimensions it is tiled along are new."""
    shift = len(s_out) - len(s_in)
    axes = [None] * shift + [a if s_in[i] == s_out[i + shift] else None for i, a in enumerate(val.axes)]
    return _Par(val.name, axes, s_out, (0,) * shift + val.offsets)


def _expand(A, node, args, kwargs):
    x = args[0]
    val, s_in, s_out = A.v(x, allow_par=True), A.shape(x), A.shape(node)
    shift = len(s_out) - len(s_in)
    if isinstance(val, _Par):
        return _tiled_par(val, s_in, s_out)
    if not A.live(val):
        return FIXED
    d = val.dim + shift
    if s_out[d] != s_in[val.dim]:
        A.fix(val)
        return FIXED
    return _T(d, val.layout)


def _repeat(A, node, args, kwargs):
    x = args[0]
    val, s_in, s_out = A.v(x, allow_par=True), A.shape(x), A.shape(node)
    if isinstance(val, _Par):
        return _tiled_par(val, s_in, s_out)
    if not A.live(val):
        return FIXED
    d = val.dim + len(s_out) - len(s_in)
    return _T(d, A.canon(val.layout) * (s_out[d] // s_in[val.dim]))


def _permute_dims(A, node, x, order):
    val = A.v(x, allow_par=True)
    if isinstance(val, _Par):
        return _Par(val.name, [val.axes[k] for k in order], A.shape(node), [val.offsets[k] for k in order])
    return _reorder(A, val, order)


def _reorder(A, val, order):
    """A value with its dimensions reordered: new dimension i is old dimension order[i]."""
    if not A.live(val):
        return FIXED
    if isinstance(val, _Multi):
        return _Multi(tuple(order.index(d) for d in val.dims), val.layout)
    return _T(order.index(val.dim), val.layout)


def _permute(A, node, args, kwargs):
    nd = len(A.shape(args[0]))
    dims = A.const(list(args[1:]) if len(args) > 2 or (len(args) == 2 and isinstance(args[1], int)) else
                   _arg(args, kwargs, 1, "dims"))
    return _permute_dims(A, node, args[0], [int(k) % nd for k in dims])


def _transpose(A, node, args, kwargs):
    nd = len(A.shape(args[0]))
    order = list(range(nd))
    if nd >= 2:
        a = int(A.const(_arg(args, kwargs, 1, "dim0", 0))) % nd
        b = int(A.const(_arg(args, kwargs, 2, "dim1", 1))) % nd
        order[a], order[b] = order[b], order[a]
    return _permute_dims(A, node, args[0], order)


def _t(A, node, args, kwargs):
    nd = len(A.shape(args[0]))
    return _permute_dims(A, node, args[0], list(range(nd))[::-1])


def _movedim(A, node, args, kwargs):
    nd = len(A.shape(args[0]))
    src = _dims(A.const(_arg(args, kwargs, 1, "source")), nd)
    dst = _dims(A.const(_arg(args, kwargs, 2, "destination")), nd)
    order = [None] * nd
    for s, t in zip(src, dst):
        order[t] = s
    rest = iter(k for k in range(nd) if k not in src)
    order = [k if k is not None else next(rest) for k in order]
    return _permute_dims(A, node, args[0], order)


def _cat(A, node, args, kwargs, stack=False):
    tensors = _arg(args, kwargs, 0, "tensors")
    out = A.shape(node)
    dim = int(A.const(_arg(args, kwargs, 1, "dim", 0))) % len(out)
    if isinstance(tensors, fx.Node):  # a list made by another op (split, chunk)
        vals = [(None, v, s) for v, s in zip(A.values[tensors], A.shape(tensors))]
        vals = [(t, FIXED if isinstance(v, _Par) and A.fix(v) is None else v, s) for t, v, s in vals]
    else:
        vals = [(t, A.v(t, allow_par=True), A.shape(t)) for t in tensors]
    live = [v for _, v, _ in vals if isinstance(v, _T) and A.live(v)]
    if not live:
        for _, v, _ in vals:
            A.fix(v)
        return FIXED
    dims = {v.dim for v in live}
    if len(dims) > 1:
        for _, v, _ in vals:
            A.fix(v)
        return FIXED
    d = dims.pop()
    if not stack and d == dim:  # along the channels: the operands' segments one after the other
        layout = []
        for _, v, s in vals:
            if isinstance(v, _T) and A.live(v):
                layout.extend(v.layout)
            else:
                A.fix(v)
                layout.extend(_fixed_layout(s[dim]))
        return _T(d, tuple(layout))
    if any(not isinstance(v, _Par) and not A.live(v) for _, v, _ in vals):
        for _, v, _ in vals:
            A.fix(v)
        return FIXED
    layout = A.unify_all([v.layout for v in live])
    if layout is None:
        for _, v, _ in vals:
            A.fix(v)
        return FIXED
    for _, v, _ in vals:
        if isinstance(v, _Par):
            A.assign(v, {d: layout})
    return _T(d + 1 if stack and dim <= d else d, layout)


def _stack(A, node, args, kwargs):
    return _cat(A, node, args, kwargs, stack=True)


def _split(A, node, args, kwargs):
    x = args[0]
    val, shp, outs = A.v(x, allow_par=True), A.shape(x), A.shape(node)
    nd = len(shp)
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
    removes = "unbind" in str(name)
    dim = int(A.const(_arg(args, kwargs, 1 if removes else 2, "dim", 0))) % nd
    if isinstance(val, _Par):
        if removes:
            keep = [i for i in range(len(val.axes)) if i != dim]
            return tuple(_Par(val.name, [val.axes[i] for i in keep], s, [val.offsets[i] for i in keep]) for s in outs)
        pieces, offset = [], val.offsets[dim]
        for s in outs:  # chunks of a parameter axis: views of its ranges
            pieces.append(_Par(val.name, val.axes, s, val.offsets[:dim] + (offset,) + val.offsets[dim + 1:]))
            offset += s[dim]
        return tuple(pieces)
    if not A.live(val):
        return tuple(FIXED for _ in outs)
    if isinstance(val, _Multi):
        return _split_multi(A, val, shp, outs, dim, removes)
    if dim != val.dim:
        d = val.dim - (1 if removes and dim < val.dim else 0)
        return tuple(_T(d, val.layout) for _ in outs)
    pieces, offset = [], 0
    for s in outs:
        n = 1 if removes else s[dim]
        lay = A.slice_layout(val.layout, offset, offset + n)
        offset += n
        if lay is None or removes:
            A.fix(val)
            return tuple(FIXED for _ in outs)
        pieces.append(_T(dim, lay))
    return tuple(pieces)


def _split_multi(A, val, shp, outs, dim, removes):
    """Splitting a value re-indexed along several dimensions: along the outermost of them
    (q, k, v of a packed projection), each piece is a range of the flattened index."""
    if dim not in val.dims:
        dims = tuple(d - (1 if removes and d > dim else 0) for d in val.dims)
        return tuple(_Multi(dims, val.layout) for _ in outs)
    if dim != val.dims[0]:
        A.fix(val)
        return tuple(FIXED for _ in outs)
    inner = _prod(shp[d] for d in val.dims[1:])
    rest = tuple(d - (1 if removes and d > dim else 0) for d in val.dims[1:]) if removes else val.dims
    pieces, offset = [], 0
    for s in outs:
        n = 1 if removes else s[dim]
        lay = A.slice_layout(val.layout, offset * inner, (offset + n) * inner)
        offset += n
        if lay is None:
            A.fix(val)
            return tuple(FIXED for _ in outs)
        pieces.append(_value(rest, lay))
    return tuple(pieces)


def _index_multi(A, val, shp, items):
    """x[items] for x re-indexed along several dimensions: an index or a range of the
    outermost of them is a range of the flattened index; the others are kept whole."""
    inner = _prod(shp[d] for d in val.dims[1:])
    lo, hi = 0, inner * int(shp[val.dims[0]])
    where: dict[int, int] = {}  # input dimension -> output dimension
    i = o = 0
    for it in items:
        if it is None:
            o += 1
            continue
        if isinstance(it, bool) or not isinstance(it, (int, slice)):
            return None
        if isinstance(it, int):
            if i in val.dims:
                if i != val.dims[0]:
                    return None
                t = it % int(shp[i])
                lo, hi = t * inner, (t + 1) * inner
            i += 1
            continue
        start, stop, step = it.indices(int(shp[i]))
        if i in val.dims and (start, stop, step) != (0, int(shp[i]), 1):
            if i != val.dims[0] or step != 1:
                return None
            lo, hi = start * inner, stop * inner
        where[i] = o
        i += 1
        o += 1
    for k in range(i, len(shp)):
        where[k] = o + k - i
    layout = A.slice_layout(val.layout, lo, hi) if (lo, hi) != (0, _layout_size(val.layout)) else val.layout
    if layout is None:
        return None
    return _value(tuple(where[d] for d in val.dims if d in where), layout)


def _index_value(A, node, val, shp, items):
    """x[items] for items a tuple of int / slice / None / Ellipsis."""
    n_real = sum(1 for it in items if it is not None and it is not Ellipsis)
    out: list = []
    for it in items:
        if it is Ellipsis:
            out.extend([slice(None)] * (len(shp) - n_real))
        else:
            out.append(it)
    if isinstance(val, _Multi):
        return _index_multi(A, val, shp, out)
    i = o = 0
    par_axes: list = []
    par_offsets: list = []
    new_dim, new_layout = None, None
    for it in out:
        if it is None:
            par_axes.append(None)
            par_offsets.append(0)
            o += 1
            continue
        if isinstance(it, bool) or not isinstance(it, (int, slice)):
            return None  # tensor or list indices
        is_ch = isinstance(val, _T) and i == val.dim
        if isinstance(it, int):
            if is_ch:
                return None
            i += 1
            continue
        start, stop, step = it.indices(int(shp[i]))
        full = (start, stop, step) == (0, int(shp[i]), 1)
        if isinstance(val, _Par):  # a range of a parameter axis is a view of it
            par_axes.append(val.axes[i] if full or step == 1 else None)
            par_offsets.append(val.offsets[i] + (start if step == 1 else 0))
        elif is_ch:
            if step != 1:
                return None
            new_layout = A.slice_layout(val.layout, start, stop)
            if new_layout is None:
                return None
            new_dim = o
        i += 1
        o += 1
    if isinstance(val, _Par):
        par_axes.extend(val.axes[i:])
        par_offsets.extend(val.offsets[i:])
        return _Par(val.name, par_axes, A.shape(node), par_offsets)
    if new_dim is None:
        new_dim, new_layout = o + (val.dim - i), val.layout
    return _T(new_dim, new_layout)


def _getitem(A, node, args, kwargs):
    src, idx = args[0], args[1]
    val = A.v(src, allow_par=True)
    if isinstance(val, (tuple, list)):
        i = A.const(idx)
        return tuple(val[i]) if isinstance(i, slice) else val[int(i)]
    if not isinstance(A.shape(src), _Shape):
        return STATIC
    if isinstance(val, (_T, _Multi)) and not A.live(val):
        return FIXED
    if any(isinstance(A.shape(a), _Shape) for a in _nodes_in(idx)):
        A.fix(val)  # indexing by tensors
        A.fix_args(idx, {})
        return FIXED
    items = A.const(idx)
    items = tuple(items) if isinstance(items, tuple) else (items,)
    res = _index_value(A, node, val, A.shape(src), items)
    if res is None:
        A.fix(val)
        return FIXED
    return res


def _indexed(A, node, arg, shp, items):
    """The value of arg[items]: its layout where the index keeps one, else its channels fixed."""
    val = A.v(arg, allow_par=True)
    if isinstance(val, (_T, _Multi)) and not A.live(val):
        return FIXED
    res = _index_value(A, node, val, shp, items)
    if res is None:
        A.fix(val)
        return FIXED
    return res


def _select(A, node, args, kwargs):  # aten.select(x, dim, index)
    shp = A.shape(args[0])
    dim = int(A.const(args[1])) % len(shp)
    items = tuple([slice(None)] * dim + [int(A.const(args[2]))])
    return _indexed(A, node, args[0], shp, items)


def _slice(A, node, args, kwargs):  # aten.slice(x, dim, start, end, step)
    shp = A.shape(args[0])
    dim = int(A.const(_arg(args, kwargs, 1, "dim", 0))) % len(shp)
    start, end = A.const(_arg(args, kwargs, 2, "start")), A.const(_arg(args, kwargs, 3, "end"))
    step = A.const(_arg(args, kwargs, 4, "step", 1))
    if end is not None and end > shp[dim]:
        end = shp[dim]
    items = tuple([slice(None)] * dim + [slice(start, end, step)])
    return _indexed(A, node, args[0], shp, items)


def _index_tensor(A, node, args, kwargs):  # aten.index(x, indices): advanced indexing
    A.fix_args(args, kwargs)
    return FIXED


def _spatial(k: int | None):
    """Ops over the last k dimensions (pooling, interpolation, padding modules)."""

    def rule(A, node, args, kwargs):
        val, shp = A.v(args[0]), A.shape(args[0])
        for a in _nodes_in((args[1:], kwargs)):
            A.fix(A.values[a])
        kk = (len(shp) - 2) if k is None else k
        outs = A.shape(node)
        if not A.live(val):
            return A.out_like(outs, lambda s: FIXED)
        if val.dim >= len(shp) - kk:
            A.fix(val)
            return A.out_like(outs, lambda s: FIXED)
        return A.out_like(outs, lambda s: _T(val.dim, val.layout))

    return rule


def _dim_sensitive(dim_arg: int, dim_name: str):
    """Ops that depend on the order along the dimensions they name (roll, flip, cumsum)."""

    def rule(A, node, args, kwargs):
        val, shp = A.v(args[0]), A.shape(args[0])
        if not A.live(val):
            return FIXED
        dims = A.const(_arg(args, kwargs, dim_arg, dim_name))
        if dims is None or val.dim in _dims(dims, len(shp)):
            A.fix(val)
            return FIXED
        return _T(val.dim, val.layout)

    return rule


def _pad(A, node, args, kwargs):
    val, shp = A.v(args[0]), A.shape(args[0])
    if not A.live(val):
        return FIXED
    pad = list(A.const(_arg(args, kwargs, 1, "pad")))
    mode = A.const(_arg(args, kwargs, 2, "mode", "constant"))
    if (_op_name(node) or "").startswith("constant_pad"):
        mode = "constant"
    nd = len(shp)
    k = nd - 1 - val.dim  # pad pairs run from the last dimension
    if 2 * k + 1 >= len(pad) or (pad[2 * k] == 0 and pad[2 * k + 1] == 0):
        return _T(val.dim, val.layout)
    before, after = pad[2 * k], pad[2 * k + 1]
    n = shp[val.dim]
    if mode != "constant" or before < 0 or after < 0:
        lay = A.slice_layout(val.layout, -min(before, 0), n + min(after, 0)) if mode == "constant" else None
        if lay is None:
            A.fix(val)
            return FIXED
        return _T(val.dim, _fixed_layout(max(before, 0)) + lay + _fixed_layout(max(after, 0)))
    return _T(val.dim, _fixed_layout(before) + tuple(val.layout) + _fixed_layout(after))


def _glu(A, node, args, kwargs):
    val, shp = A.v(args[0]), A.shape(args[0])
    if not A.live(val):
        return FIXED
    dim = int(A.const(_arg(args, kwargs, 1, "dim", -1))) % len(shp)
    if dim != val.dim:
        return _T(val.dim, val.layout)
    half = shp[dim] // 2
    a, b = A.slice_layout(val.layout, 0, half), A.slice_layout(val.layout, half, 2 * half)
    lay = A.unify(a, b) if a is not None and b is not None else None
    if lay is None:
        A.fix(val)
        return FIXED
    return _T(dim, lay)


def _mm_value(A, av, sa, bv, sb):
    """The value of a @ b (both at least 2-D, batch dimensions broadcast) from the operands'
    values, or None where no permutation of theirs is known to pass (the caller fixes them).

    - One operand re-indexed along its rows (a) / columns (b) or batch dimensions, the other
      constant along those batch dimensions: the product is re-indexed alike. Where the other
      differs along them (attention weights with a bias per head), the operand's layout is
      restricted to keep its blocks (heads) in place, with the channels inside them permuted.
    - Both re-indexed along the contracted dimension by one layout: sum_k a[., k] b[k, .]
      is unchanged (a Gram matrix, single-head scores q k^T). Along batch dimensions (heads)
      and the contracted one (the channels inside the heads) together: each head's sum is
      unchanged provided the permutation keeps each head's channels together (the groups are
      restricted so), and the product is re-indexed along the heads.
    - a re-indexed along batch dimensions only (scores over heads) and b along the same ones
      and its columns (values inside heads): the heads of b's layout are a's (united), and
      the product is re-indexed as b.
    """
    na, nb = len(sa), len(sb)
    no = max(na, nb)
    ra = [d + no - na if d < na - 2 else (no - 2 if d == na - 2 else "k") for d in _live_dims(A, av)]
    rb = [d + no - nb if d < nb - 2 else ("k" if d == nb - 2 else no - 1) for d in _live_dims(A, bv)]

    def constant_along(shape, n, out_dims):
        return all(d - (no - n) < 0 or shape[d - (no - n)] == 1 for d in out_dims if d < no - 2)

    if not ra and not rb:
        return FIXED
    if not rb or not ra:
        roles, val, other, n_other = (ra, av, sb, nb) if ra else (rb, bv, sa, na)
        if "k" in roles:
            return None
        if not constant_along(other, n_other, roles):
            # the other operand differs per head (scores with a bias per head): the heads stay,
            # the channels inside each head still permute
            size = (sa if ra else sb)[-2 if ra else -1]
            if roles[-1] < no - 2 or not all(r < no - 2 for r in roles[:-1]):
                return None
            heads = A.heads(val.layout, size)
            if heads is None:
                return None
            A.fix_layout(heads)
        return _value(tuple(roles), val.layout)
    batch = lambda roles: all(r != "k" and r < no - 2 for r in roles)  # noqa: E731
    if ra[-1] == "k" and rb[-1] == "k" and ra[:-1] == rb[:-1] and batch(ra[:-1]):
        layout = A.unify(av.layout, bv.layout)
        if layout is None:
            return None
        if len(ra) == 1:
            return FIXED
        heads = A.heads(layout, sa[-1])
        return None if heads is None else _value(tuple(ra[:-1]), heads)
    if batch(ra) and rb == ra:
        layout = A.unify(av.layout, bv.layout)
        return None if layout is None else _value(tuple(ra), layout)
    if batch(ra) and rb[:-1] == ra and rb[-1] == no - 1:
        heads = A.heads(bv.layout, sb[-1])
        if heads is None or A.unify(av.layout, heads) is None:
            return None
        return _value(tuple(rb), bv.layout)
    return None


def _matmul(A, node, args, kwargs):
    a, b = args[0], args[1]
    av, bv = A.v(a), A.v(b)
    sa, sb = A.shape(a), A.shape(b)
    out = _mm_value(A, av, sa, bv, sb) if len(sa) >= 2 and len(sb) >= 2 else None
    if out is None:
        return _opaque(A, node, args, kwargs)
    return out


def _sdpa(A, node, args, kwargs):
    """scaled_dot_product_attention(q, k, v, attn_mask, ...) = softmax(q k^T * scale + mask) v,
    followed through the rules of `_mm_value`: the mask must be constant along the scores'
    re-indexed dimensions (heads), and the softmax runs over the keys."""
    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
    bound = {n: _arg(args, kwargs, i, n) for i, n in enumerate(names)}
    q, k, v, mask = bound["query"], bound["key"], bound["value"], bound["attn_mask"]
    qv, kv, vv = A.v(q), A.v(k), A.v(v)
    sq, sk, sv = A.shape(q), A.shape(k), A.shape(v)
    if bool(A.const(bound["enable_gqa"])) or A.live(A.v(mask)) or min(len(sq), len(sk), len(sv)) < 2:
        return _opaque(A, node, args, kwargs)
    nk = len(sk)
    kt = _reorder(A, kv, list(range(nk - 2)) + [nk - 1, nk - 2])
    skt = tuple(sk[:-2]) + (sk[-1], sk[-2])
    scores = _mm_value(A, qv, sq, kt, skt)
    ns = max(len(sq), nk)
    batch = [max((int(sh[d - (ns - len(sh))]) if d - (ns - len(sh)) >= 0 else 1) for sh in (sq, sk))
             for d in range(ns - 2)]
    s_shape = _Shape(batch + [sq[-2], sk[-2]])
    if scores is not None and mask is not None:
        sm = A.shape(mask)
        if any(d - (ns - len(sm)) >= 0 and sm[d - (ns - len(sm))] != 1 for d in _live_dims(A, scores)):
            A.fix(scores)  # a mask per head: the heads stay
            scores = FIXED
    if scores is not None and ns - 1 in _live_dims(A, scores):
        scores = None
    out = _mm_value(A, scores, s_shape, vv, sv) if scores is not None else None
    if out is None:
        if scores is not None:
            A.fix(scores)
        return _opaque(A, node, args, kwargs)
    return out


def _linear(A, node, args, kwargs):
    x, w, b = args[0], _arg(args, kwargs, 1, "weight"), _arg(args, kwargs, 2, "bias")
    return _linear_values(A, node, x, A.v(w, allow_par=True), A.v(b, allow_par=True) if b is not None else None)


def _linear_values(A, node, x, w, b):
    shp = A.shape(x)
    last = len(shp) - 1
    if not isinstance(w, _Par) or not (b is None or isinstance(b, _Par)):
        A.fix(A.v(x))
        A.fix(w)
        if b is not None:
            A.fix(b)
        return FIXED
    val = A.v(x)
    if A.live(val) and val.dim != last:
        A.fix(w)  # acts along another dimension than the channels
        if b is not None:
            A.fix(b)
        return _T(val.dim, val.layout)
    lay_in = A.tensor_layout(x, last)
    out = A.fresh(_origin(w), w.shape[0])
    A.assign(w, {0: out, 1: lay_in})
    if b is not None:
        A.assign(b, {0: out})
    return _T(last, out)


def _conv_values(A, node, x, w, b, groups: int, transposed: bool):
    shp = A.shape(x)
    val = A.v(x)
    if not isinstance(w, _Par) or not (b is None or isinstance(b, _Par)):
        for t in (val, w, b):
            A.fix(t)
        return FIXED
    k = len(w.shape) - 2
    ch = len(shp) - k - 1  # channel dimension of the input: 1 batched, 0 unbatched
    c_in = shp[ch]
    if A.live(val) and val.dim != ch:
        A.fix(val)
    lay_in = A.tensor_layout(x, ch)
    c_out = w.shape[1] * groups if transposed else w.shape[0]
    if groups == 1:
        out = A.fresh(_origin(w), c_out)
        A.assign(w, {1: out, 0: lay_in} if transposed else {0: out, 1: lay_in})
    elif groups == c_in and c_out % c_in == 0:  # depthwise: output channel c*m + j follows input channel c
        mult = c_out // c_in
        out = tuple((g, n, bl * mult) for g, n, bl in A.canon(lay_in))
        A.assign(w, {0: lay_in} if transposed else {0: out})
    elif transposed:
        out = _grouped_conv_transposed(A, w, lay_in, groups, c_in, c_out)
    else:
        out = _grouped_conv(A, w, lay_in, groups, c_in, c_out)
    if b is not None:
        A.assign(b, {0: out})
    return _T(ch, out)


def _shared_inside_groups(A, lay_in, groups: int, size: int):
    """The layout of `size` channels that every one of `groups` consecutive runs of them
    follows alike (the runs stay in place); None where that cannot be. A permuted segment
    spanning several runs is split into parts at the runs' edges (a restriction), and the
    runs' layouts are united."""
    runs = [A.slice_layout(lay_in, i * size, (i + 1) * size) for i in range(groups)]
    if any(r is None for r in runs):
        return None
    return A.unify_all(runs)


def _grouped_conv(A, w, lay_in, groups: int, c_in: int, c_out: int):
    """Conv with 1 < groups < in_channels: weight (c_out, c_in / groups, ...), output group i
    reads input group i only. Exact permutations that indexing per axis can express: the
    output channels move inside their group, freely for each group (a block-structured
    permutation whose blocks stay); the input channels inside each group by one permutation
    shared by all groups (the weight's axis 1 indexes the channels inside a group for every
    group at once). Moving whole groups is a symmetry too, but it would permute the input by
    a group permutation combined with one shared permutation inside the groups, which a spec
    cannot declare; so the groups stay in place."""
    inner = _shared_inside_groups(A, lay_in, groups, c_in // groups)
    if inner is None:
        A.fix_layout(lay_in)
        inner = _fixed_layout(c_in // groups)
    per_group = c_out // groups
    if per_group > 1:
        out = A.fresh(_origin(w), c_out)
        A.groups.blocks[out[0][0]] = (0, per_group)  # blocks (the groups) that stay in place
    else:  # one output channel per group: nothing moves
        out = _fixed_layout(c_out)
    A.assign(w, {0: out, 1: inner})
    return out


def _grouped_conv_transposed(A, w, lay_in, groups: int, c_in: int, c_out: int):
    """Transposed conv with 1 < groups < in_channels: weight (c_in, c_out / groups, ...), the
    mirror image of `_grouped_conv`: the input channels move inside their group, freely for
    each group (their groups stay in place), and the output channels inside each group by one
    permutation shared by all groups (the weight's axis 1)."""
    per_group = c_out // groups
    kept = A.heads(lay_in, c_in // groups)  # keeps each group's channels together
    if kept is None:
        A.fix_layout(lay_in)
    else:
        A.fix_layout(kept)  # and each group in its place
    inner = A.fresh(_origin(w), per_group) if per_group > 1 else _fixed_layout(per_group)
    A.assign(w, {0: lay_in, 1: inner})
    return inner * groups


def _conv(A, node, args, kwargs):
    name = _op_name(node)
    x, w, b = args[0], A.v(_arg(args, kwargs, 1, "weight"), allow_par=True), _arg(args, kwargs, 2, "bias")
    b = A.v(b, allow_par=True) if b is not None else None
    if name == "convolution":
        transposed = bool(A.const(_arg(args, kwargs, 6, "transposed", False)))
        groups = int(A.const(_arg(args, kwargs, 8, "groups", 1)))
    else:
        transposed = "transpose" in name
        groups = int(A.const(_arg(args, kwargs, 6, "groups", 1)))
    return _conv_values(A, node, x, w, b, groups, transposed)


def _channel_norm_values(A, node, x, params, num_groups: int | None = None, ch: int | None = None):
    """Norms over dimension 1 (batch norm, instance norm, group norm): per-channel parameters."""
    val, shp = A.v(x), A.shape(x)
    if ch is None:
        ch = 1 if len(shp) > 1 else 0
    if not A.live(val):
        for p in params:
            A.fix(p)
        return FIXED
    if val.dim != ch:  # statistics run over the permuted dimension: unchanged
        for p in params:
            A.fix(p)
        return _T(val.dim, val.layout)
    if num_groups is not None and not A.aligned(val.layout, shp[ch] // num_groups):
        A.fix(val)
        for p in params:
            A.fix(p)
        return FIXED
    for p in params:
        A.assign(p, {0: val.layout})
    return _T(val.dim, val.layout)


def _batch_norm(A, node, args, kwargs):
    params = [A.v(a, allow_par=True) for a in _nodes_in((args[1:], kwargs))]
    return _channel_norm_values(A, node, args[0], [p for p in params if p is not STATIC])


def _group_norm(A, node, args, kwargs):
    g = int(A.const(_arg(args, kwargs, 1, "num_groups")))
    params = [A.v(a, allow_par=True) for a in _nodes_in((args[2:], kwargs))]
    return _channel_norm_values(A, node, args[0], params, g)


def _layer_norm_values(A, node, x, k: int, params):
    """Norms over the last k dimensions: parameters shaped like them."""
    val, shp = A.v(x), A.shape(x)
    if not A.live(val):
        for p in params:
            A.fix(p)
        return FIXED
    axis = val.dim - (len(shp) - k)
    for p in params:
        A.assign(p, {axis: val.layout}) if axis >= 0 else A.fix(p)
    return _T(val.dim, val.layout)


def _layer_norm(A, node, args, kwargs):
    k = len(list(A.const(_arg(args, kwargs, 1, "normalized_shape"))))
    params = [A.v(a, allow_par=True) for a in _nodes_in((args[2:], kwargs))]
    return _layer_norm_values(A, node, args[0], k, params)


def _embedding(A, node, args, kwargs):
    """Embedding lookup: the output features are the weight's columns (a new group)."""
    aten = isinstance(node.target, torch._ops.OpOverload)  # aten.embedding(weight, indices, ...)
    w = A.v(args[0] if aten else _arg(args, kwargs, 1, "weight"), allow_par=True)
    A.fix_args(args[1:] if aten else args[:1], {})
    if not isinstance(w, _Par) or len(w.shape) != 2:
        A.fix_args(args, kwargs)
        return FIXED
    out = A.fresh(_origin(w), w.shape[1])
    A.assign(w, {1: out})
    return _T(len(A.shape(node)) - 1, out)


def _prelu_values(A, node, x, w):
    """PReLU: one slope per channel of dimension 1 (or a single one)."""
    shp, val = A.shape(x), A.v(x)
    if not isinstance(w, _Par):
        A.fix(w)
        A.fix(val)
        return FIXED
    if w.shape[0] == 1 or len(shp) < 2 or not A.live(val):
        A.fix(w)
        return val if A.live(val) else FIXED
    if val.dim == 1:
        A.assign(w, {0: val.layout})
    else:
        A.fix(w)
    return _T(val.dim, val.layout)


def _prelu(A, node, args, kwargs):
    return _prelu_values(A, node, args[0], A.v(_arg(args, kwargs, 1, "weight"), allow_par=True))


# torchvision's functions that fx keeps as leaves


def _shifted_window_attention(A, node, args, kwargs):
    """torchvision's Swin attention: the embedding channels move (qkv columns, proj rows). The
    heads stay (a relative position bias per head is added to the scores), and inside each
    head one permutation of the query and key rows of qkv (unchanged scores; v2's cosine
    attention normalises inside each head) and one of the value rows and proj's columns."""
    bound = inspect.signature(node.target).bind(*args, **kwargs).arguments
    x = bound["input"]
    qkv_w, proj_w = A.v(bound["qkv_weight"], allow_par=True), A.v(bound["proj_weight"], allow_par=True)
    qkv_b, proj_b = bound.get("qkv_bias"), bound.get("proj_bias")
    for other in ("relative_position_bias", "logit_scale"):
        if isinstance(bound.get(other), fx.Node):
            A.fix(A.values[bound[other]])
    last = len(A.shape(x)) - 1
    val = A.v(x)
    if A.live(val) and val.dim != last:
        A.fix(val)
    if not isinstance(qkv_w, _Par) or not isinstance(proj_w, _Par):
        A.fix_args(args, kwargs)
        return FIXED
    c, heads = proj_w.shape[1], int(A.const(bound["num_heads"]))
    qk, vo = A.fresh(f"{_origin(qkv_w)}.qk", c), A.fresh(f"{_origin(qkv_w)}.vo", c)
    for lay in (qk, vo):
        A.groups.blocks[lay[0][0]] = (0, c // heads)  # blocks that stay in place
    A.assign(qkv_w, {0: qk + qk + vo, 1: A.tensor_layout(x, last)})
    if isinstance(qkv_b, fx.Node):
        A.assign(A.v(qkv_b, allow_par=True), {0: qk + qk + vo})
    out = A.fresh(_origin(proj_w), proj_w.shape[0])
    A.assign(proj_w, {0: out, 1: vo})
    if isinstance(proj_b, fx.Node):
        A.assign(A.v(proj_b, allow_par=True), {0: out})
    return _T(last, out)


def _patch_merging_pad(A, node, args, kwargs):
    val, shp = A.v(args[0]), A.shape(args[0])
    if not A.live(val):
        return FIXED
    if val.dim != len(shp) - 1:
        A.fix(val)
        return FIXED
    return _T(val.dim, A.canon(val.layout) * 4)  # the four 2x2 neighbours, concatenated


def _shape_attr(A, node, args, kwargs):
    attr = args[1]
    if attr in ("T", "mT"):
        nd = len(A.shape(args[0]))
        order = list(range(nd))[::-1] if attr == "T" else list(range(nd - 2)) + [nd - 1, nd - 2]
        return _permute_dims(A, node, args[0], order)
    if attr in ("data",):
        return A.v(args[0], allow_par=True)
    if not isinstance(A.shape(node), _Shape) and attr in ("shape", "dtype", "device", "ndim", "is_cuda", "layout",
                                                          "requires_grad", "is_nested", "is_sparse", "is_quantized"):
        return STATIC
    raise _unsupported(node, f"attribute .{attr} of a permuted tensor is not supported")


def _setitem(A, node, args, kwargs):
    """x[idx] = y in place: both are fixed (the write changes x where fx sees no new value)."""
    A.fix_args(args, kwargs)
    return STATIC


ELEMENTWISE = {
    # activations (torch.nn.functional and torch), arithmetic, comparisons, dropout
    "relu", "relu6", "hardtanh", "hardswish", "hardsigmoid", "silu", "mish", "gelu", "elu", "selu", "celu",
    "leaky_relu", "rrelu", "softplus", "softsign", "tanhshrink", "softshrink", "hardshrink", "threshold", "sigmoid",
    "logsigmoid", "log_sigmoid", "tanh", "exp", "exp2", "expm1", "log", "log1p", "log2", "log10", "sqrt", "rsqrt",
    "abs", "absolute", "neg", "negative", "pos", "positive", "sin", "cos", "tan", "erf", "erfc", "erfinv", "square",
    "reciprocal", "sign", "sgn", "floor", "ceil", "round", "trunc", "frac", "clamp", "clip", "clamp_min",
    "clamp_max", "nan_to_num", "pow", "float_power", "add", "sub", "subtract", "rsub", "mul", "multiply", "div",
    "divide", "true_divide", "truediv", "floor_divide", "floordiv", "remainder", "mod", "fmod", "maximum",
    "minimum", "fmax", "fmin", "where", "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or",
    "logical_xor", "logical_not", "and_", "or_", "xor", "atan2", "hypot", "lerp", "addcmul", "addcdiv",
    "masked_fill", "copysign", "xlogy", "isnan", "isinf", "isfinite", "dropout", "dropout1d",
    "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout", "feature_dropout", "stochastic_depth",
    "copy", "fill", "zero", "_prelu_kernel",
}
FIRST_ONLY = {
    "to", "type", "type_as", "float", "double", "half", "bfloat16", "contiguous", "clone", "detach", "cpu", "cuda",
    "requires_grad", "_to_copy", "alias", "lift_fresh_copy", "identity", "_assert_tensor_metadata",
}
SOFTMAX = {"softmax", "log_softmax", "softmin", "_softmax", "_log_softmax"}
REDUCTIONS = {"mean", "sum", "amax", "amin", "prod", "std", "var", "norm", "logsumexp", "all", "any", "nansum",
              "nanmean", "var_mean", "std_mean", "count_nonzero", "aminmax"}
ORDER_REDUCTIONS = {"max", "min", "argmax", "argmin", "median", "mode", "kthvalue", "cummax", "cummin"}
RESHAPES = {"view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "view_as", "reshape_as",
            "_unsafe_view", "_reshape_alias", "ravel"}
EXPANDS = {"expand", "expand_as", "broadcast_to"}
CREATION = {"zeros_like", "ones_like", "full_like", "empty_like", "rand_like", "randn_like", "randint_like",
            "new_zeros", "new_ones", "new_full", "new_empty", "new_tensor", "size", "dim", "numel", "nelement",
            "sym_size", "sym_numel", "sym_stride", "stride", "_assert", "is_floating_point", "is_contiguous",
            "get_device", "element_size"}
READS = {"item", "tolist", "_local_scalar_dense", "nonzero", "unique", "masked_select", "bool_"}
OPAQUE = {"baddbmm", "addmm", "addbmm", "addmv", "mv", "einsum", "bilinear", "cdist",
          "outer", "kron", "_native_multi_head_attention",
          "multi_head_attention_forward", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle",
          "native_channel_shuffle", "local_response_norm", "_get_relative_position_bias",
          "cosine_similarity", "normalize", "dot", "tensordot", "inner"}

RULES = {name: _elementwise for name in ELEMENTWISE}
RULES.update({name: _first_only for name in FIRST_ONLY})
RULES.update({name: _softmax_like for name in SOFTMAX})
RULES.update({name: _reduce for name in REDUCTIONS})
RULES.update({name: _reduce_order for name in ORDER_REDUCTIONS})
RULES.update({name: _reshape for name in RESHAPES})
RULES.update({name: _expand for name in EXPANDS})
RULES.update({name: _static_result for name in CREATION})
RULES.update({name: _read_values for name in READS})
RULES.update({name: _opaque for name in OPAQUE})
RULES.update({
    "repeat": _repeat, "tile": _repeat, "permute": _permute, "transpose": _transpose, "swapaxes": _transpose,
    "swapdims": _transpose, "t": _t, "numpy_T": _t, "movedim": _movedim, "moveaxis": _movedim, "cat": _cat,
    "concat": _cat, "concatenate": _cat, "stack": _stack, "chunk": _split, "split": _split,
    "split_with_sizes": _split, "tensor_split": _split, "unbind": _split, "unsafe_split": _split,
    "unsafe_chunk": _split, "getitem": _getitem, "select": _select, "slice": _slice, "index": _index_tensor,
    "pad": _pad, "constant_pad_nd": _pad, "glu": _glu, "roll": _dim_sensitive(2, "dims"),
    "flip": _dim_sensitive(1, "dims"), "cumsum": _dim_sensitive(1, "dim"), "cumprod": _dim_sensitive(1, "dim"),
    "linear": _linear, "conv1d": _conv, "conv2d": _conv, "conv3d": _conv, "convolution": _conv,
    "conv_transpose1d": _conv, "conv_transpose2d": _conv, "conv_transpose3d": _conv, "batch_norm": _batch_norm,
    "instance_norm": _batch_norm, "group_norm": _group_norm, "layer_norm": _layer_norm, "rms_norm": _layer_norm,
    "getattr": _shape_attr, "setitem": _setitem, "prelu": _prelu, "embedding": _embedding,
    "interpolate": _spatial(None), "upsample": _spatial(None),
    "shifted_window_attention": _shifted_window_attention, "_patch_merging_pad": _patch_merging_pad,
    "matmul": _matmul, "mm": _matmul, "bmm": _matmul, "scaled_dot_product_attention": _sdpa,
})
# Rules that follow values re-indexed along several dimensions (heads); any other rule gets
# such an operand fixed first.
MULTI_RULES = {_reshape, _permute, _transpose, _t, _movedim, _first_only, _elementwise, _softmax_like,
               _static_result, _read_values, _opaque, _shape_attr, _getitem, _select, _slice, _split, _matmul,
               _sdpa, _setitem, _index_tensor}
for _k in (1, 2, 3):
    for _p in ("max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool", "lp_pool",
               "max_pool{}_with_indices", "adaptive_max_pool{}_with_indices", "reflection_pad", "replication_pad",
               "_adaptive_avg_pool", "upsample_nearest", "upsample_bilinear", "upsample_bicubic", "upsample_linear",
               "upsample_trilinear", "_upsample_nearest_exact", "_upsample_bilinear", "circular_pad"):
        RULES[_p.format(_k) if "{}" in _p else f"{_p}{_k}d"] = _spatial(_k)
RULES["_upsample_bilinear2d_aa"] = _spatial(2)
RULES["_upsample_bicubic2d_aa"] = _spatial(2)

_OPERATORS = {
    operator.add: "add", operator.iadd: "add", operator.sub: "sub", operator.isub: "sub", operator.mul: "mul",
    operator.imul: "mul", operator.truediv: "div", operator.itruediv: "div", operator.floordiv: "floor_divide",
    operator.ifloordiv: "floor_divide", operator.mod: "remainder", operator.pow: "pow", operator.ipow: "pow",
    operator.neg: "neg", operator.pos: "pos", operator.getitem: "getitem", operator.setitem: "setitem",
    operator.matmul: "matmul", operator.imatmul: "matmul", operator.eq: "eq", operator.ne: "ne", operator.lt: "lt",
    operator.le: "le", operator.gt: "gt", operator.ge: "ge", operator.and_: "and_", operator.or_: "or_",
    operator.xor: "xor", operator.abs: "abs", operator.invert: "logical_not", getattr: "getattr",
}
_TORCH_MODULES = ("torch", "torch.nn.functional", "torch._C._nn", "torch.functional", "torch._C._VariableFunctions",
                  "torch._C._special", "torch.special", "torch._tensor", "_operator", "operator", "builtins")
_TORCHVISION = {"stochastic_depth", "shifted_window_attention", "_get_relative_position_bias", "_patch_merging_pad"}


def _op_name(node: fx.Node) -> str | None:
    t = node.target
    if node.op == "call_method":
        name = t
    elif isinstance(t, torch._ops.OpOverload):
        name = t._opname
    elif isinstance(t, torch._ops.OpOverloadPacket):
        name = t._qualified_op_name.split("::")[-1]
    elif t in _OPERATORS if _hashable(t) else False:
        return _OPERATORS[t]
    else:
        mod = getattr(t, "__module__", None) or ""
        name = getattr(t, "__name__", None)
        if name is None:
            return None
        if mod.startswith("torchvision."):
            return name if name in _TORCHVISION else None
        if mod not in _TORCH_MODULES and not mod.startswith("torch.nn.functional"):
            return None
    if name not in RULES and name.endswith("_") and not name.startswith("_") and name[:-1] in RULES:
        name = name[:-1]  # in-place variant
    if name not in RULES and name.startswith("__") and name.endswith("__"):
        inner = name.strip("_")
        inner = {"truediv": "div", "radd": "add", "rmul": "mul", "rsub": "rsub", "iadd": "add", "imul": "mul",
                 "isub": "sub", "itruediv": "div", "rtruediv": "div", "and": "and_", "or": "or_"}.get(inner, inner)
        name = inner if inner in RULES else name
    return name


def _hashable(t) -> bool:
    try:
        hash(t)
        return True
    except TypeError:
        return False


# ------------------------------------------------------------------ torch.nn modules fx keeps as leaves


def _par(A, prefix: str, name: str):
    key = f"{prefix}.{name}" if prefix else name
    shape = A.state_shapes.get(key)
    return None if shape is None else _Par(key, range(len(shape)), shape)


def _m_linear(A, node, m, prefix):
    return _linear_values(A, node, node.args[0], _par(A, prefix, "weight"), _par(A, prefix, "bias"))


def _m_conv(A, node, m, prefix):
    transposed = isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d))
    return _conv_values(A, node, node.args[0], _par(A, prefix, "weight"), _par(A, prefix, "bias"), m.groups, transposed)


def _m_batch_norm(A, node, m, prefix):
    params = [_par(A, prefix, n) for n in ("weight", "bias", "running_mean", "running_var")]
    unbatched = (isinstance(m, nn.modules.instancenorm._InstanceNorm)
                 and len(A.shape(node.args[0])) == m._get_no_batch_dim())
    params = [p for p in params if p is not None]
    return _channel_norm_values(A, node, node.args[0], params, ch=0 if unbatched else None)


def _m_group_norm(A, node, m, prefix):
    params = [_par(A, prefix, n) for n in ("weight", "bias")]
    return _channel_norm_values(A, node, node.args[0], [p for p in params if p is not None], m.num_groups)


def _m_layer_norm(A, node, m, prefix):
    params = [_par(A, prefix, n) for n in ("weight", "bias")]
    return _layer_norm_values(A, node, node.args[0], len(m.normalized_shape), [p for p in params if p is not None])


def _m_prelu(A, node, m, prefix):
    return _prelu_values(A, node, node.args[0], _par(A, prefix, "weight"))


def _m_elementwise(A, node, m, prefix):
    return A.v(node.args[0])


def _m_reshape(A, node, m, prefix):
    return _reshape(A, node, node.args, {})


def _m_spatial(A, node, m, prefix):
    name = type(m).__name__
    k = int(name[-2]) if name.endswith("d") and name[-2].isdigit() else None
    return _spatial(k)(A, node, node.args, {})


def _m_glu(A, node, m, prefix):
    return _glu(A, node, (node.args[0], m.dim), {})


def _m_opaque(A, node, m, prefix):
    A.fix_args(node.args, node.kwargs)
    return A.out_like(A.shape(node), lambda s: FIXED)


def _m_softmax(A, node, m, prefix):
    dim = -3 if isinstance(m, nn.Softmax2d) else m.dim
    return _softmax_like(A, node, (node.args[0], dim), {})


def _m_embedding(A, node, m, prefix):
    A.fix_args(node.args, node.kwargs)
    w = _par(A, prefix, "weight")
    out = A.fresh(prefix, w.shape[1])
    A.assign(w, {1: out})
    return _T(len(A.shape(node)) - 1, out)


def _m_attention(A, node, m, prefix):
    """nn.MultiheadAttention: the embedding channels of query/key/value go to the input
    projection's columns; its output is a new group (output projection rows). Inside, the
    heads permute as blocks: one permutation (qk) of the query and key projections' rows, one
    (vo) of the value projection's rows and the output projection's columns, both made of
    head_dim blocks moved by one head permutation (see spec.py for why this is exact)."""
    bound = inspect.signature(m.forward).bind(*node.args, **node.kwargs).arguments
    q, k, v = bound["query"], bound["key"], bound["value"]
    for other in ("key_padding_mask", "attn_mask"):
        if isinstance(bound.get(other), fx.Node):
            A.fix(A.values[bound[other]])
    lays = []
    for t in (q, k, v):
        last = len(A.shape(t)) - 1
        val = A.v(t)
        if A.live(val) and val.dim != last:
            A.fix(val)
        lays.append(A.tensor_layout(t, last))
    e, heads = m.embed_dim, m.num_heads
    head = A.groups.new(f"{prefix}:heads")
    qk, vo = A.fresh(f"{prefix}.qk", e), A.fresh(f"{prefix}.vo", e)
    for lay in (qk, vo):
        A.groups.blocks[lay[0][0]] = (head, m.head_dim)
    if m._qkv_same_embed_dim:
        lay = A.unify_all(lays)
        A.assign(_par(A, prefix, "in_proj_weight"), {0: qk + qk + vo, 1: lay} if lay is not None else {0: qk + qk + vo})
    else:
        for name, lay, rows in zip(("q_proj_weight", "k_proj_weight", "v_proj_weight"), lays, (qk, qk, vo)):
            A.assign(_par(A, prefix, name), {0: rows, 1: lay})
    for name, lay in (("in_proj_bias", qk + qk + vo), ("bias_k", qk), ("bias_v", vo)):
        p = _par(A, prefix, name)
        if p is not None:
            A.assign(p, {len(p.shape) - 1: lay})
    out = A.fresh(f"{prefix}.out_proj", e)
    A.assign(_par(A, prefix, "out_proj.weight"), {0: out, 1: vo})
    bias = _par(A, prefix, "out_proj.bias")
    if bias is not None:
        A.assign(bias, {0: out})
    shapes = A.shape(node)
    first = _T(len(shapes[0]) - 1, out)
    rest = tuple(FIXED if isinstance(s, _Shape) else STATIC for s in shapes[1:])
    per_head = A.const(bound.get("need_weights", True)) and not A.const(bound.get("average_attn_weights", True))
    if rest and per_head and isinstance(shapes[1], _Shape):  # (N, heads, L, S): moves with the heads
        rest = (_T(len(shapes[1]) - 3, ((head, heads, 1),)),) + rest[1:]
    return (first,) + rest


_ELEMENTWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish,
    nn.Hardsigmoid, nn.Hardtanh, nn.Hardshrink, nn.Softshrink, nn.Tanhshrink, nn.Softplus, nn.Softsign, nn.Sigmoid,
    nn.LogSigmoid, nn.Tanh, nn.Threshold, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
    nn.AlphaDropout, nn.FeatureAlphaDropout,
)
_SPATIAL_MODULES = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    nn.LPPool1d, nn.LPPool2d, nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d, nn.ZeroPad1d,
    nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d, nn.ReflectionPad1d,
    nn.ReflectionPad2d, nn.ReflectionPad3d, nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d,
    nn.CircularPad1d, nn.CircularPad2d, nn.CircularPad3d,
)
MODULE_RULES = {t: _m_elementwise for t in _ELEMENTWISE_MODULES}
MODULE_RULES.update({t: _m_spatial for t in _SPATIAL_MODULES})
MODULE_RULES.update({
    nn.Linear: _m_linear, nn.Conv1d: _m_conv, nn.Conv2d: _m_conv, nn.Conv3d: _m_conv, nn.ConvTranspose1d: _m_conv,
    nn.ConvTranspose2d: _m_conv, nn.ConvTranspose3d: _m_conv, nn.BatchNorm1d: _m_batch_norm,
    nn.BatchNorm2d: _m_batch_norm, nn.BatchNorm3d: _m_batch_norm, nn.SyncBatchNorm: _m_batch_norm,
    nn.InstanceNorm1d: _m_batch_norm, nn.InstanceNorm2d: _m_batch_norm, nn.InstanceNorm3d: _m_batch_norm,
    nn.GroupNorm: _m_group_norm, nn.LayerNorm: _m_layer_norm, nn.PReLU: _m_prelu, nn.Flatten: _m_reshape,
    nn.Unflatten: _m_reshape, nn.Softmax: _m_softmax, nn.LogSoftmax: _m_softmax, nn.Softmin: _m_softmax,
    nn.Softmax2d: _m_softmax, nn.GLU: _m_glu, nn.MultiheadAttention: _m_attention, nn.Embedding: _m_embedding,
    nn.LocalResponseNorm: _m_opaque, nn.ChannelShuffle: _m_opaque, nn.PixelShuffle: _m_opaque,
    nn.PixelUnshuffle: _m_opaque,
})
if hasattr(nn, "RMSNorm"):
    MODULE_RULES[nn.RMSNorm] = _m_layer_norm


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return type(m) in MODULE_RULES


# ------------------------------------------------------------------ tracing


class _NodeFailed(Exception):
    def __init__(self, node: fx.Node, error: Exception):
        super().__init__(str(error))
        self.node, self.error = node, error


def _describe(r):
    if isinstance(r, torch.Tensor):
        return _Shape(int(s) for s in r.shape), None
    if isinstance(r, (tuple, list)) and any(isinstance(x, torch.Tensor) for x in r):
        return tuple(_describe(x)[0] for x in r), None
    return None, r


class _Prop(fx.Interpreter):
    """Runs the graph on the example input, keeping each node's output shape (and the value
    of non-tensor outputs such as shapes)."""

    def run_node(self, n):
        try:
            r = super().run_node(n)
        except Exception as e:
            raise _NodeFailed(n, e) from e
        n.meta["lmc_shape"], n.meta["lmc_value"] = _describe(r)
        return r


def _fx_graphs(model: nn.Module, x: torch.Tensor) -> list[fx.GraphModule]:
    graphs, codes = [], set()
    for training in (False, True):
        model.train(training)
        tracer = _Tracer()
        graph = tracer.trace(model)
        gm = fx.GraphModule(tracer.root, graph)
        if gm.code not in codes:
            codes.add(gm.code)
            graphs.append(gm)
    model.eval()
    for gm in graphs:
        _propagate(gm, x)
    return graphs


def _propagate(gm: fx.GraphModule, x: torch.Tensor) -> None:
    """Shapes of every node: with fake tensors (no arithmetic) where every op supports them,
    else by running the graph on the example input."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    try:
        with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True) as mode:
            _Prop(gm).run(mode.from_tensor(x))
        return
    except Exception:
        pass
    with torch.no_grad():
        _Prop(gm).run(x)


def _export_graphs(model: nn.Module, x: torch.Tensor):
    graphs = []
    for training in (False, True):
        model.train(training)
        ep = torch.export.export(model, (x,))
        sig = ep.graph_signature
        names = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}
        for n in ep.graph.nodes:
            val = n.meta.get("val")
            if isinstance(val, (tuple, list)):
                n.meta["lmc_shape"] = tuple(_describe(v)[0] for v in val)
                n.meta["lmc_value"] = None
            else:
                n.meta["lmc_shape"], n.meta["lmc_value"] = _describe(val)
            if isinstance(n.meta["lmc_value"], torch.SymInt):
                n.meta["lmc_value"] = int(n.meta["lmc_value"])
        graphs.append((ep.graph, names))
    return graphs


def _analyse_fx(A: _Analysis, gm: fx.GraphModule) -> None:
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        A.node = node
        if node.op == "placeholder":
            A.values[node] = FIXED
        elif node.op == "get_attr":
            shape = A.state_shapes.get(node.target)
            A.values[node] = _Par(node.target, range(len(shape)), shape) if shape is not None else (
                FIXED if isinstance(node.meta.get("lmc_shape"), _Shape) else STATIC)
        elif node.op == "call_module":
            m = modules[node.target]
            rule = MODULE_RULES[type(m)]
            if rule not in (_m_elementwise, _m_softmax):
                _fix_multi(A, node)
            A.values[node] = rule(A, node, m, node.target)
        elif node.op in ("call_function", "call_method"):
            A.values[node] = _apply_rule(A, node)
        elif node.op == "output":
            A.fix_args(node.args, node.kwargs)
        else:
            raise _unsupported(node, f"graph operation {node.op} is not supported")


def _analyse_export(A: _Analysis, graph: fx.Graph, names: dict) -> None:
    for node in graph.nodes:
        A.node = node
        if node.op == "placeholder":
            name = names.get(node.name)
            if name is not None and name in A.state_shapes:
                A.values[node] = _Par(name, range(len(A.state_shapes[name])), A.state_shapes[name])
            else:
                A.values[node] = FIXED if isinstance(node.meta.get("lmc_shape"), _Shape) else STATIC
        elif node.op == "call_function":
            A.values[node] = _apply_rule(A, node)
        elif node.op == "output":
            A.fix_args(node.args, node.kwargs)
        elif node.op == "get_attr":
            A.values[node] = FIXED if isinstance(node.meta.get("lmc_shape"), _Shape) else STATIC
        else:
            raise _unsupported(node, f"graph operation {node.op} is not supported")


def _apply_rule(A: _Analysis, node: fx.Node):
    inputs = [A.values[a] for a in _nodes_in((node.args, node.kwargs))]
    if not any(A.live(v) for v in inputs):
        # computed from fixed values only (shapes, constants, fixed tensors): the same in the permuted network
        return A.out_like(node.meta.get("lmc_shape"), lambda s: FIXED)
    name = _op_name(node)
    rule = RULES.get(name) if name is not None else None
    if rule is None:
        what = f"method .{node.target}()" if node.op == "call_method" else f"function {_target_name(node.target)}"
        raise _unsupported(node, f"{what} on a permuted tensor has no rule")
    if rule not in MULTI_RULES:
        _fix_multi(A, node)
    return rule(A, node, node.args, node.kwargs)


def _fix_multi(A: _Analysis, node: fx.Node) -> None:
    """Operands re-indexed along several dimensions, for a rule that follows one: fixed (then
    they are the same in the permuted network, which the rule can follow)."""
    for a in _nodes_in((node.args, node.kwargs)):
        val = A.values[a]
        if isinstance(val, _Multi):
            A.fix(val)
            A.values[a] = FIXED
        elif isinstance(val, tuple) and any(isinstance(x, _Multi) for x in val):
            for x in val:
                if isinstance(x, _Multi):
                    A.fix(x)
            A.values[a] = tuple(FIXED if isinstance(x, _Multi) else x for x in val)


# ------------------------------------------------------------------ the spec


def _spec(A: _Analysis, model: nn.Module) -> PermutationSpec:
    A.finish_ranges()
    state = model.state_dict()
    floating = [k for k, v in state.items() if v.is_floating_point()]
    groups = A.groups

    def layouts():
        return {k: [A.canon(lay) if lay is not None else _fixed_layout(n)
                    for lay, n in zip(A.params.get(k, [None] * state[k].dim()), state[k].shape)] for k in floating}

    def segments():
        return [seg for per_axis in layouts().values() for lay in per_axis for seg in lay]

    # A head permutation is not a permutation of the spec, only the outer one of blocks: one
    # that would also move a parameter axis (a per-head scale), or whose own units are split
    # or blocked (heads of heads), is fixed.
    while True:
        heads = groups.head_roots()
        bad = {g for g, _, _ in segments() if g in heads} | {h for h in heads if h in groups.blocks or h in groups.parts}
        if not bad:
            break
        for g in bad:
            groups.fix(g)

    def plain(lay) -> bool:
        return len(lay) == 1 and lay[0][2] == 1 and lay[0][0] != 0

    # A permutation must act on at least one plain axis (whose size it has), or be block-structured
    # (blocks give its size); one that would only move composite axes is fixed.
    plain_groups = {lay[0][0] for per_axis in layouts().values() for lay in per_axis if plain(lay)}
    for g, _, _ in segments():
        if g != 0 and g not in plain_groups and groups.find(g) not in groups.blocks:
            groups.fix(g)
    # A block-structured group that moves no parameter is the identity in the permuted network,
    # so the blocks it shares with others stay in place.
    used = {g for g, _, _ in segments()}
    for r in [r for r in groups.blocks if groups.find(r) == r and r not in used]:
        groups.fix(r)

    names: dict[int, str] = {}
    taken: set[str] = set()

    def name_of(g: int, prefix: str = "P") -> str:
        if g not in names:
            base = f"{prefix}_{groups.origin[g]}"
            name, i = base, 1
            while name in taken:
                i += 1
                name = f"{base}#{i}"
            taken.add(name)
            names[g] = name
        return names[g]

    axes: dict[str, tuple] = {}
    composite: dict[str, dict[int, tuple]] = {}
    blocks: dict[str, tuple] = {}
    final = layouts()
    for k in floating:
        per_axis = []
        for axis, lay in enumerate(final[k]):
            for g, n, _ in lay:
                if g in groups.blocks and name_of(g) not in blocks:
                    h, m = groups.blocks[g]
                    h = groups.find(h)
                    blocks[name_of(g)] = (None if h == 0 else name_of(h, "H"), n // m, m)
            if all(g == 0 for g, _, _ in lay):
                per_axis.append(None)
            elif plain(lay):
                per_axis.append(name_of(lay[0][0]))
            else:
                per_axis.append(None)
                composite.setdefault(k, {})[axis] = tuple(
                    (None if g == 0 else name_of(g), n, b) for g, n, b in lay)
        axes[k] = tuple(per_axis)
    return PermutationSpec.from_axes(axes, composite, blocks)


def _input_error(x: torch.Tensor, node: fx.Node | None, error: Exception) -> LmcClaimsError:
    where = f" at graph node {node.name!r} ({_target_name(node.target)})" if node is not None else ""
    msg = str(error).strip().splitlines()
    return LmcClaimsError(
        f"Cannot derive a permutation spec: the model fails on the example input of shape {tuple(x.shape)} "
        f"(dtype {x.dtype}){where}: {type(error).__name__}: {msg[0] if msg else ''}",
        "pass an example input the model accepts: a small batch shaped like its training data, "
        "(batch, channels, height, width) for image models, e.g. torch.zeros(2, 3, 32, 32).",
    )


def _runs(model: nn.Module, x: torch.Tensor) -> Exception | None:
    try:
        with torch.no_grad():
            model(x)
    except Exception as e:
        return e
    return None


def derive_spec(model: nn.Module, example_input: torch.Tensor, *, tracer: str = "auto") -> PermutationSpec:
    """The permutation spec of `model`, derived from its graph on `example_input` (a small batch).

    `tracer`: "fx" (torch.fx.symbolic_trace), "export" (torch.export.export) or "auto" (fx,
    falling back to export where fx cannot trace the model or meets an op it has no rule for).
    """
    if tracer not in ("auto", "fx", "export"):
        raise ValueError(f"tracer must be 'auto', 'fx' or 'export', not {tracer!r}")
    if not isinstance(example_input, torch.Tensor):
        raise LmcClaimsError(
            f"Cannot derive a permutation spec: the example input is a {type(example_input).__name__}, not a tensor.",
            "pass one batch of inputs as a tensor, e.g. torch.zeros(2, 3, 32, 32).")
    first = next((p for p in model.parameters() if p.is_floating_point()), None)
    x = example_input
    if first is not None and x.is_floating_point() and x.dtype != first.dtype:
        x = x.to(first.dtype)
    was_training = model.training
    buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
    try:
        return _derive(model, x, tracer)
    finally:
        with torch.no_grad():
            for k, b in model.named_buffers():
                if k in buffers:
                    b.copy_(buffers[k])
        model.train(was_training)


def _derive(model: nn.Module, x: torch.Tensor, tracer: str) -> PermutationSpec:
    fx_error: LmcClaimsError | None = None
    if tracer in ("auto", "fx"):
        try:
            graphs = _fx_graphs(model, x)
        except _NodeFailed as e:
            if _runs(model, x) is not None:
                raise _input_error(x, e.node, e.error) from None
            fx_error = LmcClaimsError(
                f"Cannot derive a permutation spec: the torch.fx graph of {type(model).__name__} fails at node "
                f"{e.node.name!r} ({type(e.error).__name__}: {e.error}) although the model runs.",
                "remove Python control flow on shapes or values from forward(), or " + HAND_WRITTEN + ".")
        except Exception as e:  # fx raises many types for untraceable control flow
            fx_error = LmcClaimsError(
                f"Cannot derive a permutation spec: torch.fx could not trace {type(model).__name__} "
                f"({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}).",
                "remove data-dependent Python control flow from forward(), or " + HAND_WRITTEN + ".")
        else:
            try:
                A = _Analysis(model)
                for gm in graphs:
                    _analyse_fx(A, gm)
                return _spec(A, model)
            except _Unsupported as e:
                fx_error = e
        if tracer == "fx":
            raise fx_error
    try:
        graphs = _export_graphs(model, x)
    except Exception as e:
        failure = _runs(model, x)
        if failure is not None:
            raise _input_error(x, None, failure) from None
        if fx_error is not None and isinstance(fx_error, _Unsupported):
            raise fx_error from None
        detail = str(e).strip().splitlines()
        raise LmcClaimsError(
            (fx_error.problem + " " if fx_error is not None else "Cannot derive a permutation spec: ")
            + f"torch.export could not trace it either ({type(e).__name__}: {detail[0] if detail else ''}).",
            "remove data-dependent Python control flow from forward() (branches on tensor values), or "
            + HAND_WRITTEN + ".") from None
    try:
        A = _Analysis(model)
        for graph, names in graphs:
            _analyse_export(A, graph, names)
        return _spec(A, model)
    except _Unsupported as e:
        raise (fx_error if fx_error is not None and isinstance(fx_error, _Unsupported) else e) from None
