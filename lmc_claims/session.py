"""One claims run's state and rules: the selected scale, architectures and datasets, the records
of the claim tests judged so far, how a claim test is judged and recorded (`verify`), and how
claim tests are parametrised from the scale. `plugin.py` wires these into pytest.

Under pytest-xdist, workers attach each claim's JSON record to its test report (user_properties
travel with reports) and only the controller writes the report.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .errors import LmcClaimsError, ensure_writable_dir

RESULT_PROPERTY = "lmc_claims_result"
CLAIM_PROPERTY = "lmc_claims_claim"  # the claim a test verifies, so that a crash is filed under it
PARAMS_PROPERTY = "lmc_claims_params"  # its parameters (arch, dataset, width, ...), for the same reason


def claims_selected(config: pytest.Config) -> bool:
    """Whether the run selects the claim tests (`-m claims`)."""
    expr = config.option.markexpr or ""
    return bool(re.search(r"\bclaims\b", expr)) and not re.search(r"\bnot\s+claims\b", expr)


def _split(value: str | None) -> list[str] | None:
    return [x.strip() for x in value.split(",") if x.strip()] if value else None


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
    report: dict | None = None
    error: str | None = None  # why the report could not be written, if it could not
    _validated: bool = False
    executor: str = "local"  # where models and matchings are built: "local" or "dask" (executor.py)
    scheduler: str | None = None  # the Dask scheduler's address (None: $LMC_CLAIMS_SCHEDULER, else a LocalCluster)
    shared_cache: bool = False  # Dask workers write the cache themselves

    @classmethod
    def from_config(cls, config: pytest.Config) -> "ClaimsSession":
        opt = config.option
        return cls(
            scale_name=opt.claims_scale,
            archs=_split(opt.claims_arch),
            claim_ids=_split(opt.claims_id),
            datasets=_split(opt.claims_dataset),
            data_root=opt.claims_data_root,
            device_name=opt.claims_device,
            cache_dir=Path(opt.claims_cache_dir).expanduser() if opt.claims_cache_dir else None,
            report_dir=(Path(config.invocation_params.dir) / opt.claims_report_dir).resolve(),
            quiet=config.get_verbosity() < 0,
            is_worker=hasattr(config, "workerinput"),
            executor=getattr(opt, "claims_executor", "local"),
            scheduler=getattr(opt, "claims_scheduler", None),
            shared_cache=getattr(opt, "claims_shared_cache", False),
        )

    @property
    def customised(self) -> bool:
        """Whether any claims option differs from its default (then it is validated even without -m claims)."""
        return (self.scale_name != "ci" or self.device_name != "auto" or bool(self.archs or self.datasets
                                                                                  or self.claim_ids))

    def validate(self, selected: bool) -> None:
        """Check every name and directory up front, so that a typo fails at start-up, not mid-run."""
        from .catalogue import get_claim
        from .data import set_data_root
        from .device import resolve_device

        for claim_id in self.claim_ids or ():
            get_claim(claim_id)
        if self.data_root:
            set_data_root(self.data_root)
        self.scale()  # validates architecture and dataset names
        self.device_label = str(resolve_device(self.device_name))
        if selected and not self.is_worker:
            ensure_writable_dir(self.report_dir, "report directory", "pass a writable directory with --claims-report-dir.")

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

    # -- the run's records and report --------------------------------------------------
    def add_report(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.failed and "claims" in report.keywords):
            record = record_from_report(report)
            if record is not None:
                if record["verdict"] == "error":
                    record.update(self.crash_context(record["id"], record["params"]))
                self.records.append(record)

    def crash_context(self, claim_id: str, params: dict) -> dict:
        """What a crashed claim test's record says beyond the error: the claim's statement and
        source, and whether its setting lies inside the paper's regime, as a judged one would."""
        from .catalogue import get_claim
        from .results import claim_context

        try:
            claim = get_claim(claim_id)
            outside = regime_reason(claim, self.scale(), params)
        except LmcClaimsError:
            return {}
        return {**claim_fields(claim), **claim_context(claim, outside, [])}

    def write_report(self) -> None:
        """The same code path as `lmc-claims report`: records are rebuilt from the netCDF files just
        written; the run adds what only it knows (node ids, notes, durations, crashed tests)."""
        if self.is_worker or not self.records:
            return
        from .report import write_report
        from .results import git_commit

        try:
            self.report = write_report(self.report_dir, self.records,
                                       {"scale": self.scale_name, "device": self.device_label or self.device_name,
                                        "git_commit": git_commit()})
        except LmcClaimsError as e:
            self.error = str(e)

    def deselect(self, items: list[pytest.Item]) -> list[pytest.Item]:
        """The claim tests --claims-id leaves out (every other test stays)."""
        if not self.claim_ids:
            return []
        wanted = set(self.claim_ids)
        return [i for i in items if "claims" in i.keywords and not claim_ids_of(i) & wanted]


