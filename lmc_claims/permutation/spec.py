"""A permutation spec says which axis of which parameter each permutation acts on.

`axes_to_perm["layers.1.weight"] == ("P_1", "P_0")` means rows of that weight follow
permutation P_1 and columns follow P_0; `None` marks an axis that no permutation indexes
directly (network inputs and outputs, and composite axes).

A *composite* axis is permuted by several permutations, or by one acting on blocks of entries:
`composite_axes[param][axis]` is a tuple of segments `(perm, units, block)` that split the axis
into consecutive runs of `units * block` entries. Within a segment the entries form `units`
blocks of `block` consecutive entries, and the permutation moves whole blocks (new block i is
old block perm[i]); a segment whose perm is None stays in place. Examples: the input axis of a
Linear layer after flattening a (C, 7, 7) feature map is `(("P_conv", C, 49),)`; the input axis
of a convolution after concatenating two maps along the channels is
`(("P_a", Ca, 1), ("P_b", Cb, 1))`. Such an axis is None in `axes_to_perm`; every permutation
also acts on at least one plain axis (of size `units`), except a block-structured one (below).
Applying a permutation is still indexing: the composite axis is indexed by the segments'
block indices expanded and offset.

A *block-structured* permutation (multi-head attention) is declared in `blocks`:
`blocks[perm] == (outer, n_blocks, block)` says that perm's `n_blocks * block` units form
`n_blocks` consecutive blocks (heads) of `block` units, and that the permutation moves whole
blocks, by the permutation named `outer`, and permutes the units inside each block, freely
for each block: new unit `i * block + j` is old unit `outer[i] * block + w_i[j]`. Every perm
naming the same `outer` moves its blocks by that one permutation (the heads of a query/key
permutation and of a value/output permutation move together); `outer` None: the blocks stay
in place, only their insides move. `outer` is a name of its own, not a key of the perms
dictionary: a perm is still one index tensor of its full size, so applying it is still
indexing, and composing or inverting block-structured perms sharing an outer permutation
gives block-structured perms sharing one again. A perm in `blocks` may act on composite
axes only (a packed q/k/v projection); `blocks` gives its size.

Why the attention blocks are exact symmetries: with heads h, scores_h = q_h k_h^T and output
o_h = softmax(scores_h) v_h concatenated and projected by W_o. Permuting the rows of W_q and
W_k (and their biases) inside head h by one permutation leaves q_h k_h^T unchanged (a sum over
the same pairs); permuting the rows of W_v inside head h permutes o_h's entries, and the same
permutation of W_o's columns undoes it; moving whole heads by one permutation in q, k, v and
W_o's columns reorders the heads' independent computations and W_o's blocks of columns alike.
Softmax runs over the keys, which no permutation touches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import LmcClaimsError

Segment = tuple  # (perm name or None, units, block)
Blocks = tuple  # (outer perm name or None, number of blocks, block size)


@dataclass(frozen=True)
class PermutationSpec:
    axes_to_perm: dict[str, tuple[str | None, ...]]
    perm_to_axes: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    composite_axes: dict[str, dict[int, tuple[Segment, ...]]] = field(default_factory=dict)
    blocks: dict[str, Blocks] = field(default_factory=dict)

    @classmethod
    def from_axes(
        cls,
        axes_to_perm: dict[str, tuple[str | None, ...]],
        composite_axes: dict[str, dict[int, tuple[Segment, ...]]] | None = None,
        blocks: dict[str, Blocks] | None = None,
    ) -> "PermutationSpec":
        perm_to_axes: dict[str, list[tuple[str, int]]] = {}
        for param, perms in axes_to_perm.items():
            for axis, p in enumerate(perms):
                if p is not None:
                    perm_to_axes.setdefault(p, []).append((param, axis))
        composite = {
            param: {int(axis): tuple((p, int(n), int(b)) for p, n, b in segs) for axis, segs in by_axis.items()}
            for param, by_axis in (composite_axes or {}).items() if by_axis
        }
        blocks = {p: (outer, int(n), int(b)) for p, (outer, n, b) in (blocks or {}).items()}
        # A block-structured perm may act on composite axes only (a packed q/k/v projection).
        for p in blocks:
            perm_to_axes.setdefault(p, [])
        return cls(dict(axes_to_perm), {p: tuple(v) for p, v in perm_to_axes.items()}, composite, blocks)

    @property
    def perm_names(self) -> list[str]:
        return list(self.perm_to_axes)

    def block_groups(self) -> dict[str | None, list[str]]:
        """The block-structured perms by their outer permutation (None: blocks that stay)."""
        out: dict[str | None, list[str]] = {}
        for p, (outer, _, _) in self.blocks.items():
            out.setdefault(outer, []).append(p)
        return out

    def composite_axes_of(self, perm: str) -> list[tuple[str, int, int, int, int]]:
        """Where `perm` acts on composite axes: (param, axis, offset, units, block) per segment."""
        out = []
        for param, by_axis in self.composite_axes.items():
            for axis, segs in by_axis.items():
                offset = 0
                for p, n, b in segs:
                    if p == perm:
                        out.append((param, axis, offset, n, b))
                    offset += n * b
        return out

    def _size(self, p: str, params: dict[str, torch.Tensor]) -> int:
        axes = self.perm_to_axes[p]
        if axes:
            return params[axes[0][0]].shape[axes[0][1]]
        _, n, b = self.blocks[p]
        return n * b

    def perm_sizes(self, params: dict[str, torch.Tensor]) -> dict[str, int]:
        """Size of each permutation; checks every axis it touches agrees."""
        self.check(params)
        return {p: self._size(p, params) for p in self.perm_to_axes}

    def partition(self) -> frozenset:
        """The spec up to the names of its permutations: which (param, axis) move together
        (a composite occurrence appears as (param, axis, offset)), and for a block-structured
        perm its blocks and the perms whose blocks move with its own."""
        occ = {p: frozenset(axes) | frozenset((k, a, o) for k, a, o, _, _ in self.composite_axes_of(p))
               for p, axes in self.perm_to_axes.items()}
        groups = self.block_groups()
        out = set()
        for p, where in occ.items():
            if p in self.blocks:
                outer, n, b = self.blocks[p]
                mates = frozenset(occ[q] for q in groups[outer]) if outer is not None else None
                where = where | {("blocks", n, b, mates)}
            out.add(where)
        return frozenset(out)

    def respects_blocks(self, perms: dict[str, torch.Tensor]) -> bool:
        """Whether `perms` have the block structure the spec declares (see the module docstring)."""
        for outer, members in self.block_groups().items():
            moved = None
            for p in members:
                _, n, b = self.blocks[p]
                idx = perms[p].detach().cpu().reshape(n, b)
                block = idx[:, 0] // b
                if not torch.equal(idx // b, block[:, None].expand(n, b)):
                    return False  # a block's units come from several old blocks
                if outer is None:  # blocks that stay: nothing is shared with the other perms
                    if not torch.equal(block, torch.arange(n)):
                        return False
                    continue
                if moved is not None and not torch.equal(block, moved):
                    return False  # perms sharing an outer permutation move their blocks differently
                moved = block
        return True

    def check(self, params: dict[str, torch.Tensor]) -> None:
        """Raise a clear error when the spec does not fit these parameters."""
        missing = [k for k in self.axes_to_perm if k not in params]
        if missing:
            raise LmcClaimsError(
                f"The permutation spec names parameters the model does not have: {missing[:5]}.",
                "build the spec from the same architecture as the model (or derive it from the model).",
            )
        for name, perms in self.axes_to_perm.items():
            if len(perms) != params[name].dim():
                raise LmcClaimsError(
                    f"The permutation spec gives {len(perms)} axes for {name!r}, "
                    f"which has shape {tuple(params[name].shape)}.",
                    "give one entry (a permutation name or None) per axis of the parameter.",
                )
        for p, axes in self.perm_to_axes.items():
            sizes = {(k, a): params[k].shape[a] for k, a in axes}
            if len(set(sizes.values())) > 1:
                raise LmcClaimsError(
                    f"Permutation {p!r} acts on axes of different sizes: {sizes}.",
                    "a permutation may only act on axes that index the same units.",
                )
        if self.blocks:
            self._check_blocks(params)
        if self.composite_axes:
            self._check_composite(params)

    def _check_blocks(self, params: dict[str, torch.Tensor]) -> None:
        fix = "give blocks[perm] = (outer or None, number of blocks, block size) with their product the perm's " \
              "size, the same number of blocks for every perm sharing an outer, and outer names that are not perms."
        count: dict[str, int] = {}
        for p, (outer, n, b) in self.blocks.items():
            if n < 0 or b < 1:
                raise LmcClaimsError(f"Permutation {p!r} has blocks {(outer, n, b)}.", fix)
            sizes = {self._size(p, params)} if self.perm_to_axes[p] else {u for *_, u, _ in self.composite_axes_of(p)}
            if sizes - {n * b}:
                raise LmcClaimsError(f"Permutation {p!r} has {sorted(sizes)} units but {n} blocks of {b}.", fix)
            if outer is not None and (outer in self.perm_to_axes or count.setdefault(outer, n) != n):
                raise LmcClaimsError(f"The outer permutation {outer!r} of {p!r} is a perm or has another number "
                                     f"of blocks elsewhere.", fix)
        used = {p for segs in (s for by_axis in self.composite_axes.values() for s in by_axis.values())
                for p, _, _ in segs}
        for p, axes in self.perm_to_axes.items():
            if not axes and p not in used:
                raise LmcClaimsError(f"Permutation {p!r} acts on no axis.", fix)

    def _check_composite(self, params: dict[str, torch.Tensor]) -> None:
        fix = "give segments (perm or None, units, block) whose units * block add up to the axis size, " \
              "with each perm's units equal to its plain axes' size."
        for name, by_axis in self.composite_axes.items():
            if name not in self.axes_to_perm:
                raise LmcClaimsError(f"The permutation spec has a composite axis for {name!r}, which it does not "
                                     "list in axes_to_perm.", "list every parameter in axes_to_perm.")
            shape = params[name].shape
            for axis, segs in by_axis.items():
                if not 0 <= axis < len(shape) or self.axes_to_perm[name][axis] is not None:
                    raise LmcClaimsError(
                        f"Composite axis {axis} of {name!r} (shape {tuple(shape)}) is not an axis of it "
                        "left None in axes_to_perm.", fix)
                total = 0
                for p, n, b in segs:
                    if n < 0 or b < 1:
                        raise LmcClaimsError(f"Composite axis {axis} of {name!r} has a segment {(p, n, b)}.", fix)
                    total += n * b
                    if p is None:
                        continue
                    if p not in self.perm_to_axes:
                        raise LmcClaimsError(
                            f"Permutation {p!r} acts only on composite axes ({name!r}, axis {axis}).",
                            "every permutation must also act on a plain axis (an entry of axes_to_perm), "
                            "or be block-structured (an entry of blocks, which gives its size).")
                    if self._size(p, params) != n:
                        raise LmcClaimsError(
                            f"Permutation {p!r} has {self._size(p, params)} units but a segment of {n} units "
                            f"in composite axis {axis} of {name!r}.", fix)
                if total != shape[axis]:
                    raise LmcClaimsError(
                        f"The segments of composite axis {axis} of {name!r} cover {total} entries; the axis has "
                        f"{shape[axis]}.", fix)
