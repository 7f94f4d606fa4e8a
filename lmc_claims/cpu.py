"""How many CPU cores a piece of work may use, and limiting torch's threads to that.

torch's intra-op thread pool is process-wide; on a small CPU that other processes share
(pytest-xdist workers, other jobs) a multi-threaded op waits for every descheduled worker
thread, so the project never asks for more threads than the cores it has to itself.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, TypeVar

import torch
from torch import nn

T = TypeVar("T")

# Intra-op threads per model while training on a CPU. The steps are small (batch 128): one
# thread per model makes the weights independent of the machine's core count (bitwise, for
# the same config) and never leaves a step waiting for a descheduled worker thread on a
# shared CPU. The cores are used by training several models at once instead (`train_many`):
# on an idle 2-core machine two concurrent single-threaded MLP trainings reach ~1.8x the
# throughput of one, and ~1.4x that of one model trained with two threads
# (benchmarks/RESULTS.md).
TRAIN_THREADS: int | None = 1



def cpu_workers() -> int:
    """The cores this process may use, shared with the other pytest-xdist workers if any."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))


@contextmanager
def limit_threads(device: torch.device | str, n: int | None):
    """At most n intra-op threads (None: no limit) while working on a CPU device; restored after."""
    before = torch.get_num_threads()
    if torch.device(device).type != "cpu" or n is None or n >= before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def cpu_threads(device: torch.device | str):
    """torch's intra-op threads limited to TRAIN_THREADS (read at call time) on a CPU device."""
    with limit_threads(device, TRAIN_THREADS):
        yield


def concurrent_safe(model: nn.Module) -> bool:
    """Whether training can run beside other trainings without changing its result: no layer
    draws random numbers from torch's shared generator while training (dropout does)."""
    return not any(isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules())


def concurrently(tasks: list[Callable[[], T]], device: torch.device | str, workers: int | None = None) -> list[T]:
    """Run tasks (training, STE searches, a measurement's evaluations), on a CPU up to `workers`
    (default `cpu_workers()`) at once with one intra-op thread each, elsewhere one after another.
    Results in the tasks' order; when one fails, or Ctrl-C arrives, the tasks not started are dropped."""
    workers = 1 if torch.device(device).type != "cpu" else min(workers or cpu_workers(), len(tasks))
    with cpu_threads(device):
        if workers <= 1:
            return [task() for task in tasks]
        pool = ThreadPoolExecutor(workers, thread_name_prefix="lmc-work")
        try:
            return [f.result() for f in [pool.submit(task) for task in tasks]]
        finally:
            # After a task that failed, or Ctrl-C, the tasks not started are dropped (the running ones finish).
            pool.shutdown(wait=True, cancel_futures=True)
