"""Faults, concurrency and bad input: what must never happen to a verification run."""

import hashlib
import io
import json
import os
import pickle
import queue
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import random_mlp
from lmc_claims.data import FileCheck, availability, set_data_root
from lmc_claims.matching.weight import weight_matching
from lmc_claims.metrics.spectral import layer_svds, side_overlaps, vector_cosines
from lmc_claims.zoo import ZOO_VERSION, CorruptEntryWarning, Zoo

ROOT = Path(__file__).resolve().parents[1]

BUILDER = textwrap.dedent("""
    import signal, sys
    import filelock
    import torch

    # Ctrl-C raises KeyboardInterrupt, as in a terminal, even if the test runner ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    class AnnouncedLock(filelock.FileLock):
        # Says on stdout when another process holds the lock, then waits for it as usual.
        def acquire(self, *args, **kwargs):
            try:
                return super().acquire(blocking=False)
            except filelock.Timeout:
                print("waiting", flush=True)
                return super().acquire(*args, **kwargs)

    filelock.FileLock = AnnouncedLock  # before lmc_claims.zoo imports it
    from lmc_claims.zoo import Zoo

    def build():
        print("building", flush=True)
        sys.stdin.readline()  # holds the lock until the test says go (closes stdin)
        return {"w": torch.arange(1000.0)}

    payload, built = Zoo(sys.argv[1]).fetch("model", {"seed": 0}, "cpu", build)
    print("built" if built else "loaded", float(payload["w"].sum()), flush=True)
""")

# Seconds a child may take to print its next line or to exit: importing torch on a loaded machine is slow.
# Only a limit for a broken child; nothing waits for it to pass.
CHILD_TIMEOUT = 300


class Builder:
    """A BUILDER child process. Its stdout lines are collected as they come, so a test can wait for each."""

    def __init__(self, cache: Path):
        self.proc = subprocess.Popen([sys.executable, "-c", BUILDER, str(cache)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self.pumps = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put, True), daemon=True),
                      threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append, False), daemon=True)]
        for pump in self.pumps:
            pump.start()

    @staticmethod
    def _pump(stream, put, mark_end: bool) -> None:
        for line in stream:
            put(line)
        if mark_end:
            put(None)

    def next_line(self) -> str:
        """The child's next line on stdout; fails the test if none comes in time or the child exits first."""
        try:
            line = self.lines.get(timeout=CHILD_TIMEOUT)
        except queue.Empty:
            pytest.fail(f"the builder printed nothing within {CHILD_TIMEOUT} s; its stderr:\n{self.err()}")
        if line is None:
            pytest.fail(f"the builder exited ({self.wait()}) before printing its next line; its stderr:\n{self.err()}")
        return line.strip()

    def go(self) -> None:
        """Lets build() return (now, or as soon as the child enters it)."""
        self.proc.stdin.close()

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the builder did not exit within {CHILD_TIMEOUT} s; its stderr:\n{self.err()}")

    def err(self) -> str:
        return "".join(self.stderr)[-3000:]


@pytest.fixture
def spawn():
    """Starts Builder children; any still running at the end of the test is killed."""
    started: list[Builder] = []

    def start(cache: Path) -> Builder:
        started.append(Builder(cache))
        return started[-1]

    yield start
    for b in started:
        if b.proc.poll() is None:
            b.proc.kill()
        b.proc.wait()
        for pump in b.pumps:  # they reach the end of the child's output once it is gone
            pump.join(timeout=CHILD_TIMEOUT)
        for stream in (b.proc.stdin, b.proc.stdout, b.proc.stderr):
            stream.close()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_killed_build_leaves_no_entry_that_passes_for_complete(tmp_path, spawn, sig):
    first = spawn(tmp_path)
    assert first.next_line() == "building", first.err()  # inside build(): the lock is held, nothing is written yet
    first.proc.send_signal(sig)
    first.wait()
    zoo = Zoo(tmp_path)
    entry = zoo.entry_dir("model", zoo.key("model", {"seed": 0}, "cpu"))
    assert not (entry / "COMPLETE").exists()
    # The next run takes the lock (released by the dead process: no waiting) and builds the entry.
    again = spawn(tmp_path)
    again.go()
    assert again.next_line() == "building", again.err()
    assert again.next_line().split()[0] == "built", again.err()


def test_two_processes_asking_for_one_entry_build_it_once(tmp_path, spawn):
    procs = [spawn(tmp_path) for _ in range(2)]
    # They overlap: one holds the lock inside build() until told to go, the other waits for that lock.
    assert sorted(p.next_line() for p in procs) == ["building", "waiting"], [p.err() for p in procs]
    for p in procs:
        p.go()
    outs = [p.next_line().split() for p in procs]
    assert sorted(o[0] for o in outs) == ["built", "loaded"]
    assert outs[0][1] == outs[1][1]  # identical payloads
    assert len(Zoo(tmp_path).builds()) == 1


def test_an_entry_from_an_incompatible_version_is_rebuilt(tmp_path):
    zoo = Zoo(tmp_path)
    zoo.fetch("model", {"seed": 0}, "cpu", lambda: {"w": torch.ones(3)})
    entry = zoo.entry_dir("model", zoo.key("model", {"seed": 0}, "cpu"))
    meta = json.loads((entry / "meta.json").read_text())
    meta["zoo_version"] = ZOO_VERSION - 1
    (entry / "meta.json").write_text(json.dumps(meta))
    with pytest.warns(CorruptEntryWarning, match="incompatible version"):
        _, built = zoo.fetch("model", {"seed": 0}, "cpu", lambda: {"w": torch.ones(3)})
    assert built


