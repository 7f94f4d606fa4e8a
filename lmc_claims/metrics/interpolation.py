"""Linear interpolation between two models and the loss / accuracy barrier.

Barrier (Entezari et al. 2022; Ainsworth et al. 2023):
    B = max_lam [ L(theta(lam)) - ((1 - lam) L(theta_A) + lam L(theta_B)) ].
The accuracy barrier has the same form with accuracy and the sign flipped.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import threading
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

Params = dict[str, torch.Tensor]

DEFAULT_LAMBDAS = np.linspace(0.0, 1.0, 25)  # Git Re-Basin uses 25 points
EVAL_BATCH = 2048  # examples per forward pass in `evaluate`


def lerp(a: Params, b: Params, lam: float) -> Params:
    """(1 - lam) a + lam b for float tensors; integer buffers are taken from a."""
    return {k: torch.lerp(a[k], b[k], lam) if a[k].is_floating_point() else a[k] for k in a}


@torch.no_grad()
def evaluate(model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, batch: int = EVAL_BATCH):
    """Mean cross-entropy and accuracy of `model` with `params` on (x, y)."""
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), batch):
        out = functional_call(model, params, (x[i : i + batch],))
        loss += nn.functional.cross_entropy(out, y[i : i + batch], reduction="sum").item()
        correct += (out.argmax(1) == y[i : i + batch]).sum().item()
    return loss / len(x), correct / len(x)


@dataclass
class Curve:
    """Loss and accuracy along the path, on one split."""

    lambdas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray

    @property
    def loss_barrier(self) -> float:
        return barrier(self.lambdas, self.loss)

    @property
    def accuracy_barrier(self) -> float:
        return barrier(self.lambdas, -self.accuracy)


def chord(lambdas, first, last):
    """(1 - lam) first + lam last, written so that first == last gives exactly first
    (the barrier of a model with itself is then exactly zero). Works on numpy and xarray."""
    return first + lambdas * (last - first)


def barrier(lambdas: np.ndarray, values: np.ndarray) -> float:
    """max over the grid of values minus the chord between the endpoints."""
    return float(np.max(values - chord(lambdas, values[0], values[-1])))


def chord_barrier(values, dim: str = "lam"):
    """`barrier` over the `dim` coordinate of an xarray DataArray (any other dimensions kept)."""
    line = chord(values[dim], values.isel({dim: 0}, drop=True), values.isel({dim: -1}, drop=True))
    return (values - line).max(dim)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def reset_bn_stats(model: nn.Module, params: Params, x: torch.Tensor, batch: int = 500) -> Params:
    """Recompute BatchNorm running statistics of `params` on x: the plain average of the
    per-batch statistics (so the running mean is the exact mean of x when batches are equal).

    Interpolated weights do not match either endpoint's statistics; Git Re-Basin / REPAIR
    reset them on training data at every interpolation point."""
    params = dict(params)
    bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    if not bns:
        return params
    for n in bns:
        params[f"{n}.running_mean"] = torch.zeros_like(params[f"{n}.running_mean"])
        params[f"{n}.running_var"] = torch.ones_like(params[f"{n}.running_var"])
        params[f"{n}.num_batches_tracked"] = torch.zeros_like(params[f"{n}.num_batches_tracked"])
    momenta = {n: m.momentum for n, m in bns.items()}
    was_training = model.training
    try:
        for m in bns.values():
            m.momentum = None  # cumulative average over batches instead of an exponential one
        model.train()
        for i in range(0, len(x), batch):
            functional_call(model, params, (x[i : i + batch],))  # updates the buffers in params in place
    finally:
        for n, m in bns.items():
            m.momentum = momenta[n]
        model.train(was_training)
    return params


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
    if _identical(a, b):  # lerp(a, a, lam) is a exactly: every point is the same model
        params = reset_bn_stats(model, a, bn_data) if bn_data is not None else a
        loss[:], acc[:] = evaluate(model, params, x, y) if len(lambdas) else (0.0, 0.0)
        return Curve(lambdas, loss, acc)
    if bn_data is not None:
        stats = _bn_memo(model, a, b, bn_data)
        for i, lam in enumerate(lambdas):
            loss[i], acc[i] = evaluate(model, _reset_point(model, a, b, float(lam), bn_data, stats), x, y)
        return Curve(lambdas, loss, acc)
    inner = [i for i, lam in enumerate(lambdas) if lam not in (0.0, 1.0)]
    for i in sorted(set(range(len(lambdas))) - set(inner)):
        loss[i], acc[i] = endpoint(model, a if lambdas[i] == 0.0 else b, x, y)  # lerp(a, b, 0) is a, at 1 b
    if inner:
        loss[inner], acc[inner] = _interior(model, a, b, x, y, [float(lambdas[i]) for i in inner])
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
        self._batches = _batches(x, y)

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
        return _vmap_chunk(self.model, self.a, self.x, [0.5] * n)

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
                self._stem.append(_Stem.find(self.model, self.a, self.b, self._batches))
            loss, acc = _points(self.model, self.a, self.b, self.x, self._batches, [float(k) for k in inner], self._stem[0])
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

CHUNK_BYTES = 256 * 2**20  # activations (batch x widest layer) + parameter copies per batched pass
CPU_CHUNK_BYTES = 32 * 2**20  # the same on a CPU (0: one point per pass)
BATCH_CONV_ON_CPU = False
STEM_BYTES = 256 * 2**20  # most memory the endpoints' stem outputs (two per example) may take
_NO_VMAP: set[type] = set()  # model classes evaluated one point at a time
_VMAP_CHECKED: set[type] = set()  # model classes whose batched outputs were compared with the plain ones


def _identical(a: Params, b: Params) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) and (not a[k].is_floating_point() or bool(torch.isfinite(a[k]).all())) for k in a)


def _batches(x, y, batch: int = EVAL_BATCH):
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, len(x), batch)]


def _interior(model: nn.Module, a: Params, b: Params, x, y, lams: list[float]):
    """Loss and accuracy at each lam of `lams` (no BatchNorm reset)."""
    model.eval()
    batches = _batches(x, y)
    with torch.no_grad():
        return _points(model, a, b, x, batches, lams, _Stem.find(model, a, b, batches))


def _points(model: nn.Module, a: Params, b: Params, x, batches, lams: list[float], stem):
    """`_run` in chunks of `_vmap_chunk` points, or one point at a time where the batched pass fails."""
    chunk = _vmap_chunk(model, a, x, lams)
    if chunk > 1:
        try:
            return _run(model, a, b, batches, lams, stem, chunk)
        except torch.OutOfMemoryError:
            pass  # the batched pass only: one point at a time needs less
        except Exception as e:  # noqa: BLE001  (whatever vmap cannot do, the plain forward can)
            _give_up_vmap(model, e)
    return _run(model, a, b, batches, lams, stem, 1)


def _give_up_vmap(model: nn.Module, e: Exception) -> None:
    _NO_VMAP.add(type(model))
    warnings.warn(f"interpolation_curve: {type(model).__qualname__} cannot be evaluated at several interpolation "
                  f"points at once with torch.func.vmap ({type(e).__name__}: {str(e)[:200]}); evaluating one point "
                  "at a time", RuntimeWarning, stacklevel=4)


def _vmap_chunk(model: nn.Module, a: Params, x, lams) -> int:
    """Points per batched pass; 1 for one point at a time."""
    if len(lams) < 2 or type(model) in _NO_VMAP:
        return 1
    cpu = x.device.type == "cpu"
    budget = CPU_CHUNK_BYTES if cpu else CHUNK_BYTES
    if budget <= 0:
        return 1
    if cpu and not BATCH_CONV_ON_CPU and any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules()):
        return 1
    try:
        widest = _widest(model, a, x[:1])
    except Exception as e:  # noqa: BLE001
        _give_up_vmap(model, e)
        return 1
    floats = [t for t in a.values() if t.is_floating_point()]
    item = floats[0].element_size() if floats else x.element_size()
    per_point = min(len(x), EVAL_BATCH) * widest * item + sum(t.numel() * t.element_size() for t in floats)
    return max(1, min(len(lams), budget // per_point))


def _widest(model: nn.Module, a: Params, x1) -> int:
    """Largest tensor per example a module outputs (or the input), on one example."""
    sizes = [x1[0].numel()]

    def hook(_m, _args, out):
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.dim() > 0:
                sizes.append(t.numel() // max(1, t.shape[0]))

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        functional_call(model, a, (x1,))
    finally:
        for h in handles:
            h.remove()
    return max(sizes)


def _run(model: nn.Module, a: Params, b: Params, batches, lams: list[float], stem, chunk: int):
    """Loss and accuracy at each lam, `chunk` points per forward pass (1: no vmap); the losses
    are summed per batch and over batches in `evaluate`'s order."""
    float_keys = [k for k in a if a[k].is_floating_point()]
    fixed = {k: a[k] for k in a if not a[k].is_floating_point()}
    n = sum(len(yb) for _, yb in batches)
    losses, accs = [], []
    with (stem.patched() if stem else contextlib.nullcontext()):
        for j in range(0, len(lams), chunk):
            part = lams[j : j + chunk]
            sums, hits = [], []  # per batch: per point
            if chunk == 1:
                params = lerp(a, b, part[0])
                for i, (xb, yb) in enumerate(batches):
                    if stem:
                        stem.load(i, part[0])
                    out = functional_call(model, params, (xb,))
                    sums.append(nn.functional.cross_entropy(out, yb, reduction="sum")[None])
                    hits.append((out.argmax(1) == yb).sum()[None])
            else:
                stacked = {k: torch.lerp(a[k][None], b[k][None], _weights(part, a[k])) for k in float_keys}

                def forward(p, z, xb):
                    if stem:
                        stem.z = z
                    return functional_call(model, (p, fixed), (xb,))

                for i, (xb, yb) in enumerate(batches):
                    z = stem.stack(i, part) if stem else None
                    out = torch.func.vmap(forward, in_dims=(0, 0 if stem else None, None))(stacked, z, xb)
                    if type(model) not in _VMAP_CHECKED:
                        _check(model, stacked, fixed, xb, out, stem, i, part)
                    sums.append(torch.stack([nn.functional.cross_entropy(o, yb, reduction="sum") for o in out]))
                    hits.append((out.argmax(2) == yb).sum(1))
            per_batch = torch.stack(sums).double().tolist()  # batches x points
            per_hits = torch.stack(hits).tolist()
            for p in range(len(part)):
                total = 0.0
                for row in per_batch:  # evaluate's order: a Python float over the batches
                    total += row[p]
                losses.append(total / n)
                accs.append(sum(row[p] for row in per_hits) / n)
    return np.array(losses), np.array(accs)


