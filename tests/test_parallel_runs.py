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
