"""Applying permutations to parameter dictionaries.

Convention: `perms[p]` is an index tensor; the permuted parameter is
`param.index_select(axis, perms[p])`, so new unit i is old unit perms[p][i]. A composite
axis (see spec.py) is indexed the same way, by its segments' block indices expanded and offset.
"""

from __future__ import annotations

import torch

from ..errors import LmcClaimsError
from .spec import PermutationSpec

Params = dict[str, torch.Tensor]
Perms = dict[str, torch.Tensor]


def identity_perms(spec: PermutationSpec, params: Params) -> Perms:
    device = next(iter(params.values())).device
    return {p: torch.arange(n, device=device) for p, n in spec.perm_sizes(params).items()}


def random_perms(spec: PermutationSpec, params: Params, generator: torch.Generator) -> Perms:
    """Uniformly random permutations; a block-structured one (spec.blocks) gets a random
    permutation of its blocks, shared with the perms naming the same outer permutation, and
    a random permutation inside each block."""
    device = next(iter(params.values())).device
    outer: dict[str, torch.Tensor] = {}
    out = {}
    for p, n in spec.perm_sizes(params).items():
        if p not in spec.blocks:
            out[p] = torch.randperm(n, generator=generator).to(device)
            continue
        name, n_blocks, block = spec.blocks[p]
        if name is None:
            moved = torch.arange(n_blocks)
        else:
            if name not in outer:
                outer[name] = torch.randperm(n_blocks, generator=generator)
            moved = outer[name]
        inside = torch.stack([torch.randperm(block, generator=generator) for _ in range(n_blocks)]) \
            if n_blocks else torch.zeros(0, block, dtype=torch.long)
        out[p] = block_perm(moved, inside).to(device)
    return out


def block_perm(moved: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """The permutation of n_blocks * block units that puts old block moved[i] at block i,
    its units in the order inside[i] (new unit i * block + j is old moved[i] * block + inside[i, j])."""
    block = inside.shape[1]
    return (moved[:, None] * block + inside).reshape(-1)


def composite_index(segments, perms: Perms, device: torch.device) -> torch.Tensor:
    """The index of a composite axis: each segment's blocks in the order of its permutation."""
    parts, offset = [], 0
    for p, units, block in segments:
        n = units * block
        if p is None:
            parts.append(torch.arange(offset, offset + n, device=device))
        else:
            idx = perms[p].to(device)
            parts.append((idx[:, None] * block + torch.arange(block, device=device)).reshape(-1) + offset)
        offset += n
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long, device=device)


def permute_param(
    spec: PermutationSpec, perms: Perms, name: str, w: torch.Tensor, except_axis: int | None = None
) -> torch.Tensor:
    for axis, p in enumerate(spec.axes_to_perm.get(name, ())):
        if p is not None and axis != except_axis:
            w = w.index_select(axis, perms[p])
    for axis, segments in spec.composite_axes.get(name, {}).items():
        if axis != except_axis:
            w = w.index_select(axis, composite_index(segments, perms, w.device))
    return w


def apply_permutation(spec: PermutationSpec, perms: Perms, params: Params) -> Params:
    """Permute every parameter the spec names; others (e.g. BN counters) pass through."""
    sizes = spec.perm_sizes(params)
    for p, idx in perms.items():
        n = sizes[p]
        if idx.numel() != n or not torch.equal(torch.sort(idx.cpu()).values, torch.arange(n)):
            raise LmcClaimsError(
                f"Permutation {p!r} is not a permutation of {n} units.",
                "pass index tensors holding each of 0..n-1 exactly once.",
            )
    return {k: permute_param(spec, perms, k, v) for k, v in params.items()}


def compose(first: Perms, then: Perms) -> Perms:
    """Perms equivalent to applying `first`, then `then`."""
    return {p: first[p][then[p]] for p in first}


def inverse(perms: Perms) -> Perms:
    return {p: torch.argsort(idx) for p, idx in perms.items()}


def plain_view(spec: PermutationSpec, params: Params) -> tuple[PermutationSpec, Params]:
    """The same symmetry over views of the parameters in which every permuted axis is plain.

    A composite axis is cut into one view per segment, named `param[axis:offset]`; a segment of
    blocks gets its blocks as an extra axis (units, block), the permutation on the first.
    Every entry of a parameter is in exactly one view and each view is permuted as that part
    of the parameter is, so matching (or any sum over entries) on the views is the same as on
    the parameters, and it needs only plain axes. The views share memory with `params`.
    Block structures (spec.blocks) carry over. Returns (spec, params) themselves when the spec
    has no composite axes.
    """
    if not spec.composite_axes:
        return spec, params
    axes: dict[str, tuple[str | None, ...]] = {}
    views: Params = {}
    for name, w in params.items():
        if name not in spec.composite_axes:
            views[name] = w
            if name in spec.axes_to_perm:
                axes[name] = spec.axes_to_perm[name]
            continue
        # (name, view, perm of each view dim, view dim of each parameter axis)
        pieces = [(name, w, list(spec.axes_to_perm[name]), list(range(w.dim())))]
        for axis, segments in sorted(spec.composite_axes[name].items()):
            cut = []
            for piece_name, v, perms, where in pieces:
                offset = 0
                for p, units, block in segments:
                    d = where[axis]
                    part = v.narrow(d, offset, units * block)
                    part_perms, part_where = list(perms), list(where)
                    if block > 1:
                        part = part.unflatten(d, (units, block))
                        part_perms[d + 1 : d + 1] = [None]
                        part_where = [k + 1 if k > d else k for k in part_where]
                    part_perms[d] = p
                    cut.append((f"{piece_name}[{axis}:{offset}]", part, part_perms, part_where))
                    offset += units * block
            pieces = cut
        for piece_name, v, perms, _ in pieces:
            views[piece_name] = v
            axes[piece_name] = tuple(perms)
    return PermutationSpec.from_axes(axes, blocks=spec.blocks), views
