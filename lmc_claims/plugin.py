"""pytest plugin: options, fixtures and hooks for claim tests.

Kept thin and cheap to import (torch is imported inside fixtures). Under pytest-xdist,
workers attach each claim's JSON record to its test report (user_properties travel with
reports) and only the controller writes report.json / report.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .errors import LmcClaimsError, ensure_writable_dir

RESULT_PROPERTY = "lmc_claims_result"


@dataclass
class ClaimsSession:
    scale_name: str
    archs: list[str] | None
    claim_ids: list[str] | None
    device_name: str
    cache_dir: Path | None
    report_dir: Path
    datasets: list[str] | None
    data_root: str | None
    quiet: bool
    is_worker: bool
    records: list[dict] = field(default_factory=list)
    device_label: str = ""
    _validated: bool = False

    def scale(self):
        """The scale, restricted to / extended with --claims-arch and --claims-dataset (validated)."""
        from .data import INPUT_SHAPES, check_dataset_name
        from .models import ARCHITECTURES
        from .models.registry import get_architecture, validate
        from .scales import get_scale

        scale = get_scale(self.scale_name)
        for a in self.archs or ():
            get_architecture(a)
        for d in self.datasets or ():
            check_dataset_name(d)
        scale = scale.select(self.archs, self.datasets)
        if not self._validated:
            for r in scale.runs:
                if r.arch not in ARCHITECTURES:
                    validate(r.arch, INPUT_SHAPES[r.dataset])
            self._validated = True
        return scale


_KEY = pytest.StashKey[ClaimsSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lmc-claims", "linear mode connectivity claim tests (pytest -m claims)")
    group.addoption("--claims-scale", default="ci", metavar="smoke|ci|paper",
                    help="size of models, data and seed counts (default: ci, minutes on a CPU)")
    group.addoption("--claims-device", default="auto", metavar="auto|cpu|cuda",
                    help="where to train and measure (default: auto = cuda when present, else cpu)")
    group.addoption("--claims-cache-dir", default=None, metavar="DIR",
                    help="trained-model cache, kept between runs (default: $LMC_CLAIMS_CACHE or ~/.cache/lmc-claims)")
    group.addoption("--claims-report-dir", default="reports", metavar="DIR",
                    help="where report.md/.json, junit.xml and data/*.nc go (default: reports)")
    group.addoption("--claims-arch", "--arch", default=None, metavar="NAME[,NAME]",
                    help="architectures to verify instead of the scale's: built-in names (`lmc-claims list`), "
                    "mlp-dN, an import path module.sub:factory, or an `lmc_claims.architectures` entry point")
    group.addoption("--claims-dataset", default=None, metavar="NAME[,NAME]",
                    help="datasets to verify on instead of the scale's (`lmc-claims datasets`)")
    group.addoption("--claims-id", default=None, metavar="ID[,ID]",
                    help="run only these claims (ids from `lmc-claims list`)")
    group.addoption("--claims-data-root", default=None, metavar="DIR",
                    help="where downloaded datasets live (default: $LMC_CLAIMS_DATA or ./datasets)")


def claims_selected(config: pytest.Config) -> bool:
    expr = config.option.markexpr or ""
    return bool(re.search(r"\bclaims\b", expr)) and not re.search(r"\bnot\s+claims\b", expr)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "claims: a paper claim verified on trained networks (run with -m claims)")
    opt = config.option
    base = Path(config.invocation_params.dir)
    report_dir = (base / opt.claims_report_dir).resolve()
    split = lambda v: [x.strip() for x in v.split(",") if x.strip()] if v else None
    session = ClaimsSession(
        scale_name=opt.claims_scale,
        archs=split(opt.claims_arch),
        claim_ids=split(opt.claims_id),
        datasets=split(opt.claims_dataset),
        data_root=opt.claims_data_root,
        device_name=opt.claims_device,
        cache_dir=Path(opt.claims_cache_dir).expanduser() if opt.claims_cache_dir else None,
        report_dir=report_dir,
        quiet=config.get_verbosity() < 0,
        is_worker=hasattr(config, "workerinput"),
    )
    config.stash[_KEY] = session
    config.pluginmanager.register(_Hooks(session), "lmc-claims-hooks")
    selected = claims_selected(config)
    if selected or opt.claims_scale != "ci" or opt.claims_device != "auto" or session.archs or session.datasets \
            or session.claim_ids:
        try:
            from .catalogue import get_claim
            from .data import set_data_root
            from .device import resolve_device

            for claim_id in session.claim_ids or ():
                get_claim(claim_id)
            if session.data_root:
                set_data_root(session.data_root)
            session.scale()  # validates scale, architecture and dataset names
            session.device_label = str(resolve_device(opt.claims_device))
            if selected and not session.is_worker:
                ensure_writable_dir(report_dir, "report directory", "pass a writable directory with --claims-report-dir.")
        except LmcClaimsError as e:
            raise pytest.UsageError(str(e)) from None
    if selected and not session.is_worker and getattr(opt, "xmlpath", None) is None:
        opt.xmlpath = str(report_dir / "junit.xml")


# -- fixtures -------------------------------------------------------------------

@pytest.fixture(scope="session")
def claims_session(request) -> ClaimsSession:
    return request.config.stash[_KEY]


@pytest.fixture(scope="session")
def claims_scale(claims_session):
    return claims_session.scale()


@pytest.fixture(scope="session")
def claims_lab(request, claims_session, claims_scale):
    """Trained models and permutation searches, cached on disk and shared by all claim tests."""
    from .device import resolve_device
    from .lab import Lab, Progress
    from .zoo import Zoo, default_cache_dir

    try:
        zoo = Zoo(claims_session.cache_dir or default_cache_dir())
        device = resolve_device(claims_session.device_name)
    except LmcClaimsError as e:
        pytest.exit(str(e), returncode=4)
    return Lab(claims_scale, device, zoo, Progress(quiet=claims_session.quiet, write=_terminal_writer(request.config)))


def _terminal_writer(config: pytest.Config):
    """Write a line to the terminal past pytest's output capture (as live logging does)."""
    capman = config.pluginmanager.getplugin("capturemanager")
    tr = config.pluginmanager.getplugin("terminalreporter")

    def write(line: str) -> None:
        if tr is None or capman is None:
            return
        with capman.global_and_fixture_disabled():
            tr.ensure_newline()
            tr.write_line(line)

    return write


