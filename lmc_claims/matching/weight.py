"""Weight matching (Git Re-Basin, Ainsworth et al. 2023, Algorithm 1).

Maximise sum_l <W_l^A, P_l W_l^B P_{l-1}^T>_F by coordinate descent over the
permutations; each step is a linear assignment with all other permutations fixed.

How the search is kept cheap (the accepted permutations are exactly the plain
algorithm's):

* For each permutation P, every parameter touching P is laid out once with P's axis
  first and flattened, and the pieces are concatenated: A_P (n x R) from model A and
  B_P (n x R) from model B. Then C_P = A_P @ (B_P with the other permutations applied
  to its columns)^T is one matrix product. The other permutations only reorder B_P's
  columns, so the current column order is kept on the host as an index array.
* C_P is computed once and then kept up to date lazily: when neighbouring permutations
  change, only B_P's column order is updated; the next time P is visited, C_P gets
  A_P[:, moved] @ (B_P[:, new] - B_P[:, old])^T over just the columns that moved since
  it was last used (k columns cost O(n * k), not O(n * R)), or is recomputed when most
  moved. Several neighbours changing between two visits of P cost one update, not several.
* A step whose C_P has not changed since P's last assignment solve is skipped (the
  solver would return the answer it gave then, already accepted or rejected), and so is
  one where the current permutation takes every row's maximum (it is optimal).

Block-structured permutations (attention heads, `PermutationSpec.blocks`) that share an outer
permutation are one coordinate: their C_P are kept as above, and the step is
`lap.solve_blocks`: for every pair of blocks (heads) the assignment inside them, per
permutation, and one assignment over blocks on the summed gains, which is the exact optimum
over block-structured permutations with the others fixed. A spec without blocks visits the
same coordinates in the same order as before.

Everything is float64 on the models' device; only C_P goes to the host for the solver,
and the permutations' bookkeeping (index arrays) lives there.

On a CPU the search uses the cores this process has to itself (`SEARCH_THREADS`, by
default `cpu.cpu_workers()`: all of them in a plain run, one per pytest-xdist worker on a
machine with as many cores as workers): it is a chain of small dependent steps around a
single-threaded solver, and a multi-threaded op on an oversubscribed CPU waits for every
descheduled worker thread (benchmarks/RESULTS.md has both cases).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..cpu import cpu_workers, limit_threads
from ..errors import LmcClaimsError
from ..permutation.apply import Params, Perms, permute_param, plain_view
from ..permutation.spec import PermutationSpec
from .lap import solve_blocks, solve_lap_numpy


# Intra-op threads for the search on a CPU device; None: the cores this process may use.
SEARCH_THREADS: int | None = None


def _threads(device: torch.device):
    return limit_threads(device, SEARCH_THREADS or cpu_workers())


@dataclass
class MatchResult:
    perms: Perms
    objective: list[float] = field(default_factory=list)  # after each assignment step
    sweeps: int = 0


def _check_keys_and_shapes(spec: PermutationSpec, a: Params, b: Params) -> None:
    if a.keys() != b.keys():
        only_a = sorted(set(a) - set(b))[:3]
        only_b = sorted(set(b) - set(a))[:3]
        raise LmcClaimsError(
            f"The two models have different parameters (only in A: {only_a}, only in B: {only_b}).",
            "match models of the same architecture, width and depth.",
        )
    bad = [(k, tuple(a[k].shape), tuple(b[k].shape)) for k in a if a[k].shape != b[k].shape]
    if bad:
        raise LmcClaimsError(
            f"The two models have parameters of different shapes, e.g. {bad[0]}.",
            "match models of the same architecture, width and depth.",
        )


def _check_finite(spec: PermutationSpec, name: str, params: Params) -> None:
    for k in spec.axes_to_perm:
        if not torch.isfinite(params[k]).all():
            raise LmcClaimsError(
                f"Model {name} has NaN or inf values in {k!r}.",
                "retrain the model (lower the learning rate) or load an uncorrupted checkpoint.",
            )


def _flat64(spec: PermutationSpec, params: Params) -> torch.Tensor:
    """All of the spec's parameters in one float64 vector (spec order)."""
    tensors = [params[k].detach().reshape(-1) for k in spec.axes_to_perm]
    out = torch.empty(sum(t.numel() for t in tensors), dtype=torch.float64, device=tensors[0].device)
    return torch.cat(tensors, out=out)


