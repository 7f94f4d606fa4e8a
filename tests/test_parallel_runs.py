"""pytest-xdist: models trained once, bitwise identical to a serial run, one report by the controller."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import xarray as xr

from lmc_claims.zoo import Zoo

ROOT = Path(__file__).resolve().parents[1]
# A subset of claims keeps this test short; it still trains, matches and reports.
CLAIM_IDS = "ito2024-singular-values,ito2024-l2-distance,ainsworth2023-wm-barrier"


def run(cache: Path, reports: Path, *extra):
    cmd = [sys.executable, "-m", "pytest", "-m", "claims", "--claims-scale=smoke", "-p", "no:cacheprovider", "-q",
           f"--claims-id={CLAIM_IDS}", f"--claims-cache-dir={cache}", f"--claims-report-dir={reports}",
           str(ROOT / "claims"), *extra]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=2400)
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def payload_hashes(cache: Path) -> dict[str, str]:
    return {p.parent.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in cache.glob("*/*/payload.pt")}


def comparable(report: dict) -> list:
    """Report records without timings (durations and creation times)."""
    out = []
    for r in report["claims"]:
        r = {k: v for k, v in r.items() if k != "duration_s"}
        r["provenance"] = {k: v for k, v in r.get("provenance", {}).items() if k != "created"}
        out.append(r)
    return out


def test_two_workers_match_a_serial_run(tmp_path):
    run(tmp_path / "cache0", tmp_path / "rep0")
    run(tmp_path / "cache2", tmp_path / "rep2", "-n", "2")
    # Each cache entry was built exactly once, even with two workers asking for the same models.
    builds = Zoo(tmp_path / "cache2").builds()
    assert len(builds) == len({(b["kind"], b["key"]) for b in builds}) > 0
    # Same config, same seeds, on CPU: bitwise identical weights and permutations.
    assert payload_hashes(tmp_path / "cache0") == payload_hashes(tmp_path / "cache2")
    # One report, written by the controller, with the same content as the serial run's.
    r0 = json.loads((tmp_path / "rep0" / "report.json").read_text())
    r2 = json.loads((tmp_path / "rep2" / "report.json").read_text())
    assert comparable(r0) == comparable(r2)
    for rec in r2["claims"]:
        a = xr.load_dataset(tmp_path / "rep0" / rec["data_file"])
        b = xr.load_dataset(tmp_path / "rep2" / rec["data_file"])
        for name in a.data_vars:
            assert a[name].equals(b[name]), name


def test_paths_evaluated_together_give_what_each_gives_alone(tmp_path, monkeypatch):
    """Setting.concurrently runs a measurement's paths several at once on a CPU (threads, one
    intra-op thread each, each on its own copy of the template): every curve must be bitwise the
    one it gives computed alone, one after another."""
    import numpy as np
    import torch

    from lmc_claims import cpu
    from lmc_claims.lab import Lab
    from lmc_claims.measurements.shared import path_curves
    from lmc_claims.metrics import interpolation
    from lmc_claims.scales import get_scale

    s = Lab(get_scale("smoke"), torch.device("cpu"), Zoo(tmp_path)).setting("mlp", "mnist5k", 16)
    paths = [(s.model(0), s.model(1)), (s.model(2), s.model(3)), (s.model(0), s.permuted("wm", 0, 1)), (s.model(1), s.model(1))]
    seen = []
    template_job = lambda template: seen.append(template) or template  # noqa: E731
    assert all(t is not s.template for t in s.concurrently([template_job] * 4))
    together = path_curves(s, paths)
    monkeypatch.setattr(cpu, "cpu_workers", lambda: 1)  # one core: one path after another
    interpolation.evaluation._ENDPOINTS.clear()  # the endpoints evaluated again too
    alone = path_curves(s, paths)
    for got, want in zip(together, alone):
        for split in ("train", "test"):
            assert np.array_equal(got[split].loss, want[split].loss) and np.array_equal(got[split].accuracy, want[split].accuracy)
    assert together[3]["train"].loss_barrier == 0.0 and together[0]["train"].loss_barrier > 0


def test_a_failing_job_drops_the_jobs_not_started(monkeypatch):
    """cpu.concurrently (training, STE, measurements): when a task fails (or Ctrl-C reaches the
    waiting thread) the queued jobs are cancelled, not run to the end first. Synchronised on events:
    job 1 holds the second worker until the pool has cancelled what is queued."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import pytest

    from lmc_claims.cpu import concurrently

    held, release, ran = threading.Event(), threading.Event(), []
    plain = ThreadPoolExecutor.shutdown

    def shutdown(self, wait=True, *, cancel_futures=False):
        plain(self, wait=False, cancel_futures=cancel_futures)
        if cancel_futures:
            release.set()  # the queue is cancelled: let the held jobs finish
        plain(self, wait=wait)

    monkeypatch.setattr(ThreadPoolExecutor, "shutdown", shutdown)

    def job(i):
        def run():
            ran.append(i)
            if i == 0:
                held.wait(timeout=60)  # the timeouts only keep a broken pool from hanging the test
                raise ValueError("job 0 failed")
            held.set()
            release.wait(timeout=5)
        return run

    with pytest.raises(ValueError, match="job 0 failed"):
        concurrently([job(i) for i in range(20)], "cpu", workers=2)
    assert set(ran) <= {0, 1, 2} and {0, 1} <= set(ran)  # the two workers' first jobs, at most one more
