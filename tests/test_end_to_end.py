"""The claim pipeline end to end at smoke scale, run as a user runs it: `pytest -m claims`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr

from lmc_claims.catalogue import CLAIMS
from lmc_claims.scales import SCALES

ROOT = Path(__file__).resolve().parents[1]


def run_claims(tmp_path, *args, report="reports"):
    cmd = [sys.executable, "-m", "pytest", "-m", "claims", "--claims-scale=smoke", "-p", "no:cacheprovider",
           f"--claims-cache-dir={tmp_path / 'cache'}", f"--claims-report-dir={tmp_path / report}",
           str(ROOT / "claims"), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)


SMOKE = SCALES["smoke"]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    return tmp, run_claims(tmp)


def test_claims_run_writes_the_full_report(first_run):
    tmp, proc = first_run
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "lmc-claims verification summary" in proc.stdout
    assert "[lmc-claims] trained mlp-w32-mnist5k-seed0" in proc.stdout
    report = json.loads((tmp / "reports" / "report.json").read_text())
    assert {r["id"] for r in report["claims"]} == set(CLAIMS)
    for r in report["claims"]:
        assert r["verdict"] in ("pass", "fail", "inconclusive", "premise-not-met"), r
        # Sequential: the look that decided, of the looks the test could take (one for exact maths,
        # judged on its models or drawn permutations at once).
        if r["id"] == "ito2024-singular-values" or r["id"].startswith("spec-"):
            assert (r["look"], r["looks"]) == (1, 1)
        else:
            looks = SMOKE.looks(r["in_regime"])
            assert r["looks"] == len(looks) and 1 <= r["look"] <= r["looks"] and r["n_seeds"] <= looks[r["look"] - 1]
        for key in ("paper", "statement", "params", "metric", "value", "criterion", "n_seeds", "data_file"):
            assert key in r
        assert r["n_seeds"] >= 3
        ds = xr.load_dataset(tmp / "reports" / r["data_file"])
        assert ds.attrs["claim_id"] == r["id"] and ds.attrs["verdict"] == r["verdict"]
        assert ds.attrs["device"] == "cpu" and "torch_version" in ds.attrs
    assert (tmp / "reports" / "report.md").read_text().startswith("# lmc-claims verification report")
    assert "<testsuite" in (tmp / "reports" / "junit.xml").read_text()


def test_second_run_reuses_the_cache_and_measures_the_same(first_run):
    tmp, proc = first_run
    again = run_claims(tmp, report="reports2")
    # Progress lines appear only for work done: a warm cache trains and searches nothing.
    assert "[lmc-claims] " not in again.stdout
    a = json.loads((tmp / "reports" / "report.json").read_text())["claims"]
    b = json.loads((tmp / "reports2" / "report.json").read_text())["claims"]
    assert [(r["id"], r["verdict"], r["value"]) for r in a] == [(r["id"], r["verdict"], r["value"]) for r in b]


@pytest.mark.parametrize("option, message", [
    ("--claims-scale=huge", "Unknown scale 'huge'"),
    ("--claims-device=tpu", "Unknown device 'tpu'"),
])
def test_bad_options_get_a_clear_error_not_a_traceback(tmp_path, option, message):
    proc = run_claims(tmp_path, option)
    assert proc.returncode == 4
    assert message in proc.stderr and "How to fix" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unwritable_report_dir_gets_a_clear_error(tmp_path):
    (tmp_path / "blocker").write_text("a file, not a directory")
    proc = run_claims(tmp_path, report="blocker/reports")
    assert proc.returncode == 4
    assert "--claims-report-dir" in proc.stderr and "Traceback" not in proc.stderr


def test_every_result_schema_round_trips_through_netcdf(first_run, tmp_path):
    """Each claim's stored dataset (one schema per claim) reads back equal after a rewrite."""
    from lmc_claims.results import read_netcdf, write_netcdf

    tmp, _ = first_run
    files = sorted((tmp / "reports" / "data").glob("*.nc"))
    assert files
    for path in files:
        ds = read_netcdf(path)
        back = read_netcdf(write_netcdf(ds, tmp_path / path.name))
        xr.testing.assert_identical(ds, back)


def test_a_claim_test_that_crashes_is_filed_with_its_setting_and_regime(tmp_path):
    """A crash before judging (here in the test body, before any measurement) still gives a record
    with the claim, its parameters and whether the setting lies in the paper's regime."""
    (tmp_path / "test_crashing_claim.py").write_text(
        "import pytest\n"
        "pytestmark = pytest.mark.claims\n"
        "CLAIM = 'ainsworth2023-wm-barrier'\n"
        "def test_crashes(setting, verify):\n"
        "    raise RuntimeError('boom in ' + setting[0])\n")
    cmd = [sys.executable, "-m", "pytest", "-m", "claims", "--claims-scale=smoke", "-p", "no:cacheprovider",
           f"--claims-cache-dir={tmp_path / 'cache'}", f"--claims-report-dir={tmp_path / 'rep'}",
           str(tmp_path / "test_crashing_claim.py")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = json.loads((tmp_path / "rep" / "report.json").read_text())["claims"]
    assert sorted(r["params"]["width"] for r in records) == [16, 32]
    for r in records:
        assert r["verdict"] == "error" and "boom in mlp" in r["message"]
        assert r["id"] == "ainsworth2023-wm-barrier" and r["params"]["arch"] == "mlp"
        assert r["statement"] and r["regime"]["text"]
        # Git Re-Basin's MLP claim is about 3 x 512: smoke's widths 16 and 32 lie outside it.
        assert r["in_regime"] is False and r["regime_reason"]