def _all_finite(flats: list[torch.Tensor]) -> bool:
    # A float64 sum of finite float32/float64 weights is finite unless it overflows,
    # in which case the exact per-parameter check below decides.
    return bool(torch.isfinite(torch.stack([f.sum() for f in flats])).all())


def check_compatible(spec: PermutationSpec, a: Params, b: Params) -> None:
    """Models handed to a matching must have the same parameters and shapes."""
    _check_keys_and_shapes(spec, a, b)
    spec.check(a)
    with _threads(a[next(iter(spec.axes_to_perm))].device):
        if not _all_finite([_flat64(spec, a), _flat64(spec, b)]):
            _check_finite(spec, "A", a)
            _check_finite(spec, "B", b)


def _flat(w: torch.Tensor, axis: int) -> torch.Tensor:
    return w.movedim(axis, 0).reshape(w.shape[axis], -1)


def cost_matrix(spec: PermutationSpec, perms: Perms, p: str, a: Params, b: Params) -> torch.Tensor:
    """C_p = sum over params touching p of W^A (W^B permuted on its other axes)^T."""
    cost = None
    for name, axis in spec.perm_to_axes[p]:
        wb = permute_param(spec, perms, name, b[name], except_axis=axis)
        term = _flat(a[name], axis) @ _flat(wb, axis).T
        cost = term if cost is None else cost + term
    return cost


def objective(spec: PermutationSpec, perms: Perms, a: Params, b: Params) -> float:
    """sum over spec parameters of <theta_A, pi(theta_B)>."""
    return float(sum((a[k] * permute_param(spec, perms, k, b[k])).sum() for k in spec.axes_to_perm))


class _Block:
    """One parameter's columns in A_P / B_P: `offset`, the shape of its non-P axes and
    which permutation (if any) acts on each of them."""

    __slots__ = ("offset", "shape", "perms")

    def __init__(self, offset: int, shape: tuple[int, ...], perms: tuple[str | None, ...]):
        self.offset, self.shape, self.perms = offset, shape, perms

    def columns(self, host: dict[str, np.ndarray]) -> np.ndarray:
        """Source column in B_P of each of the block's columns under the current perms."""
        idx = np.arange(int(np.prod(self.shape, dtype=np.int64)), dtype=np.int64).reshape(self.shape)
        for dim, q in enumerate(self.perms):
            if q is not None:
                idx = np.take(idx, host[q], axis=dim)
        return self.offset + idx.reshape(-1)


