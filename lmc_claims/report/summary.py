"""The report as data: the report dict, each claim's headline verdict, each claim test's key figure,
the tables are in tables.py.

A claim's headline verdict is decided only by its claim tests inside the regime its paper
states (`in_regime`): FAIL if one of them fails (or crashed), PASS if all pass, INCONCLUSIVE
otherwise, and "needs the paper scale" when none ran inside the regime. Tests beyond the regime
are still measured and shown, in their own part of the summary, but never decide the headline.

Records written before claims declared a regime lack `in_regime`, `published`, `split` and
`headline`: they count as inside the regime, with nothing published and no deciding split.
"""

from __future__ import annotations

import datetime as _dt
import math

from ..version import __version__

ERROR = "error"  # a claim test that crashed before judging
PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
PREMISE_NOT_MET = "premise-not-met"  # the paper's premise does not hold in this setting (judging.PREMISE_NOT_MET)
NEEDS_PAPER_SCALE = "needs-paper-scale"  # a claim none of whose tests ran inside its paper's regime
VERDICT_ORDER = (PASS, FAIL, INCONCLUSIVE, PREMISE_NOT_MET, ERROR)
HEADLINE_ORDER = (PASS, FAIL, INCONCLUSIVE, PREMISE_NOT_MET, NEEDS_PAPER_SCALE)
# The claims the summary leads with, in this order (the catalogue flags them with `headline`).
HEADLINE_CLAIMS = ("ito2024-singular-values", "ito2024-l2-distance", "ito2024-sv-alignment", "ito2024-merge-wm-vs-ste")
# Parameters every claim test's row already shows elsewhere (architecture, dataset columns; the claim id).
SHOWN_ELSEWHERE = ("arch", "dataset", "claim")
NAMED_BY_CLAIM = ("search",)  # hidden when the claim id names the value (search=wm in ainsworth2023-wm-barrier)
PARAM_LABELS = {"n_models": "N"}


# -- one claim test ---------------------------------------------------------------------------

def in_regime(record: dict) -> bool:
    """Whether the claim test ran inside its paper's regime (records without the key: yes)."""
    return record.get("in_regime", True) is not False


def statistic_of(criterion_text: str) -> str:
    return criterion_text.split(" ")[0]


def condition_of(criterion_text: str) -> str:
    return " ".join(criterion_text.split(" ")[1:])


def _op_threshold(judgement: dict) -> tuple[str, float | None]:
    """The criterion's comparison and threshold, from its text ("statistic op threshold")."""
    parts = judgement["criterion"].split(" ")
    op = parts[1] if len(parts) > 1 else ""
    threshold = judgement.get("threshold")
    if threshold is None and len(parts) > 2:
        try:
            threshold = float(parts[2])
        except ValueError:
            threshold = None
    return op, threshold


def closeness(judgement: dict) -> float:
    """How far a criterion's favourable bound lies from its threshold, in units of the threshold
    (or of the spread over seeds, when that is larger): |bound - threshold| / max(|threshold|, std, 1e-12).

    The favourable bound is the lower one for > and >=, the upper one for < and <=; for an exact
    criterion those are the worst seed, so the same rule takes its worst value. Unknown: infinity."""
    op, threshold = _op_threshold(judgement)
    bound = judgement.get("lower") if op.startswith(">") else judgement.get("upper") if op.startswith("<") else None
    if bound is None:
        bound = judgement.get("mean")
    if bound is None or threshold is None or not math.isfinite(bound):
        return math.inf
    return abs(bound - threshold) / max(abs(threshold), judgement.get("std") or 0.0, 1e-12)


def deciding_judgement(record: dict) -> dict | None:
    """The criterion that decides the verdict.

    When every criterion passes: the one closest to its threshold (the pass with the least room,
    see `closeness`); otherwise the first that did not pass."""
    js = record.get("judgements") or []
    if not js:
        return None
    premises = [j for j in js if j.get("premise")]
    unmet = next((j for j in premises if j["verdict"] != PASS), None)
    if unmet is not None:  # the premise decides: not met, or not yet decided
        return unmet
    js = [j for j in js if not j.get("premise")] or js
    failing = next((j for j in js if j["verdict"] != PASS), None)
    if failing is not None:
        return failing
    return min(js, key=closeness)  # min keeps the first of equally close criteria


def fmt(x, digits: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}g}"


def value_text(mean, std, n) -> str:
    """Our value as the report writes it: mean ± std (n=...)."""
    if mean is None or not n:
        return "no data"
    return f"{fmt(mean)} ± {fmt(std, 2)} (n={n})"


