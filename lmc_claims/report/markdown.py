"""report.md: summary table, then one section per claim with its claim tests and figures (relative links)."""

from __future__ import annotations

from .summary import by_claim, fmt, params_text, run_line, summary_cells


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _figures(figs: list[dict]) -> list[str]:
    out = []
    for f in figs:
        alt = f"{f['title']}: {f['kind']}".replace("[", "(").replace("]", ")")  # brackets would end the alt text
        out += ["", f"![{_cell(alt)}]({f['file']})", "", f"*{f['caption']}*"]
    return out


def render_markdown(report: dict) -> str:
    out = [f"# {report['title']}", "", run_line(report), ""]
    out.append("Verdicts: " + ", ".join(f"{v}: {n}" for v, n in report["counts"].items()))
    out += ["", "| claim | architecture | dataset | scale | verdict | key figure | criterion |", "|---|---|---|---|---|---|---|"]
    for r in report["claims"]:
        out.append("| " + " | ".join(_cell(c) for c in summary_cells(r)) + " |")
    for claim_id, first, tests in by_claim(report):
        out += ["", f"## {claim_id}", ""]
        if first.get("paper"):
            out += [f"*{first['paper']}, {first['section']}*", "", f"> {first['statement']}", "", f"Metric: {first['metric']}"]
            if first.get("paper_figure"):
                out += ["", f"The paper reports: {first['paper_figure']}"]
        out += _figures(report.get("claim_figures", {}).get(claim_id, []))
        for r in tests:
            out += ["", f"### {claim_id} [{params_text(r['params'])}]: {r['verdict'].upper()}", ""]
            if r.get("judgements"):
                out += ["| criterion | source | n | mean | std | per seed | 95% bound (lower, upper) | verdict |",
                        "|---|---|---|---|---|---|---|---|"]
                for j in r["judgements"]:
                    seeds = ", ".join(fmt(v, 3) for v in j.get("values", []))
                    out.append(f"| `{j['criterion']}` | {_cell(j['source'])} | {j['n']} | {fmt(j['mean'])} | {fmt(j['std'])} | "
                               f"{seeds} | ({fmt(j['lower'])}, {fmt(j['upper'])}) | {j['verdict']} |")
            for note in r.get("notes", []):
                out += ["", f"Note: {note}"]
            if r.get("message"):
                out += ["", "```", r["message"], "```"]
            out += _figures(r.get("figures", []))
            if r.get("data_file"):
                out += ["", f"Data: `{r['data_file']}`"]
    for w in report.get("warnings", []):
        out += ["", f"Warning: {w}"]
    return "\n".join(out) + "\n"
