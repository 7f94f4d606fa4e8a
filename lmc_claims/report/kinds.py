"""Figure kinds: drawing functions registered with `@figure(name, needs={variable: dims})`.

This registry is all `plots.py` needs; `figures.py` imports both and renders (so neither
imports the other's importer). See `figures.py` for how kinds are chosen per dataset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping


@dataclass(frozen=True)
class FigureKind:
    name: str
    needs: Mapping[str, tuple[str, ...]]  # variable -> dimensions it must have
    draw: Callable
    caption: str
    across: str | None = None  # a claim-test parameter: draw the claim's datasets side by side over it
    size: tuple[float, float] = (10.0, 5.0)  # inches

    def matches(self, ds) -> bool:
        return all(var in ds.data_vars and set(dims) <= set(ds[var].dims) for var, dims in self.needs.items())


_KINDS: dict[str, FigureKind] = {}


def figure(name: str, *, needs: Mapping[str, tuple[str, ...]], caption: str, across: str | None = None,
           size: tuple[float, float] = (10.0, 5.0)):
    """Register a drawing function `draw(fig, data)` as a figure kind (see the module docstring)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise ValueError(f"figure name {name!r}: use lowercase letters, digits and '-' (it becomes part of a file name)")

    def register(draw: Callable) -> Callable:
        if name in _KINDS and _KINDS[name].draw.__qualname__ != draw.__qualname__:
            raise ValueError(f"two figure kinds are named {name!r}")
        _KINDS[name] = FigureKind(name, dict(needs), draw, caption, across, size)
        return draw

    return register


def registered() -> list[FigureKind]:
    return list(_KINDS.values())
