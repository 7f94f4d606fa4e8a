"""Part of why every derived permutation is an exact symmetry (the argument starts in
`permutation/derive/__init__.py`): with the parameters permuted as the spec says, every value of the
permuted network equals the original one re-indexed along its channel dimension by its layout.
The rules here keep this true:
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
- Norms (BatchNorm, InstanceNorm, LayerNorm over the last dimensions, RMSNorm, GroupNorm whose
  groups the layout keeps intact): per-channel parameters follow the layout; statistics over
  permuted channels are unchanged.
Matrix products with a fixed operand along permuted channels keep those channels fixed.
"""

from __future__ import annotations

import torch

from ..analysis import _arg, _fixed_layout, _nodes_in, _origin
from ..values import FIXED, STATIC, _Par, _T, _op_of
from .pointwise import _opaque
from .shape import _live_dims, _value


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
    weight = A.v(b, allow_par=True)
    if isinstance(weight, _Par) and len(weight.shape) == 2 and len(A.shape(a)) >= 1:
        return _weight_on_right(A, a, weight)  # x @ W: a linear layer written out
    av, bv = A.v(a), A.v(b)
    sa, sb = A.shape(a), A.shape(b)
    out = _mm_value(A, av, sa, bv, sb) if len(sa) >= 2 and len(sb) >= 2 else None
    if out is None:
        return _opaque(A, node, args, kwargs)
    return out


def _weight_on_right(A, x, w):
    """x @ W for a 2-D parameter W of shape (in, out) (torch.matmul, @, torch.addmm, torch.mm): the
    linear layer F.linear(x, W.T) written out, so its rows take the input's layout and its columns
    start a new group, as a Linear's weight axes 1 and 0 do."""
    shp = A.shape(x)
    last = len(shp) - 1
    val = A.v(x)
    if A.live(val) and val.dim != last:
        A.fix(w)  # the product runs along another dimension than the channels
        return _T(val.dim, val.layout)
    out = A.fresh(_origin(w), w.shape[1])
    A.assign(w, {0: A.tensor_layout(x, last), 1: out})
    return _T(last, out)


def _addmm(A, node, args, kwargs):
    """torch.addmm(bias, x, W) = bias + x @ W: the written-out linear layer, its bias following the
    output's layout (any other form of the op, e.g. a parameter on the left, stays fixed)."""
    bias, x, w = args[0], args[1], args[2]
    weight, bv = A.v(w, allow_par=True), A.v(bias, allow_par=True)
    if not (isinstance(weight, _Par) and len(weight.shape) == 2) or not (isinstance(bv, _Par) or not A.live(bv)):
        return _opaque(A, node, args, kwargs)
    out = _weight_on_right(A, x, weight)
    if isinstance(bv, _Par):
        if len(bv.shape) == 1 and bv.shape[0] == weight.shape[1] and out.dim is not None:
            A.assign(bv, {0: out.layout})
        else:
            A.fix(bv)
            A.fix(out)
            return FIXED
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
    name = _op_of(node)
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
