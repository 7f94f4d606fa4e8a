"""Building a scale's model zoo locally vs on a Dask LocalCluster, and the per-job overhead.

In one run, on fresh temporary caches:
  1. the zoo a scale's claims need (lmc_claims.plan.for_claims: every model and matching),
     built by the local executor (this process, as a plain `pytest -m claims` builds it) and by
     the dask executor on a LocalCluster of N single-threaded worker processes (`lmc-claims
     prebuild --claims-executor=dask`); both caches are then checked to hold the same entries,
     and the models bitwise the same weights;
  2. the per-job overhead: a no-op task's round trip (submit, wait) one at a time, the throughput
     of many no-op tasks at once, and a tiny training job through the executor's whole path
     (submit, train on a worker, send back, store with checksum) against the same job in-process.

    python benchmarks/bench_cluster.py                       # smoke scale, 2 workers
    python benchmarks/bench_cluster.py --scale ci --claims-id ainsworth2023-wm-barrier --claims-arch mlp

Prints a Markdown table for benchmarks/RESULTS.md (machine, load and date included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from lmc_claims.build.compute import train_payload
from lmc_claims.build.dask_cluster import DaskExecutor
from lmc_claims.build.jobs import DataRef, TrainJob, entry_complete
from lmc_claims.build.local import LocalExecutor
from lmc_claims.lab import Lab
from lmc_claims.plan import for_claims
from lmc_claims.scales import get_scale
from lmc_claims.training import Recipe, TrainConfig
from lmc_claims.zoo import Zoo


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores available, torch {torch.__version__}"


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def build(scale_name: str, claim_ids, archs, executor, root: Path) -> tuple[float, int]:
    scale = get_scale(scale_name).select(archs)
    lab = Lab(scale, torch.device("cpu"), Zoo(root), executor=executor)
    plan = for_claims(scale, claim_ids)
    t0 = time.perf_counter()
    summary = executor.prebuild(plan.jobs(lab), lab.builds)
    return time.perf_counter() - t0, summary.submitted


def same_entries(a: Path, b: Path) -> tuple[int, int]:
    """(entries in both caches, models among them whose weights differ)."""
    differ = both = 0
    for meta in a.glob("*/*/meta.json"):
        other = b / meta.parent.parent.name / meta.parent.name / "meta.json"
        assert other.exists(), f"{meta.parent} is missing from {b}"
        both += 1
        x, y = json.loads(meta.read_text()), json.loads(other.read_text())
        differ += x["kind"] == "model" and x["sha256"] != y["sha256"]
    return both, differ


def _noop(i):
    return i


def overhead(ex: DaskExecutor, root: Path, n: int = 200) -> dict:
    client = ex.client
    client.submit(_noop, -1, pure=False).result()  # warm
    t0 = time.perf_counter()
    for i in range(50):
        client.submit(_noop, i, pure=False).result()
    round_trip = (time.perf_counter() - t0) / 50
    t0 = time.perf_counter()
    client.gather(client.map(_noop, range(n), pure=False))
    throughput = n / (time.perf_counter() - t0)

    ref = DataRef("digits", 64, 64)
    jobs = [TrainJob(TrainConfig(arch="mlp", dataset="digits", width=4, seed=s,
                                 recipe=Recipe(epochs=1, batch_size=64, n_train=64)), ref, "cpu", ref.fingerprint())
            for s in range(40)]
    data = ref.load()
    here = Zoo(root / "local")
    t0 = time.perf_counter()
    for j in jobs:  # the local executor's path: the zoo around the computation
        here.fetch(j.kind, j.zoo_config, j.device, lambda: train_payload(j.config, data, torch.device("cpu"))[0])
    local = (time.perf_counter() - t0) / len(jobs)
    there = Zoo(root / "dask")
    t0 = time.perf_counter()
    for j in jobs:  # one at a time: the path's latency, not the cluster's throughput
        ex.fetch(there, j)
    remote = (time.perf_counter() - t0) / len(jobs)
    assert all(entry_complete(there, j) for j in jobs)
    return {"round_trip_ms": 1000 * round_trip, "noop_per_s": throughput, "tiny_local_ms": 1000 * local,
            "tiny_dask_ms": 1000 * remote}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", default="smoke")
    p.add_argument("--claims-id", default=None, help="comma-separated claims (default: all)")
    p.add_argument("--claims-arch", default=None, help="comma-separated architectures (default: the scale's)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2, help="builds per executor, interleaved (default 2)")
    args = p.parse_args()
    claim_ids = args.claims_id.split(",") if args.claims_id else None
    archs = args.claims_arch.split(",") if args.claims_arch else None
    tmp = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    rows = [f"date {date.today()}, machine: {machine()}, load average (1/5/15 min) before: {load()}"]
    try:
        t0 = time.perf_counter()
        ex = DaskExecutor(torch.device("cpu"), None, n_workers=args.workers)
        start = time.perf_counter() - t0
        times = {"local": [], "dask": []}
        try:
            for r in range(args.repeats):  # interleaved, each on a fresh cache: a shared machine's load drifts
                for name, executor in (("local", LocalExecutor()), ("dask", ex)):
                    t, n = build(args.scale, claim_ids, archs, executor, tmp / f"{name}{r}")
                    times[name].append(t)
                    rows.append(f"repeat {r + 1}, {name}: {t:.1f} s for {n} entries, load after: {load()}")
            both, differ = same_entries(tmp / "local0", tmp / "dask0")
            o = overhead(ex, tmp / "tiny")
        finally:
            ex.close()
        what = f"{args.scale} zoo" + "".join(f" ({x})" for x in (args.claims_id, args.claims_arch) if x)
        print("\n".join(rows))
        print()
        print("| measurement | local (this process) | LocalCluster, %d workers |" % args.workers)
        print("|---|---|---|")
        # The first build of each also loads the data, derives the specs and warms torch in its
        # processes (as a real run does); the later ones find those processes warm.
        for label, pick in (("first build (cold processes)", lambda v: v[0]),
                            (f"best later build (warm processes, of {args.repeats - 1})", lambda v: min(v[1:]))):
            if label.startswith("best") and args.repeats < 2:
                continue
            t_local, t_dask = pick(times["local"]), pick(times["dask"])
            print(f"| {what}, {n} entries: {label} | {t_local:.1f} s | {t_dask:.1f} s; local / dask = "
                  f"{t_local / t_dask:.2f} |")
        print(f"| starting the cluster (once) | - | {start:.1f} s |")
        print(f"| same entries in both caches | {both} of {n} | models with other weights: {differ} |")
        print(f"| no-op task, submit then wait, one at a time | - | {o['round_trip_ms']:.1f} ms |")
        print(f"| no-op tasks, 200 at once | - | {o['noop_per_s']:.0f} tasks/s |")
        print(f"| tiny training job (MLP width 4, 64 digits, 1 epoch), one at a time, stored | "
              f"{o['tiny_local_ms']:.1f} ms | {o['tiny_dask_ms']:.1f} ms (overhead "
              f"{o['tiny_dask_ms'] - o['tiny_local_ms']:.1f} ms per job) |")
        assert both == n and differ == 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
