"""Claim-test records rebuilt from the netCDF files under data/.

A claim test's netCDF file holds its measurements, its judgement (criterion_* variables) and
the claim and provenance as attributes, so the report can be rebuilt from the files alone.
Three things only the pytest run knows are not in the files: the test's node id, the notes
the claim test passed to `verify`, and its duration. They come from the run's own records
(pytest) or from the previous report.json (`lmc-claims report`); without either, the node id
falls back to the data file's name and the notes are empty.

Only xarray and the netCDF4 engine are imported here (no torch), so `lmc-claims report`
works on a machine that never trained anything.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import LmcClaimsError
from .summary import ERROR

RUN_ONLY = ("nodeid", "notes", "duration_s")
LEADING_PARAMS = ("arch", "dataset", "width")  # the order the plugin builds params in; netCDF stores them sorted


def load_claim_file(path: Path):
    from ..results import read_netcdf  # xarray only: no torch

    return read_netcdf(path)


def _finite(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _json_attr(value, default):
    """Attributes that were dicts or lists are stored as JSON text by results.sanitize_attr."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value else default
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.ndarray):
        return value.tolist()
    return default if value is None else value


def ordered_params(params: dict) -> dict:
    lead = {k: params[k] for k in LEADING_PARAMS if k in params}
    return {**lead, **{k: v for k, v in params.items() if k not in lead}}


def _per_seed(ds, statistic: str) -> list[float | None]:
    """The criterion's statistic for every seed (pair, model set): the spread the verdict was judged on."""
    if statistic not in ds:
        return []
    return [_finite(v) for v in np.asarray(ds[statistic].values, float).ravel()]


def _judgements(ds) -> list[dict]:
    if "criterion_text" not in ds:
        return []
    meanings = str(ds["criterion_verdict"].attrs.get("flag_meanings", "pass fail inconclusive")).split()
    out = []
    for i in range(ds.sizes["criterion"]):
        at = lambda name: ds[name].values[i]
        out.append({
            "criterion": str(at("criterion_text")),
            "n": int(at("criterion_n")),
            "mean": _finite(at("criterion_mean")),
            "std": _finite(at("criterion_std")),
            "lower": _finite(at("criterion_lower")),
            "upper": _finite(at("criterion_upper")),
            "threshold": _finite(at("criterion_threshold")) if "criterion_threshold" in ds else None,
            "verdict": meanings[int(at("criterion_verdict"))],
            "source": str(at("criterion_source")),
            # Files written before sequential judging: one look at the single level, no 95% interval.
            "alpha": _finite(at("criterion_alpha")) if "criterion_alpha" in ds else 0.05,
            "low95": _finite(at("criterion_low95")) if "criterion_low95" in ds else None,
            "high95": _finite(at("criterion_high95")) if "criterion_high95" in ds else None,
            "premise": bool(at("criterion_premise")) if "criterion_premise" in ds else False,
            "corrected": str(at("criterion_corrected")) if "criterion_corrected" in ds else "",
            "values": _per_seed(ds, str(at("criterion_text")).split(" ")[0]),
        })
    return out


def _sequence(config) -> dict:
    """The look that decided and how many the test could take (files before sequential judging: 1 of 1)."""
    seq = config.get("sequential") if isinstance(config, dict) else None
    seq = seq if isinstance(seq, dict) else {}
    return {"look": seq.get("look", 1), "looks": seq.get("looks", 1), "alpha_per_look": seq.get("alpha_per_look", 0.05)}


