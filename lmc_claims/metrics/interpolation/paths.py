"""Interpolation paths: the loss and accuracy along the line between two models, and `Line`, which
answers barrier bounds from as few points as it needs.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch
from torch import nn

from .curves import Params, Curve, DEFAULT_LAMBDAS, chord, lerp
from .engine import Stem, in_batches, identical, interior, points_on_line, vmap_chunk
from .evaluation import bn_memo, reset_point, endpoint, evaluate, reset_bn_stats


def interpolation_curve(model: nn.Module, a: Params, b: Params, x, y, lambdas=DEFAULT_LAMBDAS,
                        bn_data: torch.Tensor | None = None) -> Curve:
    """Loss and accuracy at each lam; with `bn_data`, BatchNorm statistics are reset on it first.

    The same numbers as `evaluate(model, lerp(a, b, lam), x, y)` at every lam (after
    `reset_bn_stats` with `bn_data`), up to float rounding; at lam = 0 and 1 exactly those, and
    a model with itself gives one value all along. Without `bn_data` the points in between are
    evaluated with less work (the first layer's output interpolated, several points per forward
    pass: see the notes below)."""
    lambdas = np.asarray(lambdas, dtype=float)
    loss, acc = np.empty(len(lambdas)), np.empty(len(lambdas))
    if identical(a, b):  # lerp(a, a, lam) is a exactly: every point is the same model
        params = reset_bn_stats(model, a, bn_data) if bn_data is not None else a
        loss[:], acc[:] = evaluate(model, params, x, y) if len(lambdas) else (0.0, 0.0)
        return Curve(lambdas, loss, acc)
    if bn_data is not None:
        stats = bn_memo(model, a, b, bn_data)
        for i, lam in enumerate(lambdas):
            loss[i], acc[i] = evaluate(model, reset_point(model, a, b, float(lam), bn_data, stats), x, y)
        return Curve(lambdas, loss, acc)
    inner = [i for i, lam in enumerate(lambdas) if lam not in (0.0, 1.0)]
    for i in sorted(set(range(len(lambdas))) - set(inner)):
        loss[i], acc[i] = endpoint(model, a if lambdas[i] == 0.0 else b, x, y)  # lerp(a, b, 0) is a, at 1 b
    if inner:
        loss[inner], acc[inner] = interior(model, a, b, x, y, [float(lambdas[i]) for i in inner])
    return Curve(lambdas, loss, acc)


class Line:
    """The loss and accuracy of `model` on (x, y) at points lerp(a, b, s) of the line through a and
    b, each computed once. Paths that lie on the line share their points: the path from a to
    B_t = lerp(a, b, t) at lam has its points at s = lam t, so the steps of a bisection over t (Ito et
    al.'s shrinking baseline) and the naive curve (t = 1) meet at many of theirs (on a grid of 25,
    each halving of t finds 13 of its points computed). Points are computed as `interpolation_curve`
    computes them (the first layer's output interpolated, several points per forward pass,
    BatchNorm statistics reset on `bn_data` at every point).

    Points are keyed by exact fractions: s = k/(n-1) * t on a uniform grid of n lams, so that the
    same point reached from two paths is one point."""

    def __init__(self, model: nn.Module, a: Params, b: Params, x, y, bn_data: torch.Tensor | None = None):
        self.model, self.a, self.b, self.x, self.y, self.bn_data = model, a, b, x, y, bn_data
        self.points: dict[Fraction, tuple[float, float]] = {}
        self._stem: list = []  # found on the first interior point
        self.in_batches = in_batches(x, y)

    def know(self, curve: Curve) -> None:
        """Take the points of a curve of this line computed elsewhere (from a to b, the naive path)."""
        for key, loss, acc in zip(self._keys(curve.lambdas, 1), curve.loss, curve.accuracy):
            self.points.setdefault(key, (float(loss), float(acc)))

    def curve(self, t: float, lambdas=DEFAULT_LAMBDAS) -> Curve:
        """The whole path from a to B_t at `lambdas`."""
        lambdas = np.asarray(lambdas, dtype=float)
        keys = self._keys(lambdas, t)
        self._compute([k for k in keys if k not in self.points])
        return Curve(lambdas, np.array([self.points[k][0] for k in keys]), np.array([self.points[k][1] for k in keys]))

    def barrier_at_most(self, t: float, goal: float, lambdas=DEFAULT_LAMBDAS) -> bool:
        """Whether `self.curve(t, lambdas).loss_barrier <= goal`, computing only the points the answer
        needs: the endpoints, then the others from the middle of the path out (where a barrier
        usually peaks), a forward pass's worth at a time, stopping at the first point above the
        chord by more than `goal`. Known points are looked at first, and cost nothing."""
        lambdas = np.asarray(lambdas, dtype=float)
        if not len(lambdas):
            return bool(0.0 <= goal)  # an empty path has no barrier
        keys = self._keys(lambdas, t)
        ends = [int(np.argmin(lambdas)), int(np.argmax(lambdas))]
        if not (lambdas[ends[0]] == 0.0 and lambdas[ends[1]] == 1.0):
            return bool(self.curve(t, lambdas).loss_barrier <= goal)  # a path not from 0 to 1: the whole curve
        self._compute([keys[i] for i in ends if keys[i] not in self.points])
        v0, v1 = self.points[keys[ends[0]]][0], self.points[keys[ends[1]]][0]

        def above(idx) -> bool:
            loss = np.array([self.points[keys[i]][0] for i in idx])
            return bool(np.max(loss - chord(lambdas[idx], v0, v1)) > goal)

        known = [i for i in range(len(keys)) if keys[i] in self.points]
        if above(known):
            return False
        todo = sorted((i for i in range(len(keys)) if keys[i] not in self.points), key=lambda i: abs(lambdas[i] - 0.5))
        chunk = self._chunk(len(todo))
        for j in range(0, len(todo), chunk):
            part = todo[j : j + chunk]
            self._compute([keys[i] for i in part])
            if above(part):
                return False
        return True

    def _keys(self, lambdas: np.ndarray, t: float) -> list[Fraction]:
        n = len(lambdas)
        uniform = n > 1 and all(abs(lam - k / (n - 1)) <= 1e-12 for k, lam in enumerate(lambdas))
        ft = Fraction(t)
        return [Fraction(k, n - 1) * ft if uniform else Fraction(float(lam)) * ft for k, lam in enumerate(lambdas)]

    def _chunk(self, n: int) -> int:
        if self.bn_data is not None or n < 2:
            return 1
        return vmap_chunk(self.model, self.a, self.x, [0.5] * n)

    def _compute(self, keys: list[Fraction]) -> None:
        keys = list(dict.fromkeys(keys))
        inner = [k for k in keys if k not in (0, 1)]
        for k in keys:
            if self.bn_data is not None:
                params = reset_bn_stats(self.model, lerp(self.a, self.b, float(k)), self.bn_data)
                self.points[k] = evaluate(self.model, params, self.x, self.y)
            elif k in (0, 1):  # the endpoints are the models themselves
                self.points[k] = endpoint(self.model, self.a if k == 0 else self.b, self.x, self.y)
        if not inner or self.bn_data is not None:
            return
        self.model.eval()
        with torch.no_grad():
            if not self._stem:
                self._stem.append(Stem.find(self.model, self.a, self.b, self.in_batches))
            loss, acc = points_on_line(self.model, self.a, self.b, self.x, self.in_batches, [float(k) for k in inner], self._stem[0])
        for k, l_, a_ in zip(inner, loss, acc):
            self.points[k] = (float(l_), float(a_))


# -- the points between the endpoints, without BatchNorm ---------------------------------------
#
# Two things make the interior of a path cheaper than one `evaluate` per point, with the same
# numbers up to float rounding:
#  * the stem: when the first layer to touch the input is an nn.Linear fed (a view of) the input
#    itself, its output is affine in its parameters, so at lam it is lerp(z_A, z_B, lam) with
#    z_A, z_B the endpoints' outputs, computed once instead of once per point (for the papers'
#    784-512-512-512-10 MLP that layer is 43% of the multiply-adds, for a two-layer net nearly all);
#  * batching: several points in one forward pass, torch.func.vmap over stacked parameter sets,
#    in chunks of at most CHUNK_BYTES (CPU_CHUNK_BYTES on a CPU) of activations and parameter
#    copies: fewer, larger ops. On an accelerator, fewer kernel launches. On a CPU one thread
#    computes a batched linear layer as fast as the separate ones, and with 2 threads on a
#    loaded 2-core machine (load average 7) 4 points' 2048 x 512 x 512 layer took half the time
#    batched; whole curves there varied more between runs than between the two ways, and chunks
#    of 12-18 points of the 784-512-512-512-10 MLP were slower (their activations leave the
#    cache), hence the small CPU chunks (benchmarks/RESULTS.md). Convolutions are not batched on
#    a CPU (BATCH_CONV_ON_CPU): vmap turns a convolution with batched weights into a grouped one,
#    which oneDNN ran 2-5x slower than the separate convolutions on the LayerNorm ResNet20
#    (0.64x overall on one thread), and batched GroupNorm takes extra passes.
# A model class whose forward vmap cannot run (data-dependent control flow, in-place ops on
# captured tensors, ...) or runs differently is remembered and evaluated one point at a time.
