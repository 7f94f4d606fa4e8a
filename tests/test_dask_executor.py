"""The Dask executor on a LocalCluster of 2 worker processes: a claims run through it reports what
a local run reports, building everything up front; a worker killed mid-training is survived
without a partial cache entry; a job that fails for good shows the worker's traceback; a worker
with other versions is refused; a model trained on a worker is bitwise the local one."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lmc_claims.catalogue import CLAIMS
from lmc_claims.errors import LmcClaimsError
from lmc_claims.build.jobs import DataRef, SearchJob, SettingRef, TrainJob
from lmc_claims.build.worker import Context, Done, Failed, run_train, versions
from lmc_claims.judging import EVERYTHING
from lmc_claims.scales import get_scale
from lmc_claims.training import Recipe, TrainConfig, train
from lmc_claims.zoo import Zoo

ROOT = Path(__file__).resolve().parents[1]
needs_distributed = pytest.mark.skipif(find_spec("distributed") is None,
                                       reason="Dask's `distributed` is not installed (pip install -e \".[test]\" or \".[dask]\")")

# Two claims that use every kind of job the plan knows (pairs, triples, merge sets, STE under both
# recipes, a third model), on one setting of the smoke scale.
CLAIM_IDS = "csiszarik2023-transitivity,ito2024-merge-wm-vs-ste"
SETTING = "w16"


def test_every_claim_of_the_catalogue_declares_what_it_needs():
    """A claim that declares nothing would still run, but everything would be built up front for it."""
    assert [c.id for c in CLAIMS.values() if c.needs == EVERYTHING] == []


# -- a cluster shared by the tests below ---------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    if find_spec("distributed") is None:
        pytest.skip("Dask's `distributed` is not installed (pip install -e \".[test]\" or \".[dask]\")")
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", scheduler_port=0) as c:
        with Client(c) as client:
            client.wait_for_workers(2)
            yield SimpleNamespace(cluster=c, client=client, address=c.scheduler_address)


def smoke_job(seed: int = 0, epochs: int = 3, optimizer: str = "adam", width: int = 16) -> TrainJob:
    ref = DataRef("mnist5k", 1000, 500)
    cfg = TrainConfig(arch="mlp", dataset="mnist5k", width=width, seed=seed,
                      recipe=Recipe(epochs=epochs, n_train=1000, optimizer=optimizer))
    return TrainJob(cfg, ref, "cpu", ref.fingerprint())


def executor(cluster, **kw):
    from lmc_claims.build.dask_cluster import DaskExecutor

    return DaskExecutor(torch.device("cpu"), cluster.address, **kw)


@needs_distributed
def test_a_model_trained_on_a_worker_is_bitwise_the_local_one(cluster):
    job = smoke_job(seed=3)
    res = cluster.client.submit(run_train, job, Context(versions()), key="test-bitwise", pure=False).result()
    assert isinstance(res, Done), res
    local = train(job.config, job.data.load(), torch.device("cpu"))
    assert res.payload.keys() == local.keys()
    for k in local:
        assert torch.equal(res.payload[k], local[k]), k


@needs_distributed
def test_a_job_that_fails_for_good_shows_the_workers_traceback(cluster, tmp_path):
    ex = executor(cluster)
    zoo = Zoo(tmp_path)
    bad = smoke_job(optimizer="nope")  # a bad config: make_optimizer raises ValueError on the worker
    try:
        with pytest.raises(LmcClaimsError) as e:
            ex.fetch(zoo, bad)
        text = str(e.value)
        assert "training mlp-w16-mnist5k-seed0 failed on the Dask worker tcp://" in text
        assert "Worker traceback (last lines):" in text and "make_optimizer" in text and "nope" in text
        # A search of that model inherits the failure instead of running.
        run = get_scale("smoke").runs[0]
        search = SearchJob("wm", SettingRef("mlp", "mnist5k", 16, run), bad, smoke_job(seed=1), None)
        with pytest.raises(LmcClaimsError, match=r"its input failed: training mlp-w16-mnist5k-seed0"):
            ex.fetch(zoo, search)
        assert not list(tmp_path.glob("*/*/COMPLETE"))  # nothing stored
    finally:
        ex.close()
    assert cluster.client.status == "running"  # closing a client leaves a cluster it did not start alone


@needs_distributed
def test_a_worker_with_other_versions_is_refused(cluster):
    import lmc_claims.version

    def pretend(version):
        lmc_claims.version.__version__ = version

    ours = lmc_claims.version.__version__
    cluster.client.run(pretend, "0.0.0-other")
    try:
        with pytest.raises(LmcClaimsError) as e:
            executor(cluster)
        text = str(e.value)
        assert re.search(r"The Dask worker tcp://\S+ runs other versions", text)
        assert f"lmc-claims {ours} here, 0.0.0-other on the worker" in text
        # A worker that joins later is refused by every job it is given.
        res = cluster.client.submit(run_train, smoke_job(), Context(versions()), key="test-versions", pure=False).result()
        assert isinstance(res, Failed) and "0.0.0-other on the worker" in res.problem
    finally:
        cluster.client.run(pretend, ours)


def mark_executing(folder: str, prefix: str):
    """A worker plugin: a file per task that starts executing on a worker, named by the worker's
    pid, and one when it finishes there (the test kills the worker between the two)."""
    from distributed import WorkerPlugin

    class MarkExecuting(WorkerPlugin):
        def transition(self, key, start, finish, **kwargs):
            if isinstance(key, str) and key.startswith(prefix) and finish in ("executing", "memory"):
                Path(folder, f"{finish}-{os.getpid()}").write_text(key)

    return MarkExecuting()


@needs_distributed
def test_a_worker_killed_while_training_is_survived(cluster, tmp_path):
    """Shared-cache mode: workers write the cache. The worker training the model is killed once it
    has started; the job runs again on a worker and the cache holds one complete entry."""
    marks, cache = tmp_path / "marks", tmp_path / "cache"
    marks.mkdir()
    zoo = Zoo(cache)
    ex = executor(cluster, shared_cache_root=str(cache))
    job = smoke_job(seed=5, epochs=60, width=64)  # a few seconds: long enough to be killed mid-training
    key = ex.key(zoo, job)
    cluster.client.register_plugin(mark_executing(str(marks), key), name="mark-executing")
    try:
        fut = ex.submit(zoo, job)
        deadline = time.monotonic() + 300
        while not list(marks.glob("executing-*")):  # the event: a worker started the job
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.02)
        victim = int(next(marks.glob("executing-*")).name.split("-")[1])
        os.kill(victim, signal.SIGKILL)
        payload = ex.fetch(zoo, job)
        assert fut.done()
        assert not (marks / f"memory-{victim}").exists(), "the job ended before its worker was killed"
    finally:
        cluster.client.unregister_worker_plugin("mark-executing")
        ex.close()
    finished = [int(p.name.split("-")[1]) for p in marks.glob("memory-*")]
    assert finished and victim not in finished
    entries = [p for p in (cache / "model").iterdir() if not p.name.endswith(".lock")]
    assert [p.name for p in entries] == [key.split("-", 1)[1]]  # one entry, no temporary directory left
    assert (entries[0] / "COMPLETE").exists()
    assert len(Zoo(cache).builds()) == 1
    local = train(job.config, job.data.load(), torch.device("cpu"))
    assert all(torch.equal(payload[k], local[k]) for k in local)
    cluster.client.wait_for_workers(2)  # the nanny restarts the killed worker


# -- the claims run, as a user runs it -------------------------------------------------------------

def run_claims(tmp_path: Path, name: str, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pytest", "-m", "claims", "--claims-scale=smoke", "-p", "no:cacheprovider",
           f"--claims-cache-dir={tmp_path / name / 'cache'}", f"--claims-report-dir={tmp_path / name / 'reports'}",
           f"--claims-id={CLAIM_IDS}", "-k", SETTING, str(ROOT / "claims"), *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={k: v for k, v in os.environ.items() if k != "LMC_CLAIMS_SCHEDULER"})


def finished(proc: subprocess.Popen) -> SimpleNamespace:
    try:
        out, err = proc.communicate(timeout=1200)
    finally:
        proc.kill()
    return SimpleNamespace(returncode=proc.returncode, stdout=out, stderr=err)


def verdicts(tmp_path: Path, name: str) -> list:
    report = json.loads((tmp_path / name / "reports" / "report.json").read_text())
    return sorted((r["id"], json.dumps(r["params"], sort_keys=True), r["verdict"], r["value"],
                   [(j["mean"], j["std"], j["n"]) for j in r["judgements"]]) for r in report["claims"])


@needs_distributed
def test_a_claims_run_on_a_local_cluster_reports_what_a_local_run_does(tmp_path):
    """`--claims-executor=dask` without a scheduler: a LocalCluster on this machine, every model and
    matching built before the first claim test, and then nothing more."""
    runs = run_claims(tmp_path, "local"), run_claims(tmp_path, "dask", "--claims-executor=dask")  # side by side
    local, dask = map(finished, runs)
    assert local.returncode in (0, 1), local.stdout[-3000:] + local.stderr[-3000:]
    assert dask.returncode in (0, 1), dask.stdout[-3000:] + dask.stderr[-3000:]
    assert verdicts(tmp_path, "dask") == verdicts(tmp_path, "local")

    out = dask.stdout
    assert "[lmc-claims] dask executor: a LocalCluster started here" in out
    summary = re.search(r"prebuild: (\d+) models and matchings planned, 0 already in the cache, (\d+) built", out)
    assert summary and summary.group(1) == summary.group(2), out[-3000:]
    assert re.search(r"\[lmc-claims\] trained mlp-w16-mnist5k-seed0: .* on tcp://\S+ \[\d+/\d+ jobs, .* left\]", out)
    # The claim tests found a warm cache for their first look: after the prebuild's summary, only a test
    # still undecided asks for more, and then only for the later samples' models (seeds 9, 10, 11 at
    # smoke's second look) and their searches ...
    first_look = {m for p in get_scale("smoke").pairs for m in p} | set(get_scale("smoke").thirds(get_scale("smoke").pairs))
    after = out[out.index(summary.group(0)):]
    trained = {int(s) for s in re.findall(r"\[lmc-claims\] trained \S+-seed(\d+)", after)}
    searched = [(int(b), int(a)) for b, a in re.findall(r"\[lmc-claims\] \S+ matching \S+ seeds (\d+)->(\d+)", after)]
    assert not trained & first_look and all(not {a, b} <= first_look for a, b in searched), after[:3000]
    # ... and the cluster built exactly the entries the local run needed, each once.
    built = lambda name: sorted((b["kind"], b["key"]) for b in Zoo(tmp_path / name / "cache").builds())
    assert built("dask") == built("local")
    assert len(built("dask")) >= int(summary.group(1))


GATE_PRELOAD = """
# A Dask worker preload (the test's, not the package's): every training job waits until the gate
# file exists, so the prebuild is certainly still running when the test interrupts it.
import os, time
from pathlib import Path

