"""What the analysis tracks for each graph value: a tensor's layout (`_T`), a value re-indexed along
several dimensions at once (`_Multi`), a parameter (`_Par`), static values, shapes; and the
error a rule raises for a node it cannot follow.
"""

from __future__ import annotations

from torch import fx

from ...errors import LmcClaimsError


HAND_WRITTEN = ("pass a hand-written PermutationSpec (attribute `permutation_spec` on the architecture's "
                "factory, see README: 'The permutation spec is derived ...')")


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


OP_KEY = "lmc_op"  # node.meta key: the op name the tracer resolved for the node's rule


def _op_of(node: fx.Node) -> str | None:
    """The op name the tracer resolved for this node (set before its rule runs)."""
    return node.meta.get(OP_KEY)
