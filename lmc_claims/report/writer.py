"""The one code path that writes a report directory's report.json, report.md, report.html and figures/.

Both the pytest plugin (at the end of `pytest -m claims`) and `lmc-claims report` call
`write_report`: each claim test's record is rebuilt from its netCDF file, so a report rebuilt
later from the stored data is the report the run wrote (apart from its creation time).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from ..errors import LmcClaimsError
from .figures import render_figures
from .markdown import render_markdown
from .page import render_html
from .records import assemble, meta_from_records, records_to_rebuild
from .summary import build_report

FIGURE_DIR = "figures"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a report."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise LmcClaimsError(f"Cannot write the report into {path.parent} ({e.strerror or e}).",
                             "pass a writable directory (--claims-report-dir for pytest, REPORT_DIR for lmc-claims).") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; a report is meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _figure_entry(fig) -> dict:
    d = asdict(fig)
    d.pop("png")
    return d


def write_report(report_dir: Path, run_records: list[dict], run_meta: dict | None = None,
                 warnings: list[str] | None = None) -> dict:
    """Rebuild every record from its data file, draw the figures and write all report files.

    `run_records` are the run's records (pytest) or stubs naming data files (`lmc-claims report`); records
    without a data file are crashed tests, kept as they are. Returns the report as written to report.json."""
    report_dir = Path(report_dir)
    records, datasets = assemble(report_dir, run_records)
    figs = render_figures([(r, datasets[r["data_file"]]) for r in records if r.get("data_file") in datasets])
    for r in records:
        if r.get("data_file"):
            r["figures"] = [_figure_entry(f) for f in figs.by_test.get(r["data_file"], [])]
    report = build_report(records, meta_from_records(records, run_meta or {}))
    report["claim_figures"] = {cid: [_figure_entry(f) for f in fs] for cid, fs in figs.by_claim.items()}
    report["warnings"] = [*(warnings or []), *figs.warnings]

    pngs = {f.file: f.png for f in figs.all()}
    for file, png in pngs.items():
        atomic_write(report_dir / file, png)
    stale = report_dir / FIGURE_DIR
    for old in stale.glob("*.png") if stale.is_dir() else ():
        if f"{FIGURE_DIR}/{old.name}" not in pngs:
            old.unlink()  # a figure of a claim test that is no longer in the report
    atomic_write(report_dir / "report.json", json.dumps(report, indent=1, default=str) + "\n")
    atomic_write(report_dir / "report.md", render_markdown(report))
    atomic_write(report_dir / "report.html", render_html(report, pngs))
    return report


def rebuild_report(report_dir: Path) -> dict:
    """`lmc-claims report`: every report file again, from data/*.nc alone (no training, no torch)."""
    runs, warnings = records_to_rebuild(Path(report_dir))
    return write_report(Path(report_dir), runs, warnings=warnings)
