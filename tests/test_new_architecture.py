"""A user's own architecture runs through the whole claim suite without touching lmc-claims."""

import json
import os
import subprocess
import sys
from pathlib import Path

from lmc_claims.catalogue import CLAIMS

ROOT = Path(__file__).resolve().parents[1]


def run(tmp_path, arch, extra_path=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), extra_path) if p))
    cmd = [sys.executable, "-m", "pytest", "-m", "claims", "--claims-scale=smoke", "-p", "no:cacheprovider", "-q",
           f"--claims-arch={arch}", f"--claims-cache-dir={tmp_path / 'cache'}", f"--claims-report-dir={tmp_path / 'reports'}",
           str(ROOT / "claims")]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=2400)


def test_example_architecture_runs_every_claim(tmp_path):
    proc = run(tmp_path, "examples.small_cnn:make_net")
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    on_example = {r["id"] for r in report["claims"] if r["params"].get("arch") == "examples.small_cnn:make_net"}
    # Every claim about "the architecture" ran on the example; Ferbach et al.'s claims are about
    # two-layer networks and keep their own architecture.
    assert on_example == {c for c in CLAIMS if not c.startswith("ferbach2024")}
    assert all(r["verdict"] in ("pass", "fail", "inconclusive", "premise-not-met") for r in report["claims"])


def test_import_path_that_does_not_exist_is_a_clear_error(tmp_path):
    proc = run(tmp_path, "no_such_package.models:make_net")
    assert proc.returncode == 4
    assert "cannot be imported" in proc.stderr and "How to fix" in proc.stderr and "Traceback" not in proc.stderr


def test_factory_that_returns_no_module_is_a_clear_error(tmp_path):
    (tmp_path / "bad_arch.py").write_text("def make_net(input_shape, num_classes, width):\n    return 'not a network'\n")
    proc = run(tmp_path, "bad_arch:make_net", extra_path=str(tmp_path))
    assert proc.returncode == 4
    assert "not a torch.nn.Module" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_architecture_name_lists_the_known_ones(tmp_path):
    proc = run(tmp_path, "transformer9000")
    assert proc.returncode == 4 and "resnet20" in proc.stderr and "Traceback" not in proc.stderr


def test_entry_point_architecture_is_found(tmp_path, monkeypatch):
    """A package that declares `[project.entry-points."lmc_claims.architectures"]` is picked up by name."""
    from lmc_claims.models import registry

    dist = tmp_path / "user_models-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: user-models\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[lmc_claims.architectures]\nsmallcnn = examples.small_cnn:make_net\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(ROOT))
    arch = registry.get_architecture("smallcnn")
    assert arch.spec is None and "entry point" in arch.description
    model = arch.factory((1, 28, 28), 10, 1)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert "smallcnn" in registry.known_names()
