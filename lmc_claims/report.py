"""The verification report: report.json (machine), report.md (human), terminal table."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from . import __version__
from .results import atomic_write_text

ERROR = "error"  # a claim test that crashed before judging


def key_figure(record: dict) -> str:
    """The deciding criterion's figure: the first that did not pass, else the first."""
    js = record.get("judgements") or []
    j = next((x for x in js if x["verdict"] != "pass"), js[0] if js else None)
    if not j:
        return record.get("message", "")
    mean, std = j.get("mean"), j.get("std")
    if mean is None:
        return f"no data vs {j['criterion']}"
    return f"{j['criterion'].split(' ')[0]} = {mean:.4g} ± {std:.2g} (n={j['n']}) vs {' '.join(j['criterion'].split(' ')[1:])}"


def params_text(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def build_report(records: list[dict], meta: dict) -> dict:
    records = sorted(records, key=lambda r: r["nodeid"])
    counts: dict[str, int] = {}
    for r in records:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    return {
        "title": "lmc-claims verification report",
        "package_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **meta,
        "counts": counts,
        "claims": records,
    }


def summary_rows(report: dict) -> list[tuple[str, str, str, str]]:
    return [(r["id"], params_text(r["params"]), r["verdict"].upper(), key_figure(r)) for r in report["claims"]]


def format_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return [line(header), line(tuple("-" * w for w in widths))] + [line(r) for r in rows]


def render_markdown(report: dict) -> str:
    out = [f"# {report['title']}", ""]
    out.append(f"Scale `{report.get('scale')}`, device `{report.get('device')}`, "
               f"lmc-claims {report['package_version']}, commit `{report.get('git_commit')}`, {report['created']}.")
    out.append("")
    out.append("Verdicts: " + ", ".join(f"{v}: {n}" for v, n in sorted(report["counts"].items())))
    out += ["", "| claim | parameters | verdict | key figure vs criterion |", "|---|---|---|---|"]
    for row in summary_rows(report):
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    for r in report["claims"]:
        out += ["", f"## {r['id']} [{params_text(r['params'])}]: {r['verdict'].upper()}", ""]
        if r.get("paper"):
            out += [f"*{r['paper']}, {r['section']}*", "", f"> {r['statement']}", "", f"Metric: {r['metric']}", ""]
        if r.get("judgements"):
            out += ["| criterion | source | n | mean | std | 95% bound (lower, upper) | verdict |", "|---|---|---|---|---|---|---|"]
            for j in r["judgements"]:
                fmt = lambda x: "n/a" if x is None else f"{x:.4g}"
                out.append(f"| `{j['criterion']}` | {j['source']} | {j['n']} | {fmt(j['mean'])} | {fmt(j['std'])} | "
                           f"({fmt(j['lower'])}, {fmt(j['upper'])}) | {j['verdict']} |")
        for note in r.get("notes", []):
            out += ["", f"Note: {note}"]
        if r.get("message"):
            out += ["", "```", r["message"], "```"]
        if r.get("data_file"):
            out += ["", f"Data: `{r['data_file']}`"]
    return "\n".join(out) + "\n"


def write_report(report: dict, report_dir: Path) -> None:
    report_dir = Path(report_dir)
    atomic_write_text(report_dir / "report.json", json.dumps(report, indent=1, sort_keys=False, default=str) + "\n")
    atomic_write_text(report_dir / "report.md", render_markdown(report))
