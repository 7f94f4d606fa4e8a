"""Where build jobs run. An executor takes jobs (plain values, `jobs.py`) and what they need from
the caller (`Inputs`), and returns their payloads through the cache, which stays the one source
of truth. `local.LocalExecutor` runs everything in this process, as a plain run always did;
`dask_cluster.DaskExecutor` runs jobs on a Dask cluster; `choose.make_executor` picks one.

The executor never imports the workbench, the plan or the session: the `Lab` hands it an object
that satisfies `Inputs`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import torch

from ..data import TensorData
from ..zoo import Zoo
from .compute import merge_payload, search_payload, train_payload
from .jobs import DataRef, Job, MergeJob, SettingRef, TrainJob
from .setup import Setup

SCHEDULER_ENV = "LMC_CLAIMS_SCHEDULER"


class Inputs(Protocol):
    """What jobs need from the caller: the cache, the device, where progress lines go, and the
    setups, data and models (memoised by the caller) that searches and merges work on."""

    zoo: Zoo
    device: torch.device
    progress: Callable[[str], None]

    def setup(self, ref: SettingRef) -> Setup: ...

    def data(self, ref: DataRef) -> TensorData: ...

    def model(self, job: TrainJob) -> dict: ...


class Executor(Protocol):
    name: str

    def build(self, jobs: Sequence[Job], inputs: Inputs) -> list[dict]:
        """Each job's payload, from the cache or built (and stored there)."""

    def prebuild(self, jobs: Sequence[Job], inputs: Inputs) -> "PrebuildSummary":
        """Build every job the cache lacks before the claim tests run."""

    def close(self) -> None: ...


def hms(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@dataclass
class Tally:
    """Jobs done out of the total, with the time left at the pace so far."""

    total: int
    done: int = 0
    failed: int = 0
    start: float = field(default_factory=time.perf_counter)

    def step(self, failed: bool = False) -> str:
        self.done += 1
        self.failed += failed
        elapsed = time.perf_counter() - self.start
        left = elapsed / self.done * (self.total - self.done)
        return f"[{self.done}/{self.total} jobs, {hms(elapsed)} elapsed, ~{hms(left)} left]"


@dataclass
class PrebuildSummary:
    jobs: int  # jobs the plan holds
    submitted: int  # of them not in the cache yet
    failed: int
    seconds: float

    def line(self) -> str:
        fail = f", {self.failed} failed (their claim tests will show why)" if self.failed else ""
        return (f"prebuild: {self.jobs} models and matchings planned, {self.jobs - self.submitted} already in the cache, "
                f"{self.submitted} built in {hms(self.seconds)}{fail}")


def compute(job: Job, inputs: Inputs, template=None) -> tuple[dict, str]:
    """(payload, progress line) of one job, computed in this process."""
    if isinstance(job, TrainJob):
        return train_payload(job.config, inputs.data(job.data), inputs.device)
    setup = inputs.setup(job.setting)
    if isinstance(job, MergeJob):
        return merge_payload(setup, job, [inputs.model(m) for m in job.models])
    return search_payload(setup, job, inputs.model(job.a), inputs.model(job.b), inputs.device, template)
