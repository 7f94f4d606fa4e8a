"""Part of why every derived permutation is an exact symmetry (the argument starts in
`permutation/derive/__init__.py`): with the parameters permuted as the spec says, every value of the
permuted network equals the original one re-indexed along its channel dimension by its layout.
The rules here keep this true:
- Element-wise ops (every activation in torch.nn / torch.nn.functional, arithmetic, dropout,
  torchvision's StochasticDepth, softmax along any dimension) unite the layouts of their
  operands, broadcasting included: a squeeze-and-excitation gate shares the gated tensor's
  permutation, a per-channel parameter (layer scale, class token, position embedding, PReLU)
  takes the layout of the dimension it is broadcast along. A fixed operand that varies along
  the channels fixes the others.
- Pooling, padding, interpolation, rolls and flips over other dimensions keep the layout.
  Reductions over the channels (mean, sum, amax, ...) give a fixed value.
- Shape reads (x.shape, x.size(), getitem on them) and anything computed from fixed values
  only are fixed: they are the same in the permuted network.
Dropout is a symmetry in distribution (identity in eval mode): a random mask at the same
positions meets permuted channels.
"""

from __future__ import annotations

from torch import fx

from ..analysis import _Analysis, _arg, _dims, _nodes_in
from ..values import FIXED, STATIC, _Multi, _Par, _Shape, _T, _op_of, _unsupported
from .shape import _permute_dims, _reshape_par


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
    name = _op_of(node)
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
