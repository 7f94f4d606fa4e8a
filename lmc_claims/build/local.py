"""The local executor: every job in this process, as a plain run always did."""

from __future__ import annotations

import copy
import functools
import time
from typing import Sequence

from ..cpu import concurrent_safe, concurrently
from ..names import STE_METHODS
from .executor import Inputs, PrebuildSummary, compute
from .jobs import Job, SearchJob, TrainJob, entry_complete, inputs_of


class LocalExecutor:
    """Everything in this process: models trained several at once on a CPU (one thread each), STE
    searches several at once (each on its own copy of the template), every other search one after
    another."""

    name = "local"

    def build(self, jobs: Sequence[Job], inputs: Inputs) -> list[dict]:
        def one(job: Job, own_template: bool = False) -> dict:
            def make():
                template = None
                if own_template:  # functional_call swaps a module's parameters while it runs
                    template = copy.deepcopy(inputs.setup(job.setting).template)
                payload, line = compute(job, inputs, template)
                inputs.progress(line)
                return payload

            return inputs.zoo.fetch(job.kind, job.zoo_config, job.device, make)[0]

        trains = [j for j in jobs if isinstance(j, TrainJob)]
        parallel = [j for j in jobs if isinstance(j, SearchJob) and j.method in STE_METHODS]
        for job in parallel:  # their models, in this thread, before the searches share the cores
            for m in inputs_of(job):
                inputs.model(m)
        done = {}
        if trains:
            safe = all(concurrent_safe(inputs.setup(j.setting).template) for j in trains if j.setting is not None)
            done.update(zip(trains, concurrently([functools.partial(one, j) for j in trains], inputs.device,
                                                 None if safe else 1)))
        if parallel:
            done.update(zip(parallel, concurrently([functools.partial(one, j, True) for j in parallel], inputs.device)))
        return [done[j] if j in done else one(j) for j in jobs]

    def prebuild(self, jobs: Sequence[Job], inputs: Inputs) -> PrebuildSummary:
        """Build the plan here (the `lmc-claims prebuild` of a single machine): models first."""
        t0 = time.perf_counter()
        todo = sum(not entry_complete(inputs.zoo, j) for j in jobs)
        self.build([j for j in jobs if isinstance(j, TrainJob)], inputs)
        self.build([j for j in jobs if not isinstance(j, TrainJob)], inputs)
        return PrebuildSummary(len(jobs), todo, 0, time.perf_counter() - t0)

    def close(self) -> None:
        pass
