"""Claim measurements as xarray Datasets, written atomically as netCDF4 and read back.

Attribute values netCDF cannot hold (bool, dict, None, lists of mixed type) are
sanitized first: a bad attribute fails *during* a write and would leave a partial
file, so every file is written to a temporary name in the same directory and renamed
(`files.atomic_write`). Reading needs only xarray and netCDF4 (no torch), so the report
can be rebuilt from the files alone.
"""

from __future__ import annotations

import datetime as _dt
import json
import subprocess
from pathlib import Path

import numpy as np
import xarray as xr

from .version import __version__
from .errors import LmcClaimsError
from .files import atomic_write
from .judging import VERDICTS, Claim, Judgement

ENGINE = "netcdf4"  # the one engine every file is written and read with


def sanitize_attr(value):
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if value is None:
        return ""
    if isinstance(value, (str, int, float, np.integer, np.floating)):
        return value
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iuf":
        return value  # numeric arrays (as attributes read back from a file) are valid as they are
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind == "b":
        return value.astype(np.int8)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return np.asarray(value)
    return json.dumps(value, sort_keys=True, default=str)


def sanitize_attrs(attrs: dict) -> dict:
    return {str(k): sanitize_attr(v) for k, v in attrs.items()}


def git_commit(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def provenance(device: str, config: dict, seeds) -> dict:
    import torch  # only a measuring run records provenance; readers never need torch

    return {
        "package_version": __version__,
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "device": device,
        "config": config,
        "seeds": list(seeds),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def claim_context(claim: Claim, regime_reason: str, published: list[dict]) -> dict:
    """What a record says about the claim beyond its verdict: its regime and whether this setting is
    inside it, the split that decides, the published figures beside ours, and the headline flag."""
    return {
        "regime": {"text": claim.regime.text, "source": claim.regime.source, "training": claim.regime.training},
        "in_regime": not regime_reason,
        "regime_reason": regime_reason,
        "split": claim.split,
        "split_source": claim.split_source,
        "published": published,
        "headline": claim.headline,
    }


def attach_verdict(ds: xr.Dataset, claim: Claim, judgements: list[Judgement], verdict: str, prov: dict,
                   regime_reason: str = "", published: list[dict] | None = None) -> xr.Dataset:
    """Add the judgement as variables over a `criterion` dimension and the claim as attributes
    (with its regime, deciding split and published figures: a report rebuilt from the file has them)."""
    ds = ds.copy()
    crit = np.arange(len(judgements))
    code = lambda v: VERDICTS.index(v)
    ds["criterion_text"] = ("criterion", np.array([j.criterion.text() for j in judgements], dtype=object))
    ds["criterion_source"] = ("criterion", np.array([j.criterion.source for j in judgements], dtype=object))
    ds["criterion_corrected"] = ("criterion", np.array([j.criterion.corrected for j in judgements], dtype=object))
    ds["criterion_premise"] = ("criterion", np.array([int(j.criterion.premise) for j in judgements], np.int8),
                               {"long_name": "1: the paper's premise, judged like a criterion"})
    for field, long in (("mean", "mean over seeds"), ("std", "standard deviation over seeds"),
                        ("lower", "lower one-sided bound at the look's level"),
                        ("upper", "upper one-sided bound at the look's level"),
                        ("alpha", "one-sided level of the deciding look (alpha split over the looks)"),
                        ("low95", "lower end of the mean's two-sided 95% interval"),
                        ("high95", "upper end of the mean's two-sided 95% interval")):
        ds[f"criterion_{field}"] = ("criterion", np.array([getattr(j, field) for j in judgements], float), {"long_name": long})
    ds["criterion_threshold"] = ("criterion", np.array([j.criterion.threshold for j in judgements], float))
    ds["criterion_n"] = ("criterion", np.array([j.n for j in judgements], np.int64), {"long_name": "number of seeds"})
    ds["criterion_verdict"] = (
        "criterion",
        np.array([code(j.verdict) for j in judgements], np.int8),
        {"flag_values": np.arange(len(VERDICTS), dtype=np.int8), "flag_meanings": " ".join(VERDICTS)},
    )
    ds = ds.assign_coords(criterion=crit)
    ds.attrs.update(
        {
            "title": f"lmc-claims measurement for claim {claim.id}",
            "claim_id": claim.id,
            "paper": claim.paper,
            "section": claim.section,
            "statement": claim.statement,
            "metric": claim.metric,
            "min_seeds": claim.min_seeds,
            "paper_figure": claim.paper_figure,
            "verdict": verdict,
            "source": "lmc-claims",
            "references": claim.paper,
            "claim_context": claim_context(claim, regime_reason, published or []),
            **prov,
        }
    )
    return ds


def write_netcdf(ds: xr.Dataset, path: Path) -> Path:
    ds = ds.copy()
    ds.attrs = sanitize_attrs(ds.attrs)
    for name in ds.variables:
        ds[name].attrs = sanitize_attrs(ds[name].attrs)
    return atomic_write(Path(path), lambda tmp: ds.to_netcdf(tmp, engine=ENGINE),
                        "pass a writable directory with --claims-report-dir.")


def read_netcdf(path: Path) -> xr.Dataset:
    """The whole file, loaded eagerly and closed; errors name the file and the fix."""
    try:
        return xr.load_dataset(path, engine=ENGINE)
    except FileNotFoundError:
        raise LmcClaimsError(
            f"The data file {path} does not exist.",
            "re-run `pytest -m claims` to measure it again, or run `lmc-claims report DIR` to rebuild the report "
            "from the data files that are there.",
        ) from None
    except (OSError, ValueError) as e:
        raise LmcClaimsError(
            f"{path} cannot be read as netCDF4 ({e}).",
            "delete the damaged file (or move it out of data/) and re-run its claim test with `pytest -m claims`.",
        ) from None
