"""How many CPU cores a piece of work may use, and limiting torch's threads to that.

torch's intra-op thread pool is process-wide; on a small CPU that other processes share
(pytest-xdist workers, other jobs) a multi-threaded op waits for every descheduled worker
thread, so the project never asks for more threads than the cores it has to itself.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch


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