def _weights(lams: list[float], like: torch.Tensor) -> torch.Tensor:
    """lams as a tensor to broadcast against a stack of tensors like `like` (torch.lerp with
    these weights gives bitwise what it gives with each lam as a Python float)."""
    return torch.tensor(lams, dtype=like.dtype, device=like.device).view(-1, *[1] * like.dim())


def _check(model, stacked, fixed, xb, out, stem, i, part) -> None:
    """Once per model class: the batched outputs agree with one forward pass per point."""
    for p, lam in enumerate(part):
        if stem:
            stem.load(i, lam)
        ref = functional_call(model, ({k: v[p] for k, v in stacked.items()}, fixed), (xb,))
        scale = float(ref.abs().max()) if ref.numel() else 0.0
        if ref.shape != out[p].shape or not torch.allclose(out[p], ref, rtol=1e-4, atol=1e-5 * scale):
            raise RuntimeError("the batched forward pass computes something else than the plain one")
    _VMAP_CHECKED.add(type(model))


class _StemFound(Exception):
    pass


class _Stem:
    """The first nn.Linear to read the input, when it reads (a view of) the input itself: its
    outputs at the two endpoints for every batch, and the model's forward made to take its
    output at lam from them."""

    def __init__(self, module: nn.Linear, inputs, ends):
        self.module, self.inputs, self.ends, self.z = module, inputs, ends, None

    @staticmethod
    def find(model: nn.Module, a: Params, b: Params, batches) -> "_Stem | None":
        if not batches or model._parameters or model._buffers:
            return None
        try:
            name = _stem_name(model, a, batches[0][0])
            if name is None:
                return None
            module = model.get_submodule(name)
            keys = [f"{name}.weight"] + ([f"{name}.bias"] if module.bias is not None else [])
            if not all(k in a and k in b and a[k].is_floating_point() for k in keys):
                return None
            rows = sum(len(xb) for xb, _ in batches)
            if 2 * rows * module.out_features * a[keys[0]].element_size() > STEM_BYTES:
                return None
            inputs = [_stem_input(model, a, module, xb) for xb, _ in batches]
            if any(inp is None for inp in inputs):
                return None
            bias = lambda p: p[keys[1]] if len(keys) > 1 else None  # noqa: E731
            ends = [(nn.functional.linear(inp, a[keys[0]], bias(a)), nn.functional.linear(inp, b[keys[0]], bias(b)))
                    for inp in inputs]
        except Exception:  # noqa: BLE001  (no stem: every layer evaluated as it is)
            return None
        return _Stem(module, inputs, ends)

    def load(self, i: int, lam: float) -> None:
        za, zb = self.ends[i]
        self.batch, self.z = i, torch.lerp(za, zb, lam)

    def stack(self, i: int, lams: list[float]) -> torch.Tensor:
        za, zb = self.ends[i]
        self.batch = i
        return torch.lerp(za[None], zb[None], _weights(lams, za))

    @contextlib.contextmanager
    def patched(self):
        module, plain = self.module, self.module.forward
        own = module.__dict__.get("forward")  # an instance's own forward, if it has one

        def forward(inp, *args, **kwargs):
            z, self.z = self.z, None  # the first call of a forward pass only
            if z is not None and not args and not kwargs and _same_view(inp, self.inputs[self.batch]):
                return z
            return plain(inp, *args, **kwargs)

        module.forward = forward
        try:
            yield
        finally:
            if own is None:
                del module.forward
            else:
                module.forward = own
            self.z = None