def test_truncated_or_corrupt_dataset_files_are_named(tmp_path):
    good = tmp_path / "f.bin"
    good.write_bytes(b"x" * 100)
    assert FileCheck("f.bin", size=100).problem(tmp_path) is None
    assert "truncated" in FileCheck("f.bin", size=200).problem(tmp_path)
    assert "md5" in FileCheck("f.bin", md5="0" * 32).problem(tmp_path)
    assert "missing" in FileCheck("g.bin", size=1).problem(tmp_path)
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\0" * 1000)
    set_data_root(tmp_path)
    try:
        message = availability("mnist")
        assert "truncated" in message and "train-images-idx3-ubyte" in message and "download=True" in message
    finally:
        set_data_root("datasets")


@pytest.mark.parametrize("width", [0, 1])
def test_zero_and_one_unit_layers_stay_defined(width):
    _, spec, a = random_mlp(0, width, 2)
    _, _, b = random_mlp(1, width, 2)
    res = weight_matching(spec, a, b)
    assert all(len(p) == width for p in res.perms.values())
    for la, lb in zip(layer_svds(spec, a), layer_svds(spec, b)):
        overlaps = side_overlaps(la, lb, 0.1)
        assert all(0.0 <= o <= 1.0 + 1e-12 for o in overlaps)
        assert np.isfinite(vector_cosines(la, lb).numpy()).all()


def test_rank_deficient_weights_stay_defined():
    _, spec, a = random_mlp(0, 8, 2)
    a = {k: v.clone() for k, v in a.items()}
    a["layers.1.weight"][:, 4:] = 0.0  # rank <= 4
    a["layers.1.weight"][:4] = a["layers.1.weight"][4:]  # repeated rows: repeated singular values
    for la in layer_svds(spec, a):
        overlaps = side_overlaps(la, la, 0.5)
        assert all(o == pytest.approx(1.0) for o in overlaps)


def replace_payload_keeping_checksums(entry: Path, data: bytes) -> None:
    """Overwrite an entry's payload and update its checksums to match: only unpickling can tell it is bad."""
    digest = hashlib.sha256(data).hexdigest()
    (entry / "payload.pt").write_bytes(data)
    meta = json.loads((entry / "meta.json").read_text())
    meta["sha256"] = digest
    (entry / "meta.json").write_text(json.dumps(meta))
    (entry / "COMPLETE").write_text(digest)


def load_error(path: Path) -> str:
    """The name of the error torch.load (weights only) raises on this file."""
    with pytest.raises(Exception) as raised:
        torch.load(path, map_location="cpu", weights_only=True)
    return type(raised.value).__name__


def assert_warned_and_rebuilt(zoo: Zoo, entry: Path) -> None:
    error = load_error(entry / "payload.pt")
    with pytest.warns(CorruptEntryWarning) as caught:
        payload, built = zoo.fetch("model", {"seed": 0}, "cpu", lambda: {"w": torch.arange(3.0)})
    messages = [str(w.message) for w in caught if issubclass(w.category, CorruptEntryWarning)]
    assert any(str(entry) in m and error in m for m in messages), messages
    assert built and torch.equal(payload["w"], torch.arange(3.0))
    assert zoo.fetch("model", {"seed": 0}, "cpu", lambda: pytest.fail("rebuilt twice"))[1] is False


@pytest.mark.parametrize("size", [0, 64, "same"])
def test_a_zero_filled_payload_with_a_matching_checksum_is_warned_about_and_rebuilt(tmp_path, size):
    zoo = Zoo(tmp_path)
    zoo.fetch("model", {"seed": 0}, "cpu", lambda: {"w": torch.arange(3.0)})
    entry = zoo.entry_dir("model", zoo.key("model", {"seed": 0}, "cpu"))
    n = (entry / "payload.pt").stat().st_size if size == "same" else size
    replace_payload_keeping_checksums(entry, b"\0" * n)
    assert_warned_and_rebuilt(zoo, entry)


class RunsACommand:
    """Unpickling this (without weights_only) would run a shell command."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("container", ["bare pickle", "torch zip"])
def test_a_foreign_pickle_with_a_matching_checksum_is_never_run_but_rebuilt(tmp_path, container):
    zoo = Zoo(tmp_path / "cache")
    zoo.fetch("model", {"seed": 0}, "cpu", lambda: {"w": torch.arange(3.0)})
    entry = zoo.entry_dir("model", zoo.key("model", {"seed": 0}, "cpu"))
    marker = tmp_path / "payload-was-executed"
    foreign = RunsACommand(f"touch {shlex.quote(str(marker))}")
    if container == "bare pickle":
        data = pickle.dumps(foreign, protocol=2)
    else:
        buf = io.BytesIO()
        torch.save(foreign, buf)
        data = buf.getvalue()
    assert b"system" in data
    replace_payload_keeping_checksums(entry, data)
    assert_warned_and_rebuilt(zoo, entry)
    assert not marker.exists()
