"""The package's layers point one way along the pipeline: every import of `lmc_claims`, module-level,
function-local or under TYPE_CHECKING, goes to the same layer or one below; no two modules import
each other, however indirectly; no module is over 400 lines; the plugin imports no torch while
pytest starts, option defaults converted through argparse's `type=` included."""

from __future__ import annotations

import ast
import fnmatch
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lmc_claims"
MAX_LINES = 400

# The declared order, lowest first. A module may import modules of its own layer or of a lower
# one; `*` matches one package's modules (catalogue.ito2024, build.jobs, ...).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("version", "errors", "files", "seeds", "names", "device", "cpu")),
    ("configuration (no torch)", ("datasets", "recipes", "judging", "scales", "designs", "costs", "catalogue",
                                  "catalogue.*")),
    ("maths and the cache", ("data", "models", "models.*", "permutation", "permutation.*", "training", "matching",
                             "matching.*", "metrics", "metrics.*", "zoo", "testing", "testing.*")),
    ("build", ("build", "build.*")),
    ("workbench", ("progress", "lab")),
    ("measurements", ("measurements", "measurements.*")),
    ("plan", ("plan", "estimate")),
    ("results and report", ("results", "report", "report.*")),
    ("run side", ("options", "params", "verify", "session", "runner")),
    ("entry points", ("plugin", "cli", "api", "")),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer_of(name: str) -> int:
    for i, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            return i
    raise AssertionError(f"lmc_claims.{name} is in no layer of {__file__}: declare it")


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules this module imports, wherever the import statement stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                mod = "lmc_claims" + ("." + mod if mod else "")
            else:
                mod = node.module or ""
            # `from x import y` imports module x.y when there is one, else x (for its attribute y)
            targets = [f"{mod}.{a.name}" if _relative(f"{mod}.{a.name}") in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            if not (t == "lmc_claims" or t.startswith("lmc_claims.")):
                continue
            rel = _relative(t)
            while rel not in known and rel:
                rel = rel.rpartition(".")[0]
            if rel in known and rel != name:
                out.add(rel)
    return out


def _relative(dotted: str) -> str:
    return dotted[len("lmc_claims."):] if dotted.startswith("lmc_claims.") else ""


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def test_every_module_is_in_a_layer():
    for name in modules():
        layer_of(name)


def test_imports_point_down_the_layers():
    wrong = [f"lmc_claims.{a or '__init__'} ({LAYERS[layer_of(a)][0]}) imports lmc_claims.{b or '__init__'} "
             f"({LAYERS[layer_of(b)][0]})"
             for a, deps in sorted(graph().items()) for b in sorted(deps) if layer_of(b) > layer_of(a)]
    assert wrong == []


def test_no_import_circle():
    edges = graph()
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_no_module_is_over_400_lines():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_layer_check_sees_function_local_and_type_checking_imports(tmp_path):
    """What hid the old circle: imports inside functions and under TYPE_CHECKING count."""
    path = tmp_path / "jobs.py"  # read as lmc_claims.build.jobs, a module one package deep
    path.write_text(textwrap.dedent("""
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from ..lab import Lab
        def f():
            from ..plan import for_claims
            from .. import session
            from lmc_claims.measurements import ito2024
    """))
    deps = imports_of("build.jobs", path, set(modules()))
    assert {"lab", "plan", "session", "measurements.ito2024"} <= deps
    assert all(layer_of(d) > layer_of("build.jobs") for d in deps)


def test_pytest_starts_without_importing_torch(tmp_path):
    """The plugin is loaded by every pytest run in an environment that has lmc-claims: its options and
    their defaults (converted by argparse through `type=`) are checked without torch. (Options that
    name an architecture or a device are validated with torch, and only when given.)"""
    (tmp_path / "conftest.py").write_text(textwrap.dedent("""
        import sys

        def pytest_sessionstart(session):
            heavy = sorted(m for m in sys.modules if m.split(".")[0] == "torch")
            print("TORCH-MODULES", len(heavy), heavy[:3])
    """))
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    for extra in ([], ["--claims-executor=local", "--claims-report-dir=elsewhere"]):
        proc = subprocess.run([sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider", "-q", *extra, str(tmp_path)],
                              capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "TORCH-MODULES 0 []" in proc.stdout, proc.stdout[-2000:]


@pytest.mark.parametrize("name", ["scales", "catalogue", "designs", "recipes", "names", "datasets", "judging", "plan"])
def test_the_configuration_layer_is_torch_free(name):
    proc = subprocess.run([sys.executable, "-c", f"import sys, lmc_claims.{name}; "
                           "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
