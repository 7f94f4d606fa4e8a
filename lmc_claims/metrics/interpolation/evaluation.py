"""Evaluating one model's parameters: loss and accuracy in batches, BatchNorm statistics reset on
training inputs (Jordan et al.'s REPAIR-free reset, as Git Re-Basin does for BatchNorm nets), and a
path's endpoints evaluated once for every path they end.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections import OrderedDict

import torch
from torch import nn
from torch.func import functional_call

from .curves import Params, lerp


EVAL_BATCH = 2048  # examples per forward pass in `evaluate`
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


def bn_memo(model: nn.Module, a: Params, b: Params, bn_data: torch.Tensor) -> dict | None:
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


def reset_point(model: nn.Module, a: Params, b: Params, lam: float, bn_data, stats: dict | None) -> Params:
    params = lerp(a, b, lam)
    if stats is not None and lam in stats:
        return {**params, **stats[lam]}
    params = reset_bn_stats(model, params, bn_data)
    if stats is not None:
        bns = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        names = ("running_mean", "running_var", "num_batches_tracked")
        stats[lam] = {f"{n}.{s}": params[f"{n}.{s}"] for n in bns for s in names}
    return params
