"""pytest plugin: options, markers, fixtures and hooks for claim tests; nothing else.

Kept thin and cheap to import (torch is imported inside fixtures only). The run's options,
state, parametrisation, judging and wiring live in `options.py`, `session.py`, `params.py`,
`verify.py` and `runner.py`.
"""

from __future__ import annotations

import argparse

import pytest

from .errors import LmcClaimsError
from .options import claims_selected
from .params import parametrize, tag_claim_tests
from .session import ClaimsSession
from .verify import verify as verify_and_record

_KEY = pytest.StashKey[ClaimsSession]()
_LAB = pytest.StashKey[object]()  # the run's Lab, made by the claims_lab fixture or the prebuild
_CLUSTER = pytest.StashKey[object]()  # a LocalCluster the xdist controller started for its workers


def _checked(kind: str, names):
    """An option type that rejects unknown values while the command line is parsed."""

    def check(value: str) -> str:
        known = names()
        if value not in known:
            from .errors import unknown_name

            raise argparse.ArgumentTypeError(str(unknown_name(kind, value, known)))
        return value

    check.__name__ = kind  # argparse names the type in its messages
    return check


def _seed_start(value: str) -> int:
    """--claims-seeds: a non-negative integer, checked while the command line is parsed."""
    try:
        start = int(value)
    except ValueError:
        start = -1
    if start < 0:
        raise argparse.ArgumentTypeError(f"--claims-seeds takes a whole number >= 0 (the first model seed), not {value!r}")
    return start


def _scale_names():
    from .scales import SCALES

    return SCALES


def _device_names():
    from .names import DEVICE_CHOICES

    return DEVICE_CHOICES


def _executor_names():
    from .names import EXECUTORS

    return EXECUTORS


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lmc-claims", "linear mode connectivity claim tests (pytest -m claims)")
    group.addoption("--claims-scale", default="ci", metavar="smoke|ci|paper", type=_checked("scale", _scale_names),
                    help="size of models, data and seed counts (default: ci, minutes on a CPU)")
    group.addoption("--claims-device", default="auto", metavar="auto|cpu|cuda", type=_checked("device", _device_names),
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
    group.addoption("--claims-seeds", default=0, metavar="START", type=_seed_start,
                    help="train and judge the models of the seeds from START on instead of 0 (a fresh sample; "
                    "nothing else changes)")
    group.addoption("--claims-data-root", default=None, metavar="DIR",
                    help="where downloaded datasets live (default: $LMC_CLAIMS_DATA or ./datasets)")
    group.addoption("--claims-executor", default="local", metavar="local|dask", type=_checked("executor", _executor_names),
                    help="where models are trained and matchings searched: local (default: this process) or dask "
                    "(a Dask cluster: every model and matching the selected claims need is submitted before they run)")
    group.addoption("--claims-scheduler", default=None, metavar="ADDRESS",
                    help="the Dask scheduler for --claims-executor=dask (default: $LMC_CLAIMS_SCHEDULER; neither: a "
                    "LocalCluster on this machine, one worker per core or GPU, shut down at the end)")
    group.addoption("--claims-shared-cache", action="store_true", default=False,
                    help="with --claims-executor=dask, workers write the cache themselves: the cache directory must be "
                    "on a filesystem every worker mounts at the same path, with working file locks (README)")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "claims: a paper claim verified on trained networks (run with -m claims)")
    session = ClaimsSession.from_config(config)
    config.stash[_KEY] = session
    config.pluginmanager.register(_Hooks(session), "lmc-claims-hooks")
    selected = claims_selected(config)
    if selected or session.customised:
        try:
            session.validate(selected)
        except LmcClaimsError as e:
            raise pytest.UsageError(str(e)) from None
    if selected and not session.is_worker and getattr(config.option, "xmlpath", None) is None:
        config.option.xmlpath = str(session.report_dir / "junit.xml")
    if selected and session.executor == "dask" and not session.is_worker and _xdist_controller(config):
        _share_cluster(config, session)


def _xdist_controller(config: pytest.Config) -> bool:
    return getattr(config.option, "dist", "no") != "no" and bool(getattr(config.option, "numprocesses", None) or
                                                                 getattr(config.option, "tx", None))


