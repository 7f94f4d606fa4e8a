"""Part of why every derived permutation is an exact symmetry (the argument starts in
`permutation/derive/__init__.py`): with the parameters permuted as the spec says, every value of the
permuted network equals the original one re-indexed along its channel dimension by its layout.
The rules here keep this true:
- Matrix products (`_mm_value`) and scaled_dot_product_attention: contracting two operands'
  channels that one layout re-indexes leaves the sum unchanged; with heads as batch
  dimensions, the groups are restricted to keep each head's channels together, and the
  scores are re-indexed along the heads only. Scores @ values unite the scores' heads with
  the values'. Softmax inside the heads (over the keys) keeps it all. So written-out attention
  gets, per layer, one block-structured permutation of the query and key rows (and biases),
  one of the value rows and the output projection's columns, their heads moved by one head
  permutation (spec.py says why that is exact).
"""

from __future__ import annotations

import inspect

from torch import fx

from ..analysis import _arg, _origin
from ..values import FIXED, _Par, _Shape, _T
from .layers import _mm_value
from .pointwise import _opaque
from .shape import _live_dims, _reorder


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
