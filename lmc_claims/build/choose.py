"""The executor a run asked for, by name (`names.EXECUTORS`)."""

from __future__ import annotations

import os
from typing import Callable

import torch

from ..errors import LmcClaimsError, unknown_name
from ..names import EXECUTORS
from .executor import SCHEDULER_ENV
from .local import LocalExecutor


def make_executor(name: str, device: torch.device, *, scheduler: str | None = None, shared_cache_root=None,
                  progress: Callable[[str], None] | None = None, n_workers: int | None = None):
    """The executor a run asked for: `local` (default) or `dask` (a scheduler address, else
    $LMC_CLAIMS_SCHEDULER, else a LocalCluster on this machine)."""
    if name not in EXECUTORS:
        raise unknown_name("executor", name, EXECUTORS)
    if name == "local":
        if shared_cache_root:
            raise LmcClaimsError("--claims-shared-cache only applies to --claims-executor=dask.",
                                 "add --claims-executor=dask, or drop --claims-shared-cache.")
        return LocalExecutor()
    from .dask_cluster import DaskExecutor

    scheduler = scheduler or os.environ.get(SCHEDULER_ENV) or None
    return DaskExecutor(device, scheduler, shared_cache_root=shared_cache_root, progress=progress, n_workers=n_workers)