def record_from_report(report: pytest.TestReport) -> dict | None:
    for name, value in report.user_properties:
        if name == RESULT_PROPERTY:
            record = json.loads(value)
            record["duration_s"] = round(report.duration, 3)
            return record
    if report.failed and "claims" in report.keywords:
        # Crashed before judging: still listed, so a broken claim cannot vanish from the report.
        props = dict(report.user_properties)
        claim = props.get(CLAIM_PROPERTY) or report.nodeid.split("::")[-1].split("[")[0]
        return {
            "nodeid": report.nodeid, "id": claim, "params": json.loads(props.get(PARAMS_PROPERTY, "{}")),
            "verdict": "error", "message": report.longreprtext[-2000:], "judgements": [], "n_seeds": 0,
        }
    return None


def tag_claim_tests(items: list[pytest.Item]) -> None:
    """Give every claim test its claim and parameters as report properties, so that a test that
    crashes before judging (in a fixture, while training) is still filed under both."""
    for item in items:
        if "claims" not in item.keywords:
            continue
        claims = sorted(claim_ids_of(item))
        if len(claims) == 1:
            item.user_properties.append((CLAIM_PROPERTY, claims[0]))
        item.user_properties.append((PARAMS_PROPERTY, json.dumps(node_params(item), default=str)))


def claim_ids_of(item: pytest.Item) -> set[str]:
    """The claim a test verifies: its module's CLAIM, or a `claim` parameter."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "claim" in params:
        return {params["claim"]}
    module_claim = getattr(getattr(item, "module", None), "CLAIM", None)
    return {module_claim} if module_claim else set()


# -- building on a cluster (--claims-executor) -----------------------------------------------

def executor_names() -> tuple[str, ...]:
    from .executor import EXECUTORS

    return EXECUTORS


def make_executor(session: ClaimsSession, device, zoo, progress):
    """The run's executor: local (default) or a Dask client (lmc_claims/executor.py)."""
    from .executor import make_executor as make

    return make(session.executor, device, scheduler=session.scheduler, progress=progress,
                shared_cache_root=zoo.root.resolve() if session.shared_cache else None)


def prebuild(lab, items: list[pytest.Item]) -> None:
    """Submit every model and matching the collected claim tests need (lmc_claims/plan.py) and
    store them as they arrive, before the first claim test runs."""
    from .plan import for_items

    lab.progress(lab.executor.prebuild(lab, for_items(lab.scale, items)).line())


def share_cluster(session: ClaimsSession):
    """Under pytest-xdist with --claims-executor=dask and no scheduler: one LocalCluster for all
    workers, its address exported to them ($LMC_CLAIMS_SCHEDULER); None when a scheduler is given."""
    import os

    from .device import resolve_device
    from .executor import SCHEDULER_ENV, start_local_cluster

    if session.scheduler or os.environ.get(SCHEDULER_ENV):
        return None
    cluster = start_local_cluster(resolve_device(session.device_name))
    os.environ[SCHEDULER_ENV] = cluster.scheduler_address  # the workers, started next, inherit it
    return cluster


# -- judging one claim test --------------------------------------------------------------

def _safe_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1]).strip("_")


def node_params(node: pytest.Item) -> dict:
    """The test's parametrisation as flat parameters (arch, dataset, width, ...)."""
    params = dict(getattr(getattr(node, "callspec", None), "params", {}))
    if "setting" in params:
        params = dict(zip(("arch", "dataset", "width"), params.pop("setting")), **params)
    for run_param in ("width_run", "two_layer_run"):
        if run_param in params:
            params = dict(zip(("arch", "dataset"), params.pop(run_param)), **params)
    if "dimension_family" in params:
        params = dict(zip(("variation", "arch", "dataset"), params.pop("dimension_family")), **params)
    return params


def regime_reason(claim, scale, params: dict) -> str:
    """Why the setting of these parameters lies outside the claim's regime ("" inside it)."""
    run = scale.run(params["arch"], params["dataset"]) if "arch" in params and "dataset" in params else None
    return claim.regime.check(params.get("arch", ""), params.get("width"), run.recipe.optimizer if run else "")


def claim_fields(claim) -> dict:
    """What every record of a claim test says about the claim itself."""
    return {"paper": claim.paper, "section": claim.section, "statement": claim.statement, "metric": claim.metric,
            "paper_figure": claim.paper_figure}