def key_figure_parts(record: dict) -> tuple[str, str]:
    """(measured figure with its spread, the condition it is held against)."""
    j = deciding_judgement(record)
    if not j:
        # A crashed test has no judgement: its error's last line is the most telling figure.
        lines = (record.get("message") or "").strip().splitlines()
        return (lines[-1][:160] if lines else ""), ""
    if j.get("mean") is None:
        return f"{statistic_of(j['criterion'])}: no data", condition_of(j["criterion"])
    return (f"{statistic_of(j['criterion'])} = {j['mean']:.4g} ± {fmt(j.get('std'), 2)} (n={j['n']}{look_text(record)})",
            condition_of(j["criterion"]))


def look_text(record: dict) -> str:
    """", look k of K" for a test that could look more than once, else ""."""
    looks = record.get("looks") or 1
    return f", look {record.get('look', 1)} of {looks}" if looks > 1 else ""


def interval_text(judgement: dict) -> str:
    """The mean's two-sided 95% interval, "[low, high]" ("" where the record has none)."""
    lo, hi = judgement.get("low95"), judgement.get("high95")
    return f"[{fmt(lo)}, {fmt(hi)}]" if lo is not None and hi is not None else ""


def key_figure(record: dict) -> str:
    figure, condition = key_figure_parts(record)
    return f"{figure} vs {condition}" if condition else figure


