"""The one code path that writes a report directory's report.json, report.md, report.html and figures/.

Both the pytest plugin (at the end of `pytest -m claims`) and `lmc-claims report` call
`write_report`: each claim test's record is rebuilt from its netCDF file, so a report rebuilt
later from the stored data is the report the run wrote (apart from its creation time).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from ..files import atomic_write_bytes
from .figures import render_figures
from .markdown import render_markdown
from .page import render_html
from .records import assemble, meta_from_records, records_to_rebuild
from .summary import build_report

FIGURE_DIR = "figures"


REPORT_FIX = "pass a writable directory (--claims-report-dir for pytest, REPORT_DIR for lmc-claims)."


def _write(path: Path, data: bytes | str) -> None:
    atomic_write_bytes(path, data, REPORT_FIX)


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
        _write(report_dir / file, png)
    stale = report_dir / FIGURE_DIR
    for old in stale.glob("*.png") if stale.is_dir() else ():
        if f"{FIGURE_DIR}/{old.name}" not in pngs:
            old.unlink()  # a figure of a claim test that is no longer in the report
    _write(report_dir / "report.json", json.dumps(report, indent=1, default=str) + "\n")
    _write(report_dir / "report.md", render_markdown(report))
    _write(report_dir / "report.html", render_html(report, pngs))
    return report


def rebuild_report(report_dir: Path) -> dict:
    """`lmc-claims report`: every report file again, from data/*.nc alone (no training, no torch)."""
    runs, warnings = records_to_rebuild(Path(report_dir))
    return write_report(Path(report_dir), runs, warnings=warnings)
