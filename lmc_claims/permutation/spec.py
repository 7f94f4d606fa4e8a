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
also acts on at least one plain axis (of size `units`). Applying a permutation is still
indexing: the composite axis is indexed by the segments' block indices expanded and offset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import LmcClaimsError

Segment = tuple  # (perm name or None, units, block)


@dataclass(frozen=True)
class PermutationSpec:
    axes_to_perm: dict[str, tuple[str | None, ...]]
    perm_to_axes: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    composite_axes: dict[str, dict[int, tuple[Segment, ...]]] = field(default_factory=dict)

    @classmethod
    def from_axes(
        cls,
        axes_to_perm: dict[str, tuple[str | None, ...]],
        composite_axes: dict[str, dict[int, tuple[Segment, ...]]] | None = None,
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
        return cls(dict(axes_to_perm), {p: tuple(v) for p, v in perm_to_axes.items()}, composite)

    @property
    def perm_names(self) -> list[str]:
        return list(self.perm_to_axes)

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

    def perm_sizes(self, params: dict[str, torch.Tensor]) -> dict[str, int]:
        """Size of each permutation; checks every axis it touches agrees."""
        self.check(params)
        return {p: params[axes[0][0]].shape[axes[0][1]] for p, axes in self.perm_to_axes.items()}

    def partition(self) -> frozenset:
        """The spec up to the names of its permutations: which (param, axis) move together
        (a composite occurrence appears as (param, axis, offset))."""
        return frozenset(
            frozenset(axes) | frozenset((k, a, o) for k, a, o, _, _ in self.composite_axes_of(p))
            for p, axes in self.perm_to_axes.items()
        )

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
        if self.composite_axes:
            self._check_composite(params)

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
                            "every permutation must also act on a plain axis (an entry of axes_to_perm).")
                    k, a = self.perm_to_axes[p][0]
                    if params[k].shape[a] != n:
                        raise LmcClaimsError(
                            f"Permutation {p!r} has {params[k].shape[a]} units but a segment of {n} units "
                            f"in composite axis {axis} of {name!r}.", fix)
                if total != shape[axis]:
                    raise LmcClaimsError(
                        f"The segments of composite axis {axis} of {name!r} cover {total} entries; the axis has "
                        f"{shape[axis]}.", fix)
