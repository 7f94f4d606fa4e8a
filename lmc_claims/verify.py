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


def sequential_judgements(claim, measure, scale, in_regime: bool):
    """(dataset, judgements, verdict, look, looks, pairs) of a claim test judged sequentially: `measure(pairs)`
    on the scale's first look's samples, then, while the test is undecided, on the next look's
    (`Scale.looks`), every look at level `judging.alpha_per_look` so that the error rate over all
    of them stays at `judging.ALPHA`. A dataset instead of `measure`: one look at it."""
    from .judging import INCONCLUSIVE, alpha_per_look, judge, overall

    looks = scale.looks(in_regime) if callable(measure) else (None,)
    alpha = alpha_per_look(len(looks))
    for k, n in enumerate(looks, 1):
        pairs = scale.sample_pairs(n) if callable(measure) else None
        ds = measure(pairs) if callable(measure) else measure
        judgements = [judge(c, ds[c.statistic].values, claim.min_seeds, alpha) for c in claim.criteria]
        verdict = overall(judgements)
        if verdict != INCONCLUSIVE or k == len(looks):
            return ds, judgements, verdict, k, len(looks), pairs


def verify(report_dir, lab, node: pytest.Item, claim_id: str, measured, *, config, seeds, notes=()):
    """Judge the claim from the dataset's per-sample statistics, write the netCDF (always),
    record the result, then fail (fail), skip (inconclusive, premise not met) or return the
    judgements (pass). `measured`: a dataset, or `measure(pairs)` judged sequentially
    (`sequential_judgements`); `config`, `seeds` and `notes` may then be functions f(dataset, pairs)
    of the deciding look's dataset and pairs."""
    from .catalogue import get_claim
    from .judging import FAIL, INCONCLUSIVE, PREMISE_NOT_MET, compare_published
    from .results import attach_verdict, claim_context, provenance, write_netcdf

    claim = get_claim(claim_id)
    params = node_params(node)
    outside = regime_reason(claim, lab.scale, params)
    ds, judgements, verdict, look, looks, pairs = sequential_judgements(claim, measured, lab.scale, not outside)
    config = config(ds, pairs) if callable(config) else config
    seeds = seeds(ds, pairs) if callable(seeds) else seeds
    notes = notes(ds, pairs) if callable(notes) else notes
    published = [compare_published(p, ds[p.statistic].values if p.statistic in ds else []) for p in claim.published]
    sequence = {"look": look, "looks": looks, "alpha_per_look": judgements[0].alpha if judgements else None}
    prov = provenance(str(lab.device), {"scale": lab.scale.name, "params": params, **config, "sequential": sequence},
                      seeds)
    ds = attach_verdict(ds, claim, judgements, verdict, prov, regime_reason=outside, published=published)
    path = write_netcdf(ds, report_dir / "data" / f"{_safe_name(node.nodeid)}.nc")
    deciding = [j for j in judgements if not j.criterion.premise] or judgements
    record = {
        "nodeid": node.nodeid,
        "id": claim.id,
        **claim_fields(claim),
        "params": params,
        "verdict": verdict,
        "value": deciding[0].mean,
        "criterion": "; ".join(j.criterion.text() for j in judgements),
        "n_seeds": min(j.n for j in judgements),
        **sequence,
        "judgements": [j.as_dict() for j in judgements],
        "notes": list(notes),
        "data_file": str(path.relative_to(report_dir)),
        **claim_context(claim, outside, published),
    }
    node.user_properties.append((RESULT_PROPERTY, json.dumps(record, default=float)))
    detail = "; ".join(
        f"{j.criterion.text()}: mean {j.mean:.4g} ± {j.std:.2g} (n={j.n}), bounds ({j.lower:.4g}, {j.upper:.4g}) -> {j.verdict}"
        for j in judgements
    ) + f" (look {look} of {looks})"
    if verdict == FAIL:
        pytest.fail(f"claim {claim.id} does not hold here: {detail}", pytrace=False)
    if verdict == PREMISE_NOT_MET:
        pytest.skip(f"claim {claim.id}: premise not met here: {detail}")
    if verdict == INCONCLUSIVE:
        pytest.skip(f"claim {claim.id} inconclusive: {detail}")
    return judgements
