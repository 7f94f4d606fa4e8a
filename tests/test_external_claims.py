"""Claims declared in another package: the example package is installed in a temporary directory,
as a user would, and its claim runs from there; `lmc-claims list`, the report and `lmc-claims
compare` treat it like a built-in claim."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_an_installed_claim_package_runs_from_its_own_directory(tmp_path):
    pkg = tmp_path / "entezari_claims"
    shutil.copytree(ROOT / "examples" / "entezari_claims", pkg)
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                              "--target", str(site), str(pkg)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("LMC_CLAIMS_SCHEDULER", None)
    shutil.rmtree(pkg / "entezari_claims")  # the installed copy, not the source tree, is what runs

    listed = subprocess.run([sys.executable, "-m", "lmc_claims.cli", "list", "--json"], capture_output=True, text=True,
                            cwd=pkg, env=env, timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert "entezari2022-depth" in listed.stdout

    reports = tmp_path / "reports"
    run = subprocess.run([sys.executable, "-m", "pytest", "-m", "claims", "--claims-scale=smoke", "-p", "no:cacheprovider",
                          "--claims-id=entezari2022-depth", f"--claims-cache-dir={tmp_path / 'cache'}",
                          f"--claims-report-dir={reports}"], capture_output=True, text=True, cwd=pkg, env=env, timeout=1800)
    assert run.returncode in (0, 1), run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((reports / "report.json").read_text())
    ours = [r for r in report["claims"] if r["id"] == "entezari2022-depth"]
    assert len(ours) == 1 and ours[0]["verdict"] in ("pass", "fail", "inconclusive") and ours[0]["n_seeds"] >= 3
    assert "entezari2022-depth" in {c["id"] for c in report["claims_summary"]}
    assert "entezari2022-depth" in (reports / "report.md").read_text()

    compared = subprocess.run([sys.executable, "-m", "lmc_claims.cli", "compare", str(reports), str(reports)],
                              capture_output=True, text=True, cwd=pkg, env=env, timeout=300)
    assert compared.returncode == 0 and "entezari2022-depth" in compared.stdout, compared.stdout + compared.stderr
