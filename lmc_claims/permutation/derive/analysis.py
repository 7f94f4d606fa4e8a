"""Layouts. Every tensor in the graph carries a *layout*: the dimension holding its channels and,
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
"""

from __future__ import annotations

import math

import torch
from torch import fx
from torch import nn

from .groups import _Groups
from .values import FIXED, STATIC, _Multi, _Par, _Shape, _T, _unsupported


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
