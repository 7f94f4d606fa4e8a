"""What a cluster worker runs: a job's computation guarded so that a user-fixable failure comes
back as a value (`Failed`, not retried) and a result as `Done`, with where and how long it ran.
Each worker checks the client's versions on every job, so a worker that joins later is refused too.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..errors import LmcClaimsError
from .compute import merge_payload, search_payload, train_payload
from .jobs import Job, MergeJob, SearchJob, SettingRef, TrainJob, inputs_of
from .setup import Setup, make_setup, on_device

TRACEBACK_LINES = 12  # lines of a worker's traceback kept in the error a claim test shows


def versions() -> dict[str, str]:
    """What must agree between the process that owns the cache and a worker: the versions that
    enter every cache key (lmc-claims, torch) or change results (numpy). Read at call time."""
    import numpy

    from .. import version

    return {"lmc-claims": version.__version__, "torch": torch.__version__, "numpy": numpy.__version__}


def worker_facts() -> dict:
    """The version probe a client runs on every worker when it connects."""
    return {"versions": versions(), "cuda": torch.cuda.is_available(), "host": socket.gethostname(), "pid": os.getpid()}


def check_versions(theirs: dict[str, str], ours: dict[str, str], where: str) -> None:
    differ = {k: (ours.get(k), theirs.get(k)) for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k)}
    if differ:
        detail = "; ".join(f"{k} {a} here, {b} on the worker" for k, (a, b) in differ.items())
        raise LmcClaimsError(
            f"The Dask worker {where} runs other versions than this process ({detail}): its models and "
            "matchings would not be the ones this cache holds.",
            "install the same lmc-claims, torch and numpy on every worker as here (one environment for the "
            "whole cluster), or point --claims-scheduler at a cluster started from this environment.")


@dataclass
class Done:
    """A job's result as it travels back: the payload (None when the worker stored it in the
    shared cache itself), its progress line and where it ran."""

    payload: dict | None
    message: str
    worker: str
    seconds: float
    built: bool = True  # False: the shared cache already held it


@dataclass
class Failed:
    """A job that failed for good (a user-fixable error: divergence, a bad config). Returned, not
    raised, so that the cluster does not retry what would fail again."""

    problem: str
    fix: str
    worker: str
    traceback: str = ""
    upstream: str = ""  # the job whose failure this one inherits (a search of a model that failed)

    def error(self, what: str) -> LmcClaimsError:
        origin = f" (its input failed: {self.upstream})" if self.upstream else ""
        tb = f"\nWorker traceback (last lines):\n{self.traceback}" if self.traceback else ""
        return LmcClaimsError(f"{what} failed on the Dask worker {self.worker}{origin}: {self.problem}{tb}", self.fix)


@dataclass(frozen=True)
class ModelRef:
    """A model a search needs that the shared cache holds (or will): the worker fetches it."""

    job: TrainJob


@dataclass(frozen=True)
class Context:
    """How a worker runs its jobs: the client's versions (checked on every job) and, in
    shared-cache mode, the cache root to write to."""

    versions: dict = field(default_factory=dict)
    shared_root: str | None = None


def traceback_tail(exc: BaseException, lines: int = TRACEBACK_LINES) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip().splitlines()
    return "\n".join(text[-lines:])


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except Exception:  # not inside a Dask worker (a test calling the job directly)
        return f"{socket.gethostname()}:{os.getpid()}"


def _guarded(ctx: Context, compute) -> Done | Failed:
    where = _worker_address()
    t0 = time.perf_counter()
    try:
        if ctx.versions:
            check_versions(versions(), ctx.versions, where)
        payload, message, built = compute()
    except (LmcClaimsError, ValueError) as e:
        return Failed(getattr(e, "problem", f"{type(e).__name__}: {e}"), getattr(e, "fix", "see the traceback."),
                      where, traceback_tail(e))
    return Done(payload, message, where, time.perf_counter() - t0, built)


def _zoo(ctx: Context):
    from ..zoo import Zoo

    return Zoo(ctx.shared_root)


def _check_data(job: TrainJob) -> None:
    fp = job.data.fingerprint()  # once per process and dataset
    if fp != job.fingerprint:
        raise LmcClaimsError(
            f"The worker's {job.data.dataset} data (fingerprint {fp}) are not the client's ({job.fingerprint}).",
            "give every worker the same dataset files (the same --claims-data-root / $LMC_CLAIMS_DATA contents).")


def _train(job: TrainJob) -> tuple[dict, str]:
    data = job.data.load()
    _check_data(job)
    device = torch.device(job.device)
    return train_payload(job.config, data if device.type == "cpu" else on_device(data, device), device)


def _model(ctx: Context, m: Any) -> dict:
    """A search's input: the payload itself, or a model the shared cache holds."""
    if isinstance(m, ModelRef):
        return _zoo(ctx).fetch("model", m.job.zoo_config, m.job.device, lambda: _train(m.job)[0])[0]
    return m