def _same_view(t, ref: torch.Tensor) -> bool:
    try:
        return (type(t) is torch.Tensor and t.shape == ref.shape and t.stride() == ref.stride()
                and t.dtype == ref.dtype and t.data_ptr() == ref.data_ptr())
    except Exception:  # noqa: BLE001
        return False


def _views_of(t, x: torch.Tensor) -> bool:
    return (isinstance(t, torch.Tensor) and t.dtype == x.dtype and t.device == x.device
            and t.untyped_storage().data_ptr() == x.untyped_storage().data_ptr())


def _stem_name(model: nn.Module, a: Params, xb) -> str | None:
    """Name of the first module with parameters or buffers of its own to run, if it is a plain
    nn.Linear called on a view of the input (its values the input's, whatever the parameters)."""
    found: list[str | None] = []

    def pre(name, module, args):
        if module._parameters or module._buffers:
            plain = (type(module) is nn.Linear and len(args) == 1 and _views_of(args[0], xb)
                     and len(module._forward_pre_hooks) == 1 and not module._forward_hooks)
            found.append(name if plain else None)
            raise _StemFound

    handles = [m.register_forward_pre_hook(functools.partial(pre, n)) for n, m in model.named_modules() if n]
    try:
        functional_call(model, a, (xb[:1],))
    except _StemFound:
        pass
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else None