def _share_cluster(config: pytest.Config, session: ClaimsSession) -> None:
    """Under pytest-xdist, one LocalCluster for all workers (each worker is a client of it)."""
    from .runner import share_cluster

    try:
        cluster = share_cluster(session)
    except LmcClaimsError as e:
        raise pytest.UsageError(str(e)) from None
    if cluster is not None:
        config.stash[_CLUSTER] = cluster


def pytest_unconfigure(config: pytest.Config) -> None:
    lab = config.stash.get(_LAB, None)
    if lab is not None:
        lab.executor.close()
    cluster = config.stash.get(_CLUSTER, None)
    if cluster is not None:
        cluster.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if {"setting_key", "setting", "width_run", "two_layer_run", "dimension_family"} & set(metafunc.fixturenames):
        parametrize(metafunc, metafunc.config.stash[_KEY].scale())


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
    return _lab(request.config)


def _lab(config: pytest.Config):
    """The run's Lab (made once): its zoo, device and executor."""
    if _LAB not in config.stash:
        from .device import resolve_device
        from .lab import Lab
        from .progress import Progress
        from .runner import make_executor
        from .zoo import Zoo, default_cache_dir

        cs = config.stash[_KEY]
        progress = Progress(quiet=cs.quiet, write=_terminal_writer(config))
        try:
            zoo = Zoo(cs.cache_dir or default_cache_dir())
            device = resolve_device(cs.device_name)
            executor = make_executor(cs, device, zoo, progress)
        except LmcClaimsError as e:
            pytest.exit(str(e), returncode=4)
        config.stash[_LAB] = Lab(cs.scale(), device, zoo, progress, executor)
    return config.stash[_LAB]


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


@pytest.fixture
def verify(request, claims_session, claims_lab):
    """verify(claim_id, dataset, config=..., seeds=..., notes=...): judge, write the netCDF, record,
    then fail / skip (inconclusive) / return the judgements; see `verify.verify`."""
    return lambda claim_id, ds, **kw: verify_and_record(claims_session.report_dir, claims_lab, request.node, claim_id, ds, **kw)


# -- hooks of the run's ClaimsSession -------------------------------------------------

class _Hooks:
    def __init__(self, session: ClaimsSession):
        self.cs = session

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        deselected = self.cs.deselect(items)
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [i for i in items if i not in deselected]
        tag_claim_tests(items)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Before anything trains: which datasets the run lacks, and where to put which files; with a
        cluster, every model and matching the collected claim tests need is submitted now, so that
        the cluster is kept busy and the tests find a warm cache."""
        if not claims_selected(session.config) or session.config.option.collectonly:
            return
        items = [i for i in session.items if "claims" in i.keywords]
        if not items:
            return
        from .runner import missing_data

        tr = session.config.pluginmanager.getplugin("terminalreporter")
        for line in missing_data(self.cs.scale()):
            if tr is not None:
                tr.write_line(f"lmc-claims: {line}", yellow=True)
        if self.cs.scale_name.startswith("paper") and tr is not None:  # hours, not minutes: say so first
            from .runner import estimate_lines

            for line in estimate_lines(self.cs.scale(), items):
                tr.write_line(f"lmc-claims: {line}")
        if self.cs.executor == "local":
            return
        from .runner import prebuild

        prebuild(_lab(session.config), items)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.cs.add_report(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.cs.write_report()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        tr = terminalreporter
        if self.cs.error:
            tr.section("lmc-claims verification summary", red=True)
            tr.write_line(f"the report could not be written: {self.cs.error}", red=True)
            return
        if self.cs.report is None:
            return
        from .report import format_table, summary_rows

        tr.section("lmc-claims verification summary")
        for line in format_table(summary_rows(self.cs.report), ("claim", "parameters", "verdict", "key figure vs criterion")):
            tr.write_line(line)
        for warning in self.cs.report.get("warnings", []):
            tr.write_line(f"warning: {warning}", yellow=True)
        tr.write_line(f"report: {self.cs.report_dir / 'report.html'} (report.md, report.json, figures/, junit.xml "
                      "and data/*.nc beside it)")
