"""The report as data: the report dict, each claim test's key figure, the summary table."""

from __future__ import annotations

import datetime as _dt
import math

from .. import __version__

ERROR = "error"  # a claim test that crashed before judging
VERDICT_ORDER = ("pass", "fail", "inconclusive", ERROR)


def deciding_judgement(record: dict) -> dict | None:
    """The criterion that decides the verdict: the first that did not pass, else the first."""
    js = record.get("judgements") or []
    return next((j for j in js if j["verdict"] != "pass"), js[0] if js else None)


def statistic_of(criterion_text: str) -> str:
    return criterion_text.split(" ")[0]


def condition_of(criterion_text: str) -> str:
    return " ".join(criterion_text.split(" ")[1:])


def fmt(x, digits: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}g}"


def key_figure_parts(record: dict) -> tuple[str, str]:
    """(measured figure with its spread, the condition it is held against)."""
    j = deciding_judgement(record)
    if not j:
        # A crashed test has no judgement: its error's last line is the most telling figure.
        lines = (record.get("message") or "").strip().splitlines()
        return (lines[-1][:160] if lines else ""), ""
    if j.get("mean") is None:
        return f"{statistic_of(j['criterion'])}: no data", condition_of(j["criterion"])
    return (f"{statistic_of(j['criterion'])} = {j['mean']:.4g} ± {fmt(j.get('std'), 2)} (n={j['n']})",
            condition_of(j["criterion"]))


def key_figure(record: dict) -> str:
    figure, condition = key_figure_parts(record)
    return f"{figure} vs {condition}" if condition else figure


def params_text(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def setting_text(record: dict) -> str:
    """The size part of a claim test's setting: run scale plus the parameters beyond arch and dataset."""
    rest = {k: v for k, v in record.get("params", {}).items() if k not in ("arch", "dataset")}
    return " · ".join(x for x in (record.get("scale") or "", params_text(rest)) if x)


def summary_cells(record: dict) -> tuple[str, ...]:
    """One row of the people's summary: claim x architecture x dataset x scale, verdict, figure, criterion."""
    figure, condition = key_figure_parts(record)
    p = record.get("params", {})
    return (record["id"], str(p.get("arch", "")), str(p.get("dataset", "")), setting_text(record),
            record["verdict"].upper(), figure, condition)


def by_claim(report: dict) -> list[tuple[str, dict, list[dict]]]:
    """(claim id, a record carrying the claim's paper and statement, the claim's tests) in report order."""
    groups: dict[str, list[dict]] = {}
    for r in report["claims"]:
        groups.setdefault(r["id"], []).append(r)
    return [(cid, next((r for r in rs if r.get("paper")), rs[0]), rs) for cid, rs in groups.items()]


def run_line(report: dict) -> str:
    return (f"Scale `{report.get('scale')}`, device `{report.get('device')}`, lmc-claims {report['package_version']}, "
            f"commit `{report.get('git_commit')}`, {report['created']}.")


def build_report(records: list[dict], meta: dict) -> dict:
    counts: dict[str, int] = {}
    for r in records:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    return {
        "title": "lmc-claims verification report",
        "package_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **meta,
        "counts": dict(sorted(counts.items(), key=lambda kv: VERDICT_ORDER.index(kv[0]) if kv[0] in VERDICT_ORDER else 99)),
        "claims": records,
    }


def summary_rows(report: dict) -> list[tuple[str, str, str, str]]:
    return [(r["id"], params_text(r["params"]), r["verdict"].upper(), key_figure(r)) for r in report["claims"]]


def format_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return [line(header), line(tuple("-" * w for w in widths))] + [line(r) for r in rows]