def verify(session: ClaimsSession, lab, node: pytest.Item, claim_id: str, ds, *, config: dict, seeds,
           notes: tuple[str, ...] = ()):
    """Judge the claim from the dataset's per-sample statistics, write the netCDF (always),
    record the result, then fail (fail), skip (inconclusive) or return the judgements (pass)."""
    from .catalogue import get_claim
    from .judging import FAIL, INCONCLUSIVE, compare_published, judge, overall
    from .results import attach_verdict, claim_context, provenance, write_netcdf

    claim = get_claim(claim_id)
    judgements = [judge(c, ds[c.statistic].values, claim.min_seeds) for c in claim.criteria]
    verdict = overall(judgements)
    params = node_params(node)
    outside = regime_reason(claim, lab.scale, params)
    published = [compare_published(p, ds[p.statistic].values if p.statistic in ds else []) for p in claim.published]
    prov = provenance(str(lab.device), {"scale": lab.scale.name, "params": params, **config}, seeds)
    ds = attach_verdict(ds, claim, judgements, verdict, prov, regime_reason=outside, published=published)
    path = write_netcdf(ds, session.report_dir / "data" / f"{_safe_name(node.nodeid)}.nc")
    record = {
        "nodeid": node.nodeid,
        "id": claim.id,
        **claim_fields(claim),
        "params": params,
        "verdict": verdict,
        "value": judgements[0].mean,
        "criterion": "; ".join(j.criterion.text() for j in judgements),
        "n_seeds": min(j.n for j in judgements),
        "judgements": [j.as_dict() for j in judgements],
        "notes": list(notes),
        "data_file": str(path.relative_to(session.report_dir)),
        **claim_context(claim, outside, published),
    }
    node.user_properties.append((RESULT_PROPERTY, json.dumps(record, default=float)))
    detail = "; ".join(
        f"{j.criterion.text()}: mean {j.mean:.4g} ± {j.std:.2g} (n={j.n}), bounds ({j.lower:.4g}, {j.upper:.4g}) -> {j.verdict}"
        for j in judgements
    )
    if verdict == FAIL:
        pytest.fail(f"claim {claim.id} does not hold here: {detail}", pytrace=False)
    if verdict == INCONCLUSIVE:
        pytest.skip(f"claim {claim.id} inconclusive: {detail}")
    return judgements


# -- parametrisation from the scale ---------------------------------------------------------

def _skip_marks(reason: str | None) -> list:
    """A dataset whose files are absent skips its claim tests, saying where to put which files."""
    return [pytest.mark.skip(reason=reason)] if reason else []


def parametrize(metafunc: pytest.Metafunc, scale) -> None:
    """Claim tests asking for `setting` run once per architecture x dataset x width of the
    scale; `width_run` once per architecture x dataset with several widths; `two_layer_run` once,
    on the scale's two-layer family (`scales.two_layer_family`); `dimension_family` once per way
    the dimension claim varies the neurons' dimension."""
    from .data import availability
    from .scales import figure2_family, two_layer_family

    if "dimension_family" in metafunc.fixturenames:
        # The dimension claim as the paper's Figure 2 (learning rates of a 3 x 512 MLP), and beyond
        # the paper across input dimensions of two-layer nets; each named by its first run.
        families = {"lr": figure2_family(scale)[0], "input_dim": two_layer_family(scale)[0]}
        metafunc.parametrize("dimension_family", [pytest.param(
            (variation, r.arch, r.dataset), id=f"{variation}-{r.arch}-{r.dataset}", marks=_skip_marks(availability(r.dataset)))
            for variation, r in families.items()])
        return
    if "two_layer_run" in metafunc.fixturenames:
        # Claims about two-layer nets run on the scale's own two-layer family (its extra runs),
        # whatever architectures are being verified.
        base, _ = two_layer_family(scale)
        metafunc.parametrize("two_layer_run", [pytest.param(
            (base.arch, base.dataset), id=f"{base.arch}-{base.dataset}", marks=_skip_marks(availability(base.dataset)))])
        return
    missing = {d: availability(d) for d in {r.dataset for r in scale.runs}}
    if "width_run" in metafunc.fixturenames:
        # Claims across widths: one test per architecture x dataset with at least two widths.
        metafunc.parametrize("width_run", [
            pytest.param((r.arch, r.dataset), id=f"{r.arch}-{r.dataset}", marks=_skip_marks(missing[r.dataset]))
            for r in scale.runs if len(r.widths) >= 2])
        return
    metafunc.parametrize("setting", [
        pytest.param((r.arch, r.dataset, w), id=f"{r.arch}-{r.dataset}-w{w}", marks=_skip_marks(missing[r.dataset]))
        for r in scale.runs for w in r.widths])
