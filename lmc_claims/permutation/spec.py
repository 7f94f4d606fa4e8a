"""A permutation spec says which axis of which parameter each permutation acts on.

`axes_to_perm["layers.1.weight"] == ("P_1", "P_0")` means rows of that weight follow
permutation P_1 and columns follow P_0; `None` marks an axis that is never permuted
(network inputs and outputs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import LmcClaimsError


@dataclass(frozen=True)
class PermutationSpec:
    axes_to_perm: dict[str, tuple[str | None, ...]]
    perm_to_axes: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)

    @classmethod
    def from_axes(cls, axes_to_perm: dict[str, tuple[str | None, ...]]) -> "PermutationSpec":
        perm_to_axes: dict[str, list[tuple[str, int]]] = {}
        for param, perms in axes_to_perm.items():
            for axis, p in enumerate(perms):
                if p is not None:
                    perm_to_axes.setdefault(p, []).append((param, axis))
        return cls(dict(axes_to_perm), {p: tuple(v) for p, v in perm_to_axes.items()})

    @property
    def perm_names(self) -> list[str]:
        return list(self.perm_to_axes)

    def perm_sizes(self, params: dict[str, torch.Tensor]) -> dict[str, int]:
        """Size of each permutation; checks every axis it touches agrees."""
        self.check(params)
        return {p: params[axes[0][0]].shape[axes[0][1]] for p, axes in self.perm_to_axes.items()}

    def partition(self) -> frozenset:
        """The spec up to the names of its permutations: which (param, axis) move together."""
        return frozenset(frozenset(axes) for axes in self.perm_to_axes.values())

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