def _safe_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1]).strip("_")


@pytest.fixture
def verify(request, claims_session, claims_lab):
    """verify(claim_id, dataset, config=..., seeds=..., notes=...): judge the claim from the
    dataset's per-seed statistics, write the netCDF (always), record the result, then
    fail (fail), skip (inconclusive) or return (pass)."""
    from .catalogue import get_claim
    from .claims import FAIL, INCONCLUSIVE, judge, overall
    from .results import attach_verdict, provenance, write_netcdf

    def _verify(claim_id: str, ds, *, config: dict, seeds, notes: tuple[str, ...] = ()):
        claim = get_claim(claim_id)
        judgements = [judge(c, ds[c.statistic].values, claim.min_seeds) for c in claim.criteria]
        verdict = overall(judgements)
        params = dict(getattr(getattr(request.node, "callspec", None), "params", {}))
        if "setting" in params:
            params = dict(zip(("arch", "dataset", "width"), params.pop("setting")), **params)
        for run_param in ("width_run", "two_layer_run"):
            if run_param in params:
                params = dict(zip(("arch", "dataset"), params.pop(run_param)), **params)
        prov = provenance(str(claims_lab.device), {"scale": claims_lab.scale.name, "params": params, **config}, seeds)
        ds = attach_verdict(ds, claim, judgements, verdict, prov)
        path = write_netcdf(ds, claims_session.report_dir / "data" / f"{_safe_name(request.node.nodeid)}.nc")
        record = {
            "nodeid": request.node.nodeid,
            "id": claim.id,
            "paper": claim.paper,
            "section": claim.section,
            "statement": claim.statement,
            "metric": claim.metric,
            "paper_figure": claim.paper_figure,
            "params": params,
            "verdict": verdict,
            "value": judgements[0].mean,
            "criterion": "; ".join(j.criterion.text() for j in judgements),
            "n_seeds": min(j.n for j in judgements),
            "judgements": [j.as_dict() for j in judgements],
            "notes": list(notes),
            "data_file": str(path.relative_to(claims_session.report_dir)),
        }
        request.node.user_properties.append((RESULT_PROPERTY, json.dumps(record, default=float)))
        detail = "; ".join(
            f"{j.criterion.text()}: mean {j.mean:.4g} ± {j.std:.2g} (n={j.n}), bounds ({j.lower:.4g}, {j.upper:.4g}) -> {j.verdict}"
            for j in judgements
        )
        if verdict == FAIL:
            pytest.fail(f"claim {claim.id} does not hold here: {detail}", pytrace=False)
        if verdict == INCONCLUSIVE:
            pytest.skip(f"claim {claim.id} inconclusive: {detail}")
        return judgements

    return _verify


# -- collecting and reporting: hooks of the per-run ClaimsSession -----------------