def run_train(job: TrainJob, ctx: Context = Context()) -> Done | Failed:
    """Train one model on this worker; in shared-cache mode store it there and return no payload."""

    def compute():
        if ctx.shared_root is None:
            return (*_train(job), True)
        message = []

        def build():
            sd, line = _train(job)
            message.append(line)
            return sd

        _, built = _zoo(ctx).fetch("model", job.zoo_config, job.device, build)
        return None, (message[0] if message else f"{job.label} found in the shared cache"), built

    return _guarded(ctx, compute)


_SETUPS: dict[tuple, Setup] = {}
_SETUPS_LOCK = threading.Lock()


def worker_setup(ref: SettingRef, device: str) -> Setup:
    """The setup a search runs in, made on this process by the client's own code path."""
    key = (ref, device)
    with _SETUPS_LOCK:
        if key not in _SETUPS:
            _SETUPS[key] = make_setup(ref, torch.device(device))
        return _SETUPS[key]


def _input(m: Any, job: TrainJob) -> Any:
    """A model job's result as a search's input: its payload, or (shared cache) where to find it."""
    if isinstance(m, Done):
        return m.payload if m.payload is not None else ModelRef(job)
    return m


def run_search(job: SearchJob, a: Any, b: Any, ctx: Context = Context()) -> Done | Failed:
    """Run one permutation search on this worker. `a` and `b` are the models' results (payloads,
    `ModelRef`s, or the `Failed` of a model job, which this job then inherits)."""
    for m, mj in ((a, job.a), (b, job.b)):
        if isinstance(m, Failed):
            return replace(m, upstream=m.upstream or mj.describe())
    a, b = _input(a, job.a), _input(b, job.b)

    def build(setup: Setup):
        dev = torch.device(job.device)
        pa = {k: v.to(dev) for k, v in _model(ctx, a).items()}
        pb = {k: v.to(dev) for k, v in _model(ctx, b).items()}
        return search_payload(setup, job, pa, pb, dev)

    return _guarded(ctx, lambda: _built_on_worker(ctx, job, build))


def run_merge(job: MergeJob, models: list, ctx: Context = Context()) -> Done | Failed:
    """Run one MergeMany on this worker; `models` are the model jobs' results, in the job's order."""
    for m, mj in zip(models, job.models):
        if isinstance(m, Failed):
            return replace(m, upstream=m.upstream or mj.describe())
    inputs = [_input(m, mj) for m, mj in zip(models, job.models)]

    def build(setup: Setup):
        dev = torch.device(job.device)
        return merge_payload(setup, job, [{k: v.to(dev) for k, v in _model(ctx, m).items()} for m in inputs])

    return _guarded(ctx, lambda: _built_on_worker(ctx, job, build))


def _built_on_worker(ctx: Context, job: Job, build):
    """(payload, message, built) of a search-like job: returned to the client, or stored in the
    shared cache here (then no payload travels)."""
    setup = worker_setup(job.setting, job.device)
    _check_data(inputs_of(job)[0])
    if ctx.shared_root is None:
        return (*build(setup), True)
    message = []
    _, built = _zoo(ctx).fetch("match", job.zoo_config, job.device,
                               lambda: message.append(build(setup)) or message[-1][0])
    return None, (message[0][1] if message else f"{job.label} found in the shared cache"), built
