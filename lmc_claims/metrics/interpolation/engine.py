"""The batched engine: several interpolation points evaluated in one pass (torch.func.vmap over
stacked parameters, in memory-bounded chunks), with the endpoints' shared stem computed once. A
model vmap cannot run falls back to one point per pass; the values are the plain loop's.
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from .curves import Params, lerp
from .evaluation import EVAL_BATCH


CHUNK_BYTES = 256 * 2**20  # activations (batch x widest layer) + parameter copies per batched pass
CPU_CHUNK_BYTES = 32 * 2**20  # the same on a CPU (0: one point per pass)
BATCH_CONV_ON_CPU = False
STEM_BYTES = 256 * 2**20  # most memory the endpoints' stem outputs (two per example) may take
_NO_VMAP: set[type] = set()  # model classes evaluated one point at a time
_VMAP_CHECKED: set[type] = set()  # model classes whose batched outputs were compared with the plain ones


def identical(a: Params, b: Params) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) and (not a[k].is_floating_point() or bool(torch.isfinite(a[k]).all())) for k in a)


def in_batches(x, y, batch: int = EVAL_BATCH):
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, len(x), batch)]


def interior(model: nn.Module, a: Params, b: Params, x, y, lams: list[float]):
    """Loss and accuracy at each lam of `lams` (no BatchNorm reset)."""
    model.eval()
    batches = in_batches(x, y)
    with torch.no_grad():
        return points_on_line(model, a, b, x, batches, lams, Stem.find(model, a, b, batches))


def points_on_line(model: nn.Module, a: Params, b: Params, x, batches, lams: list[float], stem):
    """`_run` in chunks of `vmap_chunk` points, or one point at a time where the batched pass fails."""
    chunk = vmap_chunk(model, a, x, lams)
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


def vmap_chunk(model: nn.Module, a: Params, x, lams) -> int:
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


class Stem:
    """The first nn.Linear to read the input, when it reads (a view of) the input itself: its
    outputs at the two endpoints for every batch, and the model's forward made to take its
    output at lam from them."""

    def __init__(self, module: nn.Linear, inputs, ends):
        self.module, self.inputs, self.ends, self.z = module, inputs, ends, None

    @staticmethod
    def find(model: nn.Module, a: Params, b: Params, batches) -> "Stem | None":
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
        return Stem(module, inputs, ends)

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