def _record_from_report(report: pytest.TestReport) -> dict | None:
    for name, value in report.user_properties:
        if name == RESULT_PROPERTY:
            record = json.loads(value)
            record["duration_s"] = round(report.duration, 3)
            return record
    if report.failed and "claims" in report.keywords:
        # Crashed before judging: still listed, so a broken claim cannot vanish from the report.
        return {
            "nodeid": report.nodeid, "id": report.nodeid.split("::")[-1].split("[")[0], "params": {},
            "verdict": "error", "message": report.longreprtext[-2000:], "judgements": [], "n_seeds": 0,
        }
    return None


def claim_ids_of(item: pytest.Item) -> set[str]:
    """The claim a test verifies: its module's CLAIM, or a `claim` parameter."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "claim" in params:
        return {params["claim"]}
    module_claim = getattr(getattr(item, "module", None), "CLAIM", None)
    return {module_claim} if module_claim else set()


class _Hooks:
    def __init__(self, session: ClaimsSession):
        self.cs = session
        self.report: dict | None = None
        self.error: str | None = None  # why the report could not be written, if it could not

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        if not self.cs.claim_ids:
            return
        wanted = set(self.cs.claim_ids)
        keep = [i for i in items if "claims" not in i.keywords or claim_ids_of(i) & wanted]
        deselected = [i for i in items if i not in keep]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = keep

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.failed and "claims" in report.keywords):
            record = _record_from_report(report)
            if record is not None:
                self.cs.records.append(record)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.cs.is_worker or not self.cs.records:
            return
        # The same code path as `lmc-claims report`: records are rebuilt from the netCDF files just
        # written; the run adds what only it knows (node ids, notes, durations, crashed tests).
        from .report import write_report
        from .results import git_commit

        try:
            self.report = write_report(self.cs.report_dir, self.cs.records,
                                       {"scale": self.cs.scale_name, "device": self.cs.device_label or self.cs.device_name,
                                        "git_commit": git_commit()})
        except LmcClaimsError as e:
            self.error = str(e)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        tr = terminalreporter
        if self.error:
            tr.section("lmc-claims verification summary", red=True)
            tr.write_line(f"the report could not be written: {self.error}", red=True)
            return
        if self.report is None:
            return
        from .report import format_table, summary_rows

        tr.section("lmc-claims verification summary")
        for line in format_table(summary_rows(self.report), ("claim", "parameters", "verdict", "key figure vs criterion")):
            tr.write_line(line)
        for warning in self.report.get("warnings", []):
            tr.write_line(f"warning: {warning}", yellow=True)
        tr.write_line(f"report: {self.cs.report_dir / 'report.html'} (report.md, report.json, figures/, junit.xml "
                      "and data/*.nc beside it)")


# -- parametrization from the scale ---------------------------------------------------

def _skip_marks(reason: str | None) -> list:
    """A dataset whose files are absent skips its claim tests, saying where to put which files."""
    return [pytest.mark.skip(reason=reason)] if reason else []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Claim tests asking for `setting` run once per architecture x dataset x width of the
    scale; `n_models` (merge size) adds each run's merge sizes; `width_run` once per
    architecture x dataset with several widths; `two_layer_run` once, on the scale's
    two-layer family (lmc_claims/two_layer.py)."""
    if not {"setting", "width_run", "two_layer_run"} & set(metafunc.fixturenames):
        return
    from .data import availability

    scale = metafunc.config.stash[_KEY].scale()
    if "two_layer_run" in metafunc.fixturenames:
        # Claims about two-layer nets run on the scale's own two-layer family (its extra runs),
        # whatever architectures are being verified.
        from .two_layer import family_runs

        base, _ = family_runs(scale)
        reason = availability(base.dataset)
        metafunc.parametrize("two_layer_run", [pytest.param(
            (base.arch, base.dataset), id=f"{base.arch}-{base.dataset}",
            marks=_skip_marks(reason))])
        return
    missing = {d: availability(d) for d in {r.dataset for r in scale.runs}}
    if "width_run" in metafunc.fixturenames:
        # Claims across widths: one test per architecture x dataset with at least two widths.
        runs = [r for r in scale.runs if len(r.widths) >= 2]
        metafunc.parametrize("width_run", [
            pytest.param((r.arch, r.dataset), id=f"{r.arch}-{r.dataset}",
                         marks=_skip_marks(missing[r.dataset]))
            for r in runs])
        return
    params = []
    for r in scale.runs:
        marks = _skip_marks(missing[r.dataset])
        for w in r.widths:
            sizes = r.merge_sizes if "n_models" in metafunc.fixturenames else (None,)
            for n in sizes:
                values = ((r.arch, r.dataset, w),) if n is None else ((r.arch, r.dataset, w), n)
                ident = f"{r.arch}-{r.dataset}-w{w}" + ("" if n is None else f"-N{n}")
                params.append(pytest.param(*values, id=ident, marks=marks))
    names = "setting" if "n_models" not in metafunc.fixturenames else ("setting", "n_models")
    metafunc.parametrize(names, params)