class _Side:
    """Everything kept for one permutation P: A_P and B_P, stored transposed (one row per
    column of the n x R matrices, so that selecting columns is copying whole rows), B_P's
    current column order, and C_P."""

    def __init__(self, p: str, spec: PermutationSpec, a: Params, b: Params, host: dict[str, np.ndarray]):
        axes = spec.perm_to_axes[p]
        n = a[axes[0][0]].shape[axes[0][1]]
        blocks: list[_Block] = []
        self.by_perm: dict[str, list[_Block]] = {}  # Q -> blocks Q acts on
        offset = 0
        for name, axis in axes:
            w = a[name]
            rest = tuple(s for ax, s in enumerate(w.shape) if ax != axis)
            on = tuple(q for ax, q in enumerate(spec.axes_to_perm[name]) if ax != axis)
            block = _Block(offset, rest, on)
            blocks.append(block)
            for q in set(on) - {None}:
                self.by_perm.setdefault(q, []).append(block)
            offset += int(np.prod(rest, dtype=np.int64))
        device = a[axes[0][0]].device
        self.At = torch.empty(offset, n, dtype=torch.float64, device=device)
        self.Bt = torch.empty_like(self.At)
        self.rows: dict[str, slice] = {}  # each parameter's rows in At / Bt
        for (name, axis), block in zip(axes, blocks):
            rows = slice(block.offset, block.offset + int(np.prod(block.shape, dtype=np.int64)))
            self.rows[name] = rows
            self.At[rows].view(*block.shape, n).copy_(a[name].detach().movedim(axis, -1))
            self.Bt[rows].view(*block.shape, n).copy_(b[name].detach().movedim(axis, -1))
        self.cols = np.concatenate([blk.columns(host) for blk in blocks])
        self._cols_of_C = None  # B_P's column order when C_P was last brought up to date
        self._C: torch.Tensor | None = None
        self._moved = True  # columns moved since then (set by `follow`)

    @property
    def C(self) -> torch.Tensor:
        """C_P under the current permutations, brought up to date on first use after they
        changed: by the columns that moved since then, or in full when most of them did."""
        if not self._moved:
            return self._C
        if self._C is not None:
            moved = np.flatnonzero(self.cols != self._cols_of_C)
            if 2 * len(moved) <= len(self.cols):
                idx = torch.from_numpy(np.stack([moved, self.cols[moved], self._cols_of_C[moved]])).to(self.At.device)
                rows = self.Bt.index_select(0, idx[1:].reshape(-1))
                self._C.addmm_(self.At.index_select(0, idx[0]).T, rows[: len(moved)] - rows[len(moved) :])
            else:
                self._C = None
        if self._C is None:
            self._C = self._full()
        self._cols_of_C = self.cols.copy()
        self._moved = False
        return self._C

    def _full(self) -> torch.Tensor:
        if np.array_equal(self.cols, np.arange(len(self.cols))):
            return self.At.T @ self.Bt
        return self.At.T @ self.Bt.index_select(0, torch.from_numpy(self.cols).to(self.Bt.device))

    def follow(self, q: str, host: dict[str, np.ndarray]) -> bool:
        """Q's permutation changed (host[q] is the new one): update B_P's column order.
        Returns whether any column moved, i.e. whether C_P changed."""
        changed = False
        for block in self.by_perm[q]:
            lo = block.offset
            span = int(np.prod(block.shape, dtype=np.int64))
            new = block.columns(host)
            if not np.array_equal(new, self.cols[lo : lo + span]):
                self.cols[lo : lo + span] = new
                changed = True
        self._moved |= changed
        return changed


def weight_matching(
    spec: PermutationSpec,
    a: Params,
    b: Params,
    *,
    seed: int = 0,
    max_sweeps: int = 100,
    init: Perms | None = None,
    tol: float = 1e-12,
) -> MatchResult:
    """Permutations of B's units that bring B's weights closest to A's."""
    _check_keys_and_shapes(spec, a, b)
    spec.check(a)
    # Composite axes (concatenations, flattened maps) as plain views, so that the cost matrices
    # include them; the permutations and the objective are the same.
    view_spec, a = plain_view(spec, a)
    spec, b = view_spec, plain_view(spec, b)[1]
    device = a[next(iter(spec.axes_to_perm))].device
    with _threads(device):
        return _search(spec, a, b, seed, max_sweeps, init, tol, device)


