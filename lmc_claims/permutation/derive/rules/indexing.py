"""Part of why every derived permutation is an exact symmetry (the argument starts in
`permutation/derive/__init__.py`): with the parameters permuted as the spec says, every value of the
permuted network equals the original one re-indexed along its channel dimension by its layout.
The rules here keep this true:
- Concatenation along the channels
  joins the operands' segments; along another dimension it unites their layouts. Slices and
  splits of the channels keep the segments they cut out whole, splitting a group into parts
  between its blocks where they cut it (an index into the outermost of several re-indexed
  dimensions, q/k/v of a packed projection, is such a slice).
"""

from __future__ import annotations

from torch import fx

from ..analysis import _arg, _fixed_layout, _layout_size, _nodes_in, _prod
from ..values import FIXED, STATIC, _Multi, _Par, _Shape, _T, _op_of
from .shape import _value


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


def _pad(A, node, args, kwargs):
    val, shp = A.v(args[0]), A.shape(args[0])
    if not A.live(val):
        return FIXED
    pad = list(A.const(_arg(args, kwargs, 1, "pad")))
    mode = A.const(_arg(args, kwargs, 2, "mode", "constant"))
    if (_op_of(node) or "").startswith("constant_pad"):
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
