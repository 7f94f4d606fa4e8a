"""Part of why every derived permutation is an exact symmetry (the argument starts in
`permutation/derive/__init__.py`): with the parameters permuted as the spec says, every value of the
permuted network equals the original one re-indexed along its channel dimension by its layout.
The rules here keep this true:
- Reshapes (view, reshape, flatten, unflatten, squeeze, unsqueeze) and permute/transpose move
  the channel dimension; merging it with trailing dimensions multiplies the blocks, merging
  it with leading ones repeats the layout. Splitting it into several dimensions (heads) keeps
  the layout on the flattened index of those dimensions, followed through later reshapes by
  the reshape's common factors (`_regroup`): they may merge with other dimensions only in
  front (the layout repeats) or behind (its blocks grow).
"""

from __future__ import annotations

from ..analysis import _arg, _dims, _layout_size, _prod
from ..values import FIXED, _Multi, _Par, _T


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
