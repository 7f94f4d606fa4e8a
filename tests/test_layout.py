"""The pipeline's seams: a thin plugin, one sub-seed scheme, one atomic write, a torch-free
netCDF reader, the Setting handle and options checked while they are parsed."""

import ast
import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import xarray as xr

from lmc_claims.files import atomic_write
from lmc_claims.lab import Lab, Setting
from lmc_claims.scales import get_scale
from lmc_claims.seeds import sub_seed
from lmc_claims.zoo import Zoo

ROOT = Path(__file__).resolve().parents[1]


def python(code: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_the_plugin_imports_no_torch_and_no_claim_family_code():
    proc = python("""
        import sys, lmc_claims.plugin
        heavy = ("lmc_claims.measurements", "lmc_claims.catalogue", "lmc_claims.lab", "lmc_claims.scales")
        print(sorted(m for m in sys.modules if m.split(".")[0] == "torch" or m.startswith(heavy)))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    # ... nor inside its hooks: claim families are reached through the run side only.
    plugin = ast.parse((ROOT / "lmc_claims" / "plugin.py").read_text())
    imported = {n.module for n in ast.walk(plugin) if isinstance(n, ast.ImportFrom) and n.module}
    run_side = {"options", "params", "verify", "session", "runner"}
    assert imported <= {"__future__", "errors", "names", "scales", "device", "progress", "lab", "zoo", "report"} | run_side, imported


def test_a_netcdf_result_reads_back_without_torch(tmp_path):
    xr.Dataset({"v": ("pair", [1.0, 2.0])}).to_netcdf(tmp_path / "r.nc", engine="netcdf4")
    proc = python(f"""
        import sys

        class NoTorch:  # any import of torch now fails
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "torch":
                    raise ImportError("torch is not installed here")

        sys.meta_path.insert(0, NoTorch())
        from lmc_claims.results import read_netcdf
        from lmc_claims.report.records import load_claim_file
        print(float(read_netcdf({str(tmp_path / 'r.nc')!r}).v.sum()), float(load_claim_file({str(tmp_path / 'r.nc')!r}).v.sum()))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["3.0", "3.0"]


def _imports_within(package: Path) -> dict[str, set[str]]:
    """Each module of a package -> the sibling modules it imports (`from .x import`, `from . import x`)."""
    edges = {}
    for path in package.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        edges[path.stem] = names - {path.stem}
    return edges


def test_no_import_circle_between_the_report_modules():
    edges = _imports_within(ROOT / "lmc_claims" / "report")
    edges.pop("__init__")
    assert "figures" not in edges["plots"] and "plots" in edges["figures"]  # the circle this replaced

    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, (*seen, n))) for n in edges.get(start, ()))

    assert [m for m in edges if reaches(m, m)] == []


@pytest.mark.parametrize("option, message", [("--claims-scale=huge", "Unknown scale 'huge'"),
                                             ("--claims-device=tpu", "Unknown device 'tpu'")])
def test_bad_option_values_are_rejected_while_parsing_even_without_claims(tmp_path, option, message):
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", option, "-p", "no:cacheprovider", "-q", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 4
    assert message in proc.stderr and "How to fix" in proc.stderr and "Traceback" not in proc.stderr


def test_sub_seeds_are_the_same_in_another_process_and_differ_by_purpose():
    here = [sub_seed("wm", 0, 1), sub_seed("wm", 1, 0), sub_seed("train-order", 0, 1)]
    proc = python("from lmc_claims.seeds import sub_seed; print(sub_seed('wm', 0, 1), sub_seed('wm', 1, 0), "
                  "sub_seed('train-order', 0, 1))")
    assert proc.returncode == 0, proc.stderr
    assert [int(v) for v in proc.stdout.split()] == here
    assert len(set(here)) == 3 and all(0 <= v < 2**63 for v in here)


def test_a_failed_atomic_write_leaves_neither_the_target_nor_a_temporary_file(tmp_path):
    def half_then_crash(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "out.txt", half_then_crash, "unused")
    assert list(tmp_path.iterdir()) == []
    atomic_write(tmp_path / "out.txt", lambda tmp: tmp.write_text("whole"), "unused")
    assert (tmp_path / "out.txt").read_text() == "whole" and len(list(tmp_path.iterdir())) == 1


def test_a_setting_holds_what_measurements_need_and_is_frozen(tmp_path):
    lab = Lab(get_scale("smoke"), torch.device("cpu"), Zoo(tmp_path))
    s = lab.setting("mlp", "mnist5k", 16)
    assert lab.setting("mlp", "mnist5k", 16) is s
    assert s.run.recipe.epochs == 3 and s.bn_data is None and set(s.eval_sets) == {"train", "test"}
    assert s.spec.perm_names and s.template(s.data.x_test[:2]).shape == (2, 10)
    assert [x.width for x in lab.settings("mlp", "mnist5k")] == [16, 32]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.width = 32
    assert isinstance(s, Setting) and not Zoo(tmp_path).builds()  # nothing trained yet
