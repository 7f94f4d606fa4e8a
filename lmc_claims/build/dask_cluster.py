"""Jobs as Dask tasks keyed by their cache entries (`model-<zoo key>`, `match-<zoo key>`), so two
clients of one cluster share every entry and each is built once per cluster.

By default a worker returns the payload and this process stores it through `Zoo.fetch` (atomic
write, checksum, COMPLETE marker), so a worker killed mid-job leaves nothing in the cache and Dask
runs the job again elsewhere. With `shared_cache=True` the workers write the cache themselves
(`Zoo.fetch` on the same root, whose file lock must then work on that filesystem: README,
"Running on a cluster"). `distributed` is imported only when a Dask executor is made.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Callable, Sequence

import torch

from ..errors import LmcClaimsError
from ..zoo import Zoo
from .executor import SCHEDULER_ENV, Inputs, PrebuildSummary, Tally
from .jobs import Job, MergeJob, TrainJob, entry_complete, inputs_of
from .worker import (Context, Done, Failed, ModelRef, check_versions, run_merge, run_search, run_train, traceback_tail,
                     versions, worker_facts)

JOBS_PER_GPU_ENV = "LMC_CLAIMS_JOBS_PER_GPU"  # several small models may share a GPU (worker threads)
RETRIES = 2  # a job that raised (not a user error, which is returned as `Failed`) runs up to 3 times


def _distributed():
    try:
        import distributed
    except ImportError:
        raise LmcClaimsError("--claims-executor=dask needs Dask's `distributed` package, which is not installed.",
                             'pip install -e ".[dask]" (or pip install "distributed>=2024.1").') from None
    return distributed


def start_local_cluster(device: torch.device, n_workers: int | None = None):
    """A cluster on this machine: one single-threaded worker process per core on a CPU; one worker
    per GPU on CUDA (dask-cuda's LocalCUDACluster when installed, else one pinned worker per GPU
    declaring the resource GPU)."""
    distributed = _distributed()
    from ..cpu import cpu_workers

    dashboard = ":0"  # an address the OS chooses: never a fixed port (None would mean distributed's default, 8787)
    if device.type == "cuda":
        per_gpu = max(1, int(os.environ.get(JOBS_PER_GPU_ENV) or 1))
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            n = n_workers or torch.cuda.device_count()
            workers = {f"gpu-{i}": {"cls": distributed.Nanny, "options": {
                "nthreads": per_gpu, "resources": {"GPU": per_gpu}, "env": {"CUDA_VISIBLE_DEVICES": str(i)},
                "silence_logs": logging.ERROR}} for i in range(n)}
            return distributed.SpecCluster(workers=workers, scheduler={"cls": distributed.Scheduler, "options": {
                "dashboard_address": ":0"}}, silence_logs=logging.ERROR)
        return LocalCUDACluster(threads_per_worker=per_gpu, dashboard_address=dashboard, silence_logs=logging.ERROR,
                                **({"n_workers": n_workers} if n_workers else {}))
    return distributed.LocalCluster(n_workers=n_workers or cpu_workers(), threads_per_worker=1, processes=True,
                                    dashboard_address=dashboard, silence_logs=logging.ERROR)


def _has_bokeh() -> bool:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True


class DaskExecutor:
    """Jobs as Dask tasks keyed by their cache entries; this process stores what they return
    (or, in shared-cache mode, finds what the workers stored)."""

    name = "dask"

    def __init__(self, device: torch.device, scheduler: str | None = None, *, shared_cache_root: str | None = None,
                 n_workers: int | None = None, progress: Callable[[str], None] | None = None):
        distributed = _distributed()
        self.device = torch.device(device)
        self.progress = progress or (lambda line: None)
        self.cluster = None
        self._closed = False
        self.futures: dict[str, object] = {}
        self.failed: dict[str, LmcClaimsError] = {}
        self._scattered: dict[str, object] = {}
        self._tally: Tally | None = None
        try:
            if scheduler:
                self.client = distributed.Client(scheduler, timeout="60s")
            else:
                self.cluster = start_local_cluster(self.device, n_workers)
                self.client = distributed.Client(self.cluster)
        except OSError as e:
            self.close()
            raise LmcClaimsError(f"Could not reach the Dask scheduler {scheduler!r} ({e}).",
                                 f"check the address (--claims-scheduler or ${SCHEDULER_ENV}) and that the scheduler runs.") from None
        except BaseException:
            self.close()
            raise
        try:
            facts = self.check_workers()
        except BaseException:
            self.close()
            raise
        gpu_workers = [w for w in self.client.scheduler_info()["workers"].values() if "GPU" in (w.get("resources") or {})]
        # Worker resources matter on clusters mixing CPU and GPU workers: CUDA jobs then go to GPU workers only.
        self.resources = {"GPU": 1} if self.device.type == "cuda" and gpu_workers else None
        self.ctx = Context(versions(), str(shared_cache_root) if shared_cache_root else None)
        where = f"scheduler {scheduler}" if scheduler else f"a LocalCluster started here ({type(self.cluster).__name__})"
        link = getattr(self.client, "dashboard_link", None) if self.cluster is None or _has_bokeh() else None
        self.progress(f"dask executor: {where}, {len(facts)} workers"
                      + (", workers write the shared cache" if shared_cache_root else "")
                      + (f", dashboard {link}" if link else ""))

    # -- connecting ----------------------------------------------------------------------
    def check_workers(self) -> dict:
        """Run the version probe on every worker; refuse one that differs from this process."""
        facts = self.client.run(worker_facts)
        ours = versions()
        for address, f in sorted(facts.items()):
            check_versions(f["versions"], ours, address)
            if self.device.type == "cuda" and not f["cuda"]:
                raise LmcClaimsError(f"The Dask worker {address} sees no CUDA device, but this run trains on CUDA.",
                                     "start the workers on GPU nodes, or run with --claims-device=cpu.")
        return facts

    @property
    def shared(self) -> bool:
        return self.ctx.shared_root is not None

    def key(self, zoo: Zoo, job: Job) -> str:
        """The task's key: the cache entry it builds."""
        return f"{job.kind}-{zoo.key(job.kind, job.zoo_config, job.device)}"

    # -- submitting ------------------------------------------------------------------------
    def submit(self, zoo: Zoo, job: Job):
        key = self.key(zoo, job)
        if key not in self.futures:
            opts = dict(key=key, retries=RETRIES, resources=self.resources)
            if isinstance(job, TrainJob):
                self.futures[key] = self.client.submit(run_train, job, self.ctx, **opts)
            elif isinstance(job, MergeJob):
                models = [self._model_input(zoo, m) for m in job.models]
                self.futures[key] = self.client.submit(run_merge, job, models, self.ctx, **opts)
            else:
                a, b = self._model_input(zoo, job.a), self._model_input(zoo, job.b)
                self.futures[key] = self.client.submit(run_search, job, a, b, self.ctx, **opts)
        return self.futures[key]

    def _model_input(self, zoo: Zoo, job: TrainJob):
        """A search's model: the model job's future, the cache entry (shared cache), or the cached
        payload sent from here."""
        key = self.key(zoo, job)
        if key in self.futures:
            return self.futures[key]
        if entry_complete(zoo, job):
            if self.shared:
                return ModelRef(job)
            if key not in self._scattered:
                payload = zoo.fetch(job.kind, job.zoo_config, job.device, lambda: self.result(zoo, job))[0]
                self._scattered[key] = self.client.scatter(Done(payload, "", "client", 0.0, built=False))
            return self._scattered[key]
        return self.submit(zoo, job)

    # -- waiting -------------------------------------------------------------------------------
    def result(self, zoo: Zoo, job: Job) -> dict | None:
        """Wait for the job (submitting it if needed); its payload (None in shared-cache mode).
        A job that failed for good raises its error, with the worker's traceback summarised."""
        key = self.key(zoo, job)
        if key in self.failed:
            raise self.failed[key]
        for model in inputs_of(job):
            err = self.failed.get(self.key(zoo, model))
            if err is not None:  # as a worker would say it, without sending the job
                raise LmcClaimsError(f"{job.describe()} failed (its input failed: {model.describe()}): {err.problem}",
                                     err.fix)
        fut = self.submit(zoo, job)
        try:
            res = self._wait(fut, job)
        except LmcClaimsError as e:
            self.failed[key] = e
            self.futures.pop(key, None)
            raise
        self.futures.pop(key, None)  # stored by the caller next: the cache holds it from now on
        if res.built:
            tally = f" {self._tally.step()}" if self._tally else ""
            self.progress(f"{res.message} on {res.worker}{tally}")
        elif self._tally:
            self._tally.step()
        return res.payload

    def _wait(self, fut, job: Job) -> Done:
        try:
            res = fut.result()
        except KeyboardInterrupt:
            self.close()
            raise
        except Exception as e:
            if type(e).__name__ == "KilledWorker":
                raise LmcClaimsError(f"{job.describe()} failed on the Dask cluster: every worker that ran it died ({e}).",
                                     "look at the workers' logs (out of memory?); raise the workers' memory limit or "
                                     "use fewer workers per machine.") from None
            raise LmcClaimsError(
                f"{job.describe()} failed on the Dask cluster after {RETRIES + 1} attempts: {type(e).__name__}: {e}\n"
                f"Worker traceback (last lines):\n{traceback_tail(e)}",
                "see the traceback above; the same job runs locally with --claims-executor=local.") from None
        if isinstance(res, Failed):
            raise res.error(job.describe())
        return res

    def fetch(self, zoo: Zoo, job: Job) -> dict:
        """The job's cache entry, built on the cluster if absent."""
        if self.shared:
            if not entry_complete(zoo, job):
                self.result(zoo, job)  # outside the entry's lock: the worker takes it to store
            return zoo.fetch(job.kind, job.zoo_config, job.device, lambda: self._not_visible(zoo, job))[0]
        return zoo.fetch(job.kind, job.zoo_config, job.device, lambda: self.result(zoo, job))[0]

    def _not_visible(self, zoo: Zoo, job: Job):
        raise LmcClaimsError(
            f"{job.describe()} was stored by a Dask worker in the shared cache, but {zoo.root} here does not "
            "show it.", "with --claims-shared-cache, every worker must see the cache directory at the same path "
                        "(a shared filesystem); otherwise run without --claims-shared-cache.")

    def build(self, jobs: Sequence[Job], inputs: Inputs) -> list[dict]:
        """All on the cluster at once, then collected one by one."""
        for job in jobs:
            if not entry_complete(inputs.zoo, job):
                self.submit(inputs.zoo, job)
        return [self.fetch(inputs.zoo, job) for job in jobs]

    # -- everything up front -------------------------------------------------------------------
    def prebuild(self, jobs: Sequence[Job], inputs: Inputs) -> PrebuildSummary:
        """Submit every job of the plan that the cache lacks at once, then store each result as it
        arrives (progress: jobs done / total, time left). Failures are kept and raised where a
        claim test asks for the entry."""
        distributed = _distributed()
        t0 = time.perf_counter()
        zoo = inputs.zoo
        todo = [j for j in jobs if not entry_complete(zoo, j)]
        self._tally = Tally(len(todo))
        try:
            by_key = {}
            futures = []
            for job in todo:
                fut = self.submit(zoo, job)
                if fut.key not in by_key:
                    by_key[fut.key] = job
                    futures.append(fut)
            if todo:
                self.progress(f"prebuild: {len(by_key)} models and matchings submitted "
                              f"({len(jobs) - len(todo)} of {len(jobs)} already in the cache)")
            done = distributed.as_completed(futures)
            del futures  # each result is released once stored (and no search waits for it)
            for fut in done:
                job = by_key.pop(fut.key)
                del fut
                before = self._tally.done
                try:
                    if self.shared:  # the worker stored it: check that this process sees it, load nothing
                        self.result(zoo, job)
                        if not entry_complete(zoo, job):
                            self._not_visible(zoo, job)
                    else:
                        self.fetch(zoo, job)
                except LmcClaimsError as e:
                    self.progress(f"FAILED {job.describe()} {self._tally.step(failed=True)}: "
                                  f"{e.problem.splitlines()[0]}")
                if self._tally.done == before:  # another process stored it first
                    self._tally.step()
        except KeyboardInterrupt:
            self.close()
            raise
        finally:
            failed = self._tally.failed
            self._tally = None
        return PrebuildSummary(len(jobs), len(todo), failed, time.perf_counter() - t0)

    # -- ending ------------------------------------------------------------------------------------
    def close(self) -> None:
        """Cancel what is still outstanding and close the client, and the cluster if this run started it."""
        if self._closed:
            return
        self._closed = True
        client = getattr(self, "client", None)
        try:
            if client is not None:
                pending = [f for f in self.futures.values() if not f.done()]
                if pending:
                    client.cancel(pending, force=True)
                client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
