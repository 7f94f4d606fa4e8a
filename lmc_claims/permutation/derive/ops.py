"""The tables that map an op's name (a torch function, a Tensor method, an ATen op) to its rule, and
the name a graph node resolves to.
"""

from __future__ import annotations

import operator

import torch
from torch import fx

from .rules.attention import _patch_merging_pad, _sdpa, _shifted_window_attention
from .rules.indexing import _cat, _getitem, _index_tensor, _pad, _select, _slice, _split, _stack
from .rules.layers import _addmm, _batch_norm, _conv, _embedding, _group_norm, _layer_norm, _linear, _matmul, _prelu
from .rules.pointwise import _dim_sensitive, _elementwise, _first_only, _glu, _opaque, _read_values, _reduce, _reduce_order, _setitem, _shape_attr, _softmax_like, _spatial, _static_result
from .rules.shape import _expand, _movedim, _permute, _repeat, _reshape, _t, _transpose


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
OPAQUE = {"baddbmm", "addbmm", "addmv", "mv", "einsum", "bilinear", "cdist",
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
    "matmul": _matmul, "mm": _matmul, "addmm": _addmm, "bmm": _matmul, "scaled_dot_product_attention": _sdpa,
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