import lmc_claims.build.worker as worker

_train = worker.run_train


def run_train(*args, **kwargs):
    Path(os.environ["LMC_TEST_GATE"] + ".reached").touch()  # the event the test waits for
    while not Path(os.environ["LMC_TEST_GATE"]).exists():
        time.sleep(0.05)
    return _train(*args, **kwargs)


worker.run_train = run_train
"""


@needs_distributed
def test_ctrl_c_during_a_prebuild_cancels_it_and_closes_the_cluster(tmp_path):
    """The jobs are held on the workers by a gate the test never opens: when SIGINT arrives, the
    prebuild is running whatever the machine's speed. The LocalCluster the command started (on
    ports the OS chose) is gone after it."""
    import psutil

    preload, gate = tmp_path / "gate_preload.py", tmp_path / "gate"
    preload.write_text(GATE_PRELOAD)
    env = {k: v for k, v in os.environ.items() if k != "LMC_CLAIMS_SCHEDULER"}
    env.update(LMC_TEST_GATE=str(gate), DASK_DISTRIBUTED__WORKER__PRELOAD=json.dumps([str(preload)]))
    proc = subprocess.Popen([sys.executable, "-m", "lmc_claims.cli", "prebuild", "--claims-scale=smoke",
                             f"--claims-id={CLAIM_IDS}", "--claims-executor=dask", f"--claims-cache-dir={tmp_path / 'cache'}"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stdout:  # the first event: the jobs are on the cluster
            submitted = re.search(r"prebuild: (\d+) models and matchings submitted", line)
            if submitted:
                break
        assert submitted, proc.stderr.read()[-3000:]
        reached = Path(str(gate) + ".reached")
        deadline = time.monotonic() + 300
        while not reached.exists():  # the second: a worker holds a job at the gate
            assert proc.poll() is None and time.monotonic() < deadline, "no job reached the gate"
            time.sleep(0.05)
        cluster = psutil.Process(proc.pid).children(recursive=True)  # the LocalCluster's processes
        assert cluster
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted; outstanding jobs cancelled" in err
    gone, alive = psutil.wait_procs(cluster, timeout=60)
    assert not alive, [p.cmdline() for p in alive]
    assert Zoo(tmp_path / "cache").builds() == []  # nothing passed the gate, nothing was stored


FULL_CHECK = "LMC_CLAIMS_FULL_PREBUILD_CHECK"


@needs_distributed
@pytest.mark.skipif(not os.environ.get(FULL_CHECK), reason=f"a whole smoke claims run (minutes); set {FULL_CHECK}=1")
def test_a_prebuild_covers_a_whole_smoke_claims_run(tmp_path):
    """`lmc-claims prebuild` on a cluster, then every claim test at smoke scale: nothing more is built."""
    cache = tmp_path / "cache"
    pre = subprocess.run([sys.executable, "-m", "lmc_claims.cli", "prebuild", "--claims-scale=smoke", "--claims-executor=dask",
                          f"--claims-cache-dir={cache}"], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert pre.returncode == 0, pre.stdout[-3000:] + pre.stderr[-3000:]
    before = Zoo(cache).builds()
    run = subprocess.run([sys.executable, "-m", "pytest", "-m", "claims", "--claims-scale=smoke", "-p", "no:cacheprovider",
                          f"--claims-cache-dir={cache}", f"--claims-report-dir={tmp_path / 'reports'}", str(ROOT / "claims")],
                         cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert run.returncode in (0, 1), run.stdout[-3000:] + run.stderr[-3000:]
    assert "[lmc-claims] " not in run.stdout, re.findall(r"\[lmc-claims\] .*", run.stdout)[:20]
    assert Zoo(cache).builds() == before
