"""Judging one claim test: its criteria over the dataset's independent samples, the netCDF file
(always written), the record the report is built from, then pass, fail or skip (inconclusive).
"""

from __future__ import annotations

import json
import re

import pytest

from .params import RESULT_PROPERTY, node_params


def _safe_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1]).strip("_")


def regime_reason(claim, scale, params: dict) -> str:
    """Why the setting of these parameters lies outside the claim's regime ("" inside it)."""
    run = scale.run(params["arch"], params["dataset"]) if "arch" in params and "dataset" in params else None
    return claim.regime.check(params.get("arch", ""), params.get("width"), run.recipe.optimizer if run else "")


def claim_fields(claim) -> dict:
    """What every record of a claim test says about the claim itself."""
    return {"paper": claim.paper, "section": claim.section, "statement": claim.statement, "metric": claim.metric,
            "paper_figure": claim.paper_figure}


def verify(report_dir, lab, node: pytest.Item, claim_id: str, ds, *, config: dict, seeds,
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
    path = write_netcdf(ds, report_dir / "data" / f"{_safe_name(node.nodeid)}.nc")
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
        "data_file": str(path.relative_to(report_dir)),
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


