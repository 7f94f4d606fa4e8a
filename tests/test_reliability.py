"""Faults, concurrency and bad input: what must never happen to a verification run."""

import hashlib
import io
import json
import os
import pickle
import shlex
import signal
import subprocess
import sys
import textwrap
import time
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
    import sys, time, torch
    from lmc_claims.zoo import Zoo
    def build():
        time.sleep(float(sys.argv[2]))
        return {"w": torch.arange(1000.0)}
    payload, built = Zoo(sys.argv[1]).fetch("model", {"seed": 0}, "cpu", build)
    print("built" if built else "loaded", float(payload["w"].sum()), flush=True)
""")


def start_builder(cache: Path, delay: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", BUILDER, str(cache), str(delay)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_killed_build_leaves_no_entry_that_passes_for_complete(tmp_path, sig):
    proc = start_builder(tmp_path, delay=30)
    time.sleep(3)  # inside build(): the lock is held, nothing is written yet
    proc.send_signal(sig)
    proc.wait(timeout=30)
    zoo = Zoo(tmp_path)
    entry = zoo.entry_dir("model", zoo.key("model", {"seed": 0}, "cpu"))
    assert not (entry / "COMPLETE").exists()
    # The next run takes the lock (released by the dead process) and builds the entry.
    again = start_builder(tmp_path, delay=0)
    out, err = again.communicate(timeout=60)
    assert out.split()[0] == "built", err


def test_two_processes_asking_for_one_entry_build_it_once(tmp_path):
    procs = [start_builder(tmp_path, delay=3) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
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