def _search(spec: PermutationSpec, a: Params, b: Params, seed: int, max_sweeps: int,
            init: Perms | None, tol: float, device: torch.device) -> MatchResult:
    names = spec.perm_names
    sizes = spec.perm_sizes(a)
    # The permutations' bookkeeping is on the host: the solver's answers arrive there.
    if init is None:
        host = {p: np.arange(sizes[p], dtype=np.int64) for p in names}
    else:
        host = {p: init[p].detach().cpu().numpy().astype(np.int64) for p in names}
    sides = {p: _Side(p, spec, a, b, host) for p in names}
    # Every parameter once, in float64: its rows in a side that holds it (copied there
    # already), else a fresh copy. They serve the finiteness check and the initial objective.
    held = {name: side for side in sides.values() for name in side.rows}
    pieces = [(held[k].At[held[k].rows[k]], held[k].Bt[held[k].rows[k]]) if k in held else
              (a[k].detach().double(), b[k].detach().double()) for k in spec.axes_to_perm]
    if not _all_finite([t for pair in pieces for t in pair]):
        _check_finite(spec, "A", a)
        _check_finite(spec, "B", b)
    if init is None:
        total = float(sum(torch.dot(x.reshape(-1), y.reshape(-1)) for x, y in pieces))
    else:
        init_dev = {p: init[p].to(device) for p in names}
        total = objective(spec, init_dev, {k: a[k].double() for k in spec.axes_to_perm},
                          {k: b[k].double() for k in spec.axes_to_perm})
    del pieces, held
    neighbours = {q: [p for p in names if q in sides[p].by_perm] for q in names}
    # The coordinates of the descent: a plain permutation, or the block-structured ones that
    # share an outer permutation (heads), solved together.
    units = block_units(spec, names)
    # A parameter with the same permutation on two axes makes C_P depend on P itself, and so
    # does one holding two permutations solved in one step: the step is then a linearisation
    # and its gain is not the objective's change, so the objective is recomputed after each
    # accepted step instead.
    coupled = any(len([q for q in ax if q]) > len({q for q in ax if q}) for ax in spec.axes_to_perm.values()) \
        or any(q in neighbours[p] for u in units if len(u) > 1 for p in u for q in u)
    if coupled:
        a64 = {k: a[k].detach().double() for k in spec.axes_to_perm}
        b64 = {k: b[k].detach().double() for k in spec.axes_to_perm}

    result = MatchResult({})
    # Only the terms touching P change in a step, by exactly the gain, so the objective
    # is tracked incrementally instead of being recomputed.
    stale = dict.fromkeys(names, True)  # C_P changed since P's last solve (or never solved)
    gen = torch.Generator().manual_seed(seed)
    for sweep in range(max_sweeps):
        improved = False
        for i in torch.randperm(len(units), generator=gen).tolist():
            unit = units[i]
            if any(stale[p] for p in unit):
                for p in unit:
                    stale[p] = False
                cs = [sides[p].C.cpu().numpy() for p in unit]
                olds = [host[p] for p in unit]
                # Every row at its maximum (or no units at all): no assignment does better, skip the solve.
                if any(c.size and not np.all(c[np.arange(len(old)), old] >= c.max(axis=1))
                       for c, old in zip(cs, olds)):
                    news = solve_unit(spec, unit, cs)
                    gain = 0.0
                    for c, old, new in zip(cs, olds, news):
                        moved = np.flatnonzero(new != old)
                        gain += float((c[moved, new[moved]] - c[moved, old[moved]]).sum())
                    if gain > tol:
                        total += gain
                        improved = True
                        for p, old, new in zip(unit, olds, news):
                            if np.array_equal(new, old):
                                continue
                            host[p] = new
                            for q in neighbours[p]:
                                if sides[q].follow(p, host):
                                    stale[q] = True
                        if coupled:
                            current = {q: torch.from_numpy(host[q]).to(device) for q in names}
                            total = objective(spec, current, a64, b64)
            result.objective.append(total)
        result.sweeps = sweep + 1
        if not improved:
            break
    result.perms = {p: torch.from_numpy(host[p].copy()).to(device) for p in names}
    return result


def block_units(spec: PermutationSpec, names: list[str]) -> list[tuple[str, ...]]:
    """Each plain permutation alone; block-structured ones grouped by their outer
    permutation (one whose blocks stay in place alone), in the order of `names`."""
    units: list[tuple[str, ...]] = []
    groups = spec.block_groups()
    seen: set[str] = set()
    for p in names:
        if p in seen:
            continue
        outer = spec.blocks[p][0] if p in spec.blocks else None
        unit = tuple(groups[outer]) if outer is not None else (p,)
        seen.update(unit)
        units.append(unit)
    return units


def solve_unit(spec: PermutationSpec, unit: tuple[str, ...], cs: list[np.ndarray]) -> list[np.ndarray]:
    """The best permutations of one coordinate, given the others: one assignment for a plain
    permutation, `solve_blocks` for block-structured ones."""
    if unit[0] not in spec.blocks:
        return [solve_lap_numpy(cs[0])]
    outer, n_blocks, _ = spec.blocks[unit[0]]
    return solve_blocks(cs, [spec.blocks[p][2] for p in unit], n_blocks, move=outer is not None)