def params_text(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def distinguishing_params(record: dict) -> dict:
    """The parameters that tell this claim test from the claim's others: width, N, variation, ...

    Architecture and dataset have their own columns; the claim id, and a search the claim id
    already names (search=wm for ainsworth2023-wm-barrier), would only repeat the claim."""
    words = set(str(record.get("id", "")).split("-"))
    return {PARAM_LABELS.get(k, k): v for k, v in record.get("params", {}).items()
            if k not in SHOWN_ELSEWHERE and not (k in NAMED_BY_CLAIM and str(v) in words)}


def setting_text(record: dict, with_scale: bool = False) -> str:
    """What distinguishes a claim test's setting (with the run scale, when a report mixes scales)."""
    parts = (record.get("scale") or "" if with_scale else "", params_text(distinguishing_params(record)))
    return " · ".join(x for x in parts if x)


def summary_cells(record: dict, with_scale: bool = False) -> tuple[str, ...]:
    """One settings row: claim, architecture, dataset, setting, verdict, key figure, criterion."""
    figure, condition = key_figure_parts(record)
    p = record.get("params", {})
    return (record["id"], str(p.get("arch", "")), str(p.get("dataset", "")), setting_text(record, with_scale),
            record["verdict"].upper(), figure, condition)


def mixed_scales(report: dict) -> bool:
    return len({r.get("scale") for r in report["claims"] if r.get("scale")}) > 1


# -- one claim ---------------------------------------------------------------------------------

def headline_verdict(tests: list[dict]) -> str:
    """A claim's verdict from its claim tests inside the paper's regime only (see the module docstring)."""
    inside = [r["verdict"] for r in tests if in_regime(r)]
    if not inside:
        return NEEDS_PAPER_SCALE
    # Only the tests whose premise holds decide; where none does, the headline says so.
    inside = [v for v in inside if v != PREMISE_NOT_MET]
    if not inside:
        return PREMISE_NOT_MET
    if any(v in (FAIL, ERROR) for v in inside):
        return FAIL
    if all(v == PASS for v in inside):
        return PASS
    return INCONCLUSIVE


def verdict_label(verdict: str) -> str:
    return {NEEDS_PAPER_SCALE: "needs the paper scale", PREMISE_NOT_MET: "premise not met"}.get(verdict, verdict.upper())


def deciding_test(tests: list[dict], verdict: str) -> dict | None:
    """The claim test behind a headline verdict: the first in-regime failure (FAIL), the in-regime pass
    closest to its threshold (PASS), the first in-regime test that did not pass (INCONCLUSIVE); with no
    test inside the regime, the last test beyond it (the largest setting, as tests are sorted)."""
    inside = [r for r in tests if in_regime(r)]
    if verdict == NEEDS_PAPER_SCALE:
        return tests[-1] if tests else None
    if verdict == PREMISE_NOT_MET:
        return inside[0]
    inside = [r for r in inside if r["verdict"] != PREMISE_NOT_MET]
    if verdict == FAIL:
        return next(r for r in inside if r["verdict"] in (FAIL, ERROR))
    if verdict == PASS:
        margin = lambda r: closeness(deciding_judgement(r)) if r.get("judgements") else math.inf
        return min(inside, key=margin)
    return next(r for r in inside if r["verdict"] != PASS)


def claim_order(claim_ids) -> list[str]:
    """Claim ids in catalogue order; claims the catalogue does not know keep their order, after it."""
    try:
        from ..catalogue import CLAIMS

        catalogue = list(CLAIMS)
    except Exception:  # the report must not depend on the catalogue importing
        catalogue = []
    ids = list(dict.fromkeys(claim_ids))
    position = {cid: i for i, cid in enumerate(catalogue)}
    return sorted(ids, key=lambda c: (position.get(c, len(catalogue)), ids.index(c)))


def _is_headline(claim_id: str, tests: list[dict]) -> bool:
    flags = [r["headline"] for r in tests if "headline" in r]
    return any(flags) if flags else claim_id in HEADLINE_CLAIMS  # old records: the known headline claims


def by_claim(report: dict) -> list[tuple[str, dict, list[dict]]]:
    """(claim id, a record carrying the claim's paper and statement, the claim's tests): headline claims
    first, then catalogue order; tests in report order."""
    groups: dict[str, list[dict]] = {}
    for r in report["claims"]:
        groups.setdefault(r["id"], []).append(r)
    order = claim_order(groups)
    headline = [c for c in order if _is_headline(c, groups[c])]
    rank = lambda c: HEADLINE_CLAIMS.index(c) if c in HEADLINE_CLAIMS else len(HEADLINE_CLAIMS)
    ordered = sorted(headline, key=rank) + [c for c in order if c not in headline]
    return [(cid, next((r for r in groups[cid] if r.get("paper")), groups[cid][0]), groups[cid]) for cid in ordered]


def _published_beside_ours(record: dict | None) -> list[dict]:
    out = []
    for p in (record or {}).get("published") or []:
        if not isinstance(p, dict):
            continue
        ours = value_text(p.get("mean"), p.get("std"), p.get("n")) if p.get("statistic") else "not measured"
        out.append({**p, "ours": f"{p['statistic']} = {ours}" if p.get("statistic") else ours})
    return out


def _claim_setting(record: dict) -> str:
    """The deciding test's setting in the claims table (which has no architecture or dataset column)."""
    p = record.get("params", {})
    return " · ".join(str(x) for x in (p.get("arch"), p.get("dataset"), params_text(distinguishing_params(record))) if x)


def claim_tests(n: int) -> str:
    return f"{n} claim test{'' if n == 1 else 's'}"


def agree_text(agrees) -> str:
    return "yes" if agrees is True else "no" if agrees is False else "—"


def claim_summary(claim_id: str, first: dict, tests: list[dict]) -> dict:
    """report.json's entry for one claim: its headline verdict, what decided it, the paper's figures beside ours."""
    verdict = headline_verdict(tests)
    decider = deciding_test(tests, verdict)
    inside = [r for r in tests if in_regime(r)]
    counts: dict[str, int] = {}
    for r in inside:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    key = None
    if decider is not None:
        figure, condition = key_figure_parts(decider)
        key = {"text": key_figure(decider), "figure": figure, "condition": condition,
               "setting": _claim_setting(decider),
               "verdict": decider["verdict"], "in_regime": in_regime(decider),
               "nodeid": decider.get("nodeid"), "data_file": decider.get("data_file")}
    with_context = next((r for r in tests if "regime" in r), first)
    return {
        "id": claim_id,
        "paper": first.get("paper", ""),
        "section": first.get("section", ""),
        "statement": first.get("statement", ""),
        "headline": _is_headline(claim_id, tests),
        "headline_verdict": verdict,
        "verdict_text": verdict_label(verdict),
        "n_in_regime": len(inside),
        "n_beyond": len(tests) - len(inside),
        "in_regime_counts": counts,
        "regime": with_context.get("regime") or {},
        "split": with_context.get("split", ""),
        "split_source": with_context.get("split_source", ""),
        "published": _published_beside_ours(decider),
        "key_figure": key,
    }


def claims_summary(report: dict) -> list[dict]:
    return [claim_summary(cid, first, tests) for cid, first, tests in by_claim(report)]


def run_line(report: dict) -> str:
    return (f"Scale `{report.get('scale')}`, device `{report.get('device')}`, lmc-claims {report['package_version']}, "
            f"commit `{report.get('git_commit')}`, {report['created']}.")


def _ordered_counts(values, order) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99))


def build_report(records: list[dict], meta: dict) -> dict:
    report = {
        "title": "lmc-claims verification report",
        "package_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **meta,
        "counts": _ordered_counts((r["verdict"] for r in records), VERDICT_ORDER),
        "claims": records,
    }
    report["claims_summary"] = claims_summary(report)
    report["headline_counts"] = _ordered_counts((c["headline_verdict"] for c in report["claims_summary"]), HEADLINE_ORDER)
    return report


def summaries(report: dict) -> list[dict]:
    """The report's claims_summary (recomputed for a report.json written before it existed)."""
    return report.get("claims_summary") or claims_summary(report)


def headline_counts(report: dict) -> dict[str, int]:
    return report.get("headline_counts") or _ordered_counts((c["headline_verdict"] for c in summaries(report)),
                                                            HEADLINE_ORDER)
