"""Rules for the torch.nn modules fx keeps as leaves, and the tracer that keeps them.

Part of why every derived permutation is an exact symmetry (the argument starts in
`permutation/derive/__init__.py`): with the parameters permuted as the spec says, every value of the
permuted network equals the original one re-indexed along its channel dimension by its layout.
The rules here keep this true:
- nn.MultiheadAttention (a leaf): the same permutations of its packed in_proj (or q/k/v_proj)
  rows, bias_k / bias_v, and out_proj columns; the embedding channels move as for a Linear.
  Per-head attention weights in the output move with the heads. torchvision's Swin attention
  adds a bias per head to the scores: its heads stay, the channels inside them move.
"""

from __future__ import annotations

import inspect

from torch import fx
from torch import nn

from .rules.layers import _channel_norm_values, _conv_values, _layer_norm_values, _linear_values, _prelu_values
from .rules.pointwise import _glu, _softmax_like, _spatial
from .rules.shape import _reshape
from .values import FIXED, STATIC, _Par, _Shape, _T


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
