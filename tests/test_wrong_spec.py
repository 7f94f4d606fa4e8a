"""A user's hand-written spec that is not a symmetry of their network: every claim test of that
architecture errors out naming the permutation (no verdict rests on it), and the property check
fails with the size of the difference."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_wrong_hand_written_spec_gives_errors_not_verdicts(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LMC_CLAIMS_SCHEDULER"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "claims", "--claims-scale=smoke", "-p", "no:cacheprovider",
                           "--claims-arch=examples.wrong_spec:make_net", "--claims-id=ainsworth2023-wm-barrier,spec-symmetry",
                           "-k", "w1", f"--claims-cache-dir={tmp_path / 'cache'}", f"--claims-report-dir={tmp_path / 'r'}",
                           str(ROOT / "claims")], cwd=ROOT, capture_output=True, text=True, env=env, timeout=1200)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = json.loads((tmp_path / "r" / "report.json").read_text())["claims"]
    by_id = {}
    for r in records:
        by_id.setdefault(r["id"], []).append(r)
    assert [r["verdict"] for r in by_id["ainsworth2023-wm-barrier"]] == ["error"]
    message = by_id["ainsworth2023-wm-barrier"][0]["message"]
    assert "not a symmetry" in message and "'P_1'" in message and "layer2.weight" in message
    assert [r["verdict"] for r in by_id["spec-symmetry"]] == ["fail"]
    assert "[lmc-claims] trained" not in proc.stdout  # nothing was trained on a wrong spec
