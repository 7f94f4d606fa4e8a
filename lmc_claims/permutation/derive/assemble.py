"""Layouts into a `PermutationSpec`: a parameter axis whose layout is one segment with block 1
gets its group's permutation; an axis with several segments or blocks becomes a composite axis;
an axis in group 0 is None; a block-structured group becomes an entry of `PermutationSpec.blocks`.

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
"""

from __future__ import annotations

from torch import nn

from ..spec import PermutationSpec
from .analysis import _Analysis, _fixed_layout


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