def record_from_dataset(ds, data_file: str, run: dict | None = None) -> dict:
    """The report.json record of one claim test, from its netCDF dataset; `run` supplies RUN_ONLY fields."""
    attrs = ds.attrs
    missing = [k for k in ("claim_id", "verdict", "config") if k not in attrs]
    if missing:
        raise LmcClaimsError(
            f"{data_file} is not a claim-test file written by lmc-claims (attributes {', '.join(missing)} are missing).",
            "move files that are not claim results out of the report's data/ directory.",
        )
    config = _json_attr(attrs["config"], {})
    run = run or {}
    judgements = _judgements(ds)
    notes = _json_attr(attrs.get("notes"), None)
    record = {
        "nodeid": attrs.get("nodeid") or run.get("nodeid") or Path(data_file).stem,
        "id": attrs["claim_id"],
        "paper": attrs.get("paper", ""),
        "section": attrs.get("section", ""),
        "statement": attrs.get("statement", ""),
        "metric": attrs.get("metric", ""),
        "paper_figure": attrs.get("paper_figure", ""),  # what the paper itself reports, where the claim says
        "params": ordered_params(config.get("params", {}) if isinstance(config, dict) else {}),
        "verdict": attrs["verdict"],
        "value": next((j["mean"] for j in judgements if not j["premise"]), judgements[0]["mean"] if judgements else None),
        "criterion": "; ".join(j["criterion"] for j in judgements),
        "n_seeds": min((j["n"] for j in judgements), default=0),
        **_sequence(config),
        "judgements": judgements,
        "notes": list(notes) if isinstance(notes, list) else [notes] if notes else list(run.get("notes", [])),
        "data_file": data_file,
    }
    # Regime, deciding split, published figures and the headline flag (verify.verify wrote them).
    context = _json_attr(attrs.get("claim_context"), {})
    record.update(context if isinstance(context, dict) else {})
    if "duration_s" in run:
        record["duration_s"] = run["duration_s"]
    record["scale"] = config.get("scale", "") if isinstance(config, dict) else ""
    record["provenance"] = {k: str(attrs.get(k, "")) for k in
                            ("device", "git_commit", "package_version", "torch_version", "created")}
    record["provenance"]["seeds"] = _json_attr(attrs.get("seeds"), [])
    return record


def _sort_key(record: dict):
    # Claim, then parameters with numbers compared as numbers (width 128 before 512).
    value = lambda v: (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))
    return record["id"], tuple((k, value(v)) for k, v in record.get("params", {}).items()), record.get("nodeid", "")


def assemble(report_dir: Path, run_records: list[dict]) -> tuple[list[dict], dict[str, object]]:
    """Records for the report, each rebuilt from its data file; crashed tests (no data file) kept as given.

    Returns the sorted records and the loaded datasets keyed by data file."""
    records, datasets = [], {}
    for run in run_records:
        data_file = run.get("data_file")
        if not data_file:
            records.append({"verdict": ERROR, "params": {}, "judgements": [], "n_seeds": 0, **run})
            continue
        ds = load_claim_file(Path(report_dir) / data_file)
        datasets[data_file] = ds
        records.append(record_from_dataset(ds, data_file, run))
    return sorted(records, key=_sort_key), datasets


def meta_from_records(records: list[dict], fallback: dict) -> dict:
    """Run-level facts (scale, device, git commit) as the data files record them; several values are joined."""
    meta = {}
    for key, get in (("scale", lambda r: r.get("scale")), ("device", lambda r: r.get("provenance", {}).get("device")),
                     ("git_commit", lambda r: r.get("provenance", {}).get("git_commit"))):
        values = list(dict.fromkeys(str(v) for v in map(get, records) if v))
        meta[key] = ", ".join(values) if values else fallback.get(key, "unknown")
    return meta


def previous_run_records(report_dir: Path) -> tuple[list[dict], list[str]]:
    """From an existing report.json: the RUN_ONLY fields per data file, and crashed tests' records.

    An unreadable report.json is not fatal (it is about to be rewritten): it is reported as a warning."""
    path = Path(report_dir) / "report.json"
    if not path.exists():
        return [], []
    try:
        claims = json.loads(path.read_text())["claims"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return [], [f"the previous report.json could not be read ({e}); node ids and notes fall back to file names"]
    return [r for r in claims if isinstance(r, dict)], []


def records_to_rebuild(report_dir: Path) -> tuple[list[dict], list[str]]:
    """Run records for every data/*.nc file, with what the previous report.json knew about them."""
    report_dir = Path(report_dir)
    if not report_dir.is_dir():
        raise LmcClaimsError(
            f"The report directory {report_dir} does not exist.",
            "pass the directory `pytest -m claims` wrote (its --claims-report-dir; `reports` by default).",
        )
    files = sorted((report_dir / "data").glob("*.nc"))
    if not files:
        raise LmcClaimsError(
            f"{report_dir} has no data/*.nc files to build a report from.",
            f"run the claims first (`pytest -m claims --claims-report-dir={report_dir}`), or pass the directory "
            "that holds their data/ folder.",
        )
    previous, warnings = previous_run_records(report_dir)
    by_file = {r.get("data_file"): r for r in previous if r.get("data_file")}
    runs = []
    for f in files:
        data_file = f"data/{f.name}"
        old = by_file.get(data_file, {})
        runs.append({"data_file": data_file, **{k: old[k] for k in RUN_ONLY if k in old}})
    crashed = [r for r in previous if not r.get("data_file") and r.get("verdict") == ERROR]
    return runs + crashed, warnings