def _stem_input(model: nn.Module, a: Params, module: nn.Module, xb):
    """The tensor the stem reads in a forward pass on xb (the pass stops there)."""
    got = []

    def pre(_m, args):
        got.append(args[0] if len(args) == 1 and _views_of(args[0], xb) else None)
        raise _StemFound

    h = module.register_forward_pre_hook(pre)
    try:
        functional_call(model, a, (xb,))
    except _StemFound:
        pass
    finally:
        h.remove()
    return got[0] if got else None


# -- endpoints --------------------------------------------------------------------------------

ENDPOINT_MEMO = 64  # models whose evaluation is remembered
_ENDPOINTS: OrderedDict = OrderedDict()  # key -> (model, tensors with their versions, (loss, accuracy))
_ENDPOINTS_LOCK = threading.Lock()
_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # copy -> the model it copies


def model_copy(model: nn.Module) -> nn.Module:
    """A deep copy of `model` for another thread (functional_call swaps a module's parameters while
    it runs), which `endpoint` takes for the model itself."""
    twin = copy.deepcopy(model)
    _COPIES[twin] = _COPIES.get(model, model)
    return twin


def endpoint(model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """`evaluate(model, params, x, y)`, remembered (for the last ENDPOINT_MEMO models) while the
    same tensors hold the same values: one model ends many paths (A starts the path to B under
    every search, on each split), and its value is the same on all."""
    tensors = [x, y, *params.values()]
    versions = [_version(t) for t in tensors]
    if None in versions:  # a tensor whose in-place changes are not counted: no memory
        return evaluate(model, params, x, y)
    origin = _COPIES.get(model, model)
    key = (id(origin), tuple(params), *map(id, tensors))
    with _ENDPOINTS_LOCK:  # paths are evaluated from several threads at once (Setting.concurrently)
        hit = _ENDPOINTS.get(key)
        if (hit is not None and hit[0]() is origin
                and all(r() is t and v == now for (r, v), t, now in zip(hit[1], tensors, versions))):
            _ENDPOINTS.move_to_end(key)
            return hit[2]
    value = evaluate(model, params, x, y)
    with _ENDPOINTS_LOCK:
        _ENDPOINTS[key] = (weakref.ref(origin), [(weakref.ref(t), v) for t, v in zip(tensors, versions)], value)
        while len(_ENDPOINTS) > ENDPOINT_MEMO:
            _ENDPOINTS.popitem(last=False)
    return value


def _version(t) -> int | None:
    """The in-place change counter of a tensor; None for one without (made in inference mode)."""
    try:
        return t._version if isinstance(t, torch.Tensor) else None
    except RuntimeError:
        return None


# -- BatchNorm statistics along a path ---------------------------------------------------------

_BN_MEMO: list = [None]  # (identity of model, a, b, bn_data; {lam: reset buffers}) of the last path


def _bn_memo(model: nn.Module, a: Params, b: Params, bn_data: torch.Tensor) -> dict | None:
    """The reset statistics of the last path when this call has the same model, endpoints and
    data (unchanged: same objects, no in-place change since), so that a path's train and test
    curves reset them once. None when `a` does not hold every entry of the model's state."""
    if set(a) != set(model.state_dict()):
        return None
    now = [model, bn_data] + [a[k] for k in a] + [b[k] for k in a]
    key = [(k, weakref.ref(t), getattr(t, "_version", None)) for k, t in zip(["model", "x", *a, *a], now)]
    entry = _BN_MEMO[0]
    if entry is not None and len(entry[0]) == len(key) and all(
            k == k0 and r0() is t and v0 == v for (k0, r0, v0), (k, _, v), t in zip(entry[0], key, now)):
        return entry[1]
    entry = (key, {})
    _BN_MEMO[0] = entry
    return entry[1]


def _reset_point(model: nn.Module, a: Params, b: Params, lam: float, bn_data, stats: dict | None) -> Params:
    params = lerp(a, b, lam)
    if stats is not None and lam in stats:
        return {**params, **stats[lam]}
    params = reset_bn_stats(model, params, bn_data)
    if stats is not None:
        bns = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        names = ("running_mean", "running_var", "num_batches_tracked")
        stats[lam] = {f"{n}.{s}": params[f"{n}.{s}"] for n in bns for s in names}
    return params
