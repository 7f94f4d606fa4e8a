"""report.md: one row per claim (its headline verdict, the paper's figures beside ours), then the claim
tests inside and beyond the paper's regime, then one section per claim with its tests and figures."""

from __future__ import annotations

from .summary import (agree_text, by_claim, claim_tests, fmt, headline_counts, in_regime, interval_text, mixed_scales,
                      params_text, run_line, summaries, summary_cells, value_text, verdict_label)
from .tables import BEYOND_NOTE, CLAIM_HEADER, HEADLINE_RULE, SEQUENTIAL_RULE, SETTINGS_HEADER, claim_rows, settings_split



def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _row(cells) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _table(header, rows) -> list[str]:
    return [_row(header), "|" + "---|" * len(header), *(_row(r) for r in rows)]


def _figures(figs: list[dict]) -> list[str]:
    out = []
    for f in figs:
        alt = f"{f['title']}: {f['kind']}".replace("[", "(").replace("]", ")")  # brackets would end the alt text
        out += ["", f"![{_cell(alt)}]({f['file']})", "", f"*{f['caption']}*"]
    return out


def _counts(counts: dict, label=str) -> str:
    return ", ".join(f"{label(v)}: {n}" for v, n in counts.items())


def _summary(report: dict) -> list[str]:
    with_scale = mixed_scales(report)
    inside, beyond = settings_split(report)
    out = ["", "## Summary", "", HEADLINE_RULE, "", SEQUENTIAL_RULE, "", *_table(CLAIM_HEADER, claim_rows(report)),
           "", "### Claim tests inside the paper's regime", ""]
    out += _table(SETTINGS_HEADER, [summary_cells(r, with_scale) for r in inside]) if inside else ["None."]
    out += ["", "### Claim tests beyond the paper's regime", "", BEYOND_NOTE, ""]
    out += _table((*SETTINGS_HEADER, "why beyond"),
                  [(*summary_cells(r, with_scale), r.get("regime_reason", "")) for r in beyond]) if beyond else \
        ["None: every claim test ran inside its paper's regime."]
    return out


def _claim_context(summary: dict) -> list[str]:
    out = [f"**Verdict: {verdict_label(summary['headline_verdict'])}** "
           f"({claim_tests(summary['n_in_regime'])} inside the paper's regime, {summary['n_beyond']} beyond it)"]
    regime = summary.get("regime") or {}
    if regime.get("text"):
        out += ["", f"Regime: {regime['text']} ({regime.get('source', '')})"
                + (f"; the paper trains: {regime['training']}" if regime.get("training") else "")]
    if summary.get("split"):
        out += ["", f"Deciding split: {summary['split']}" + (f" ({summary['split_source']})" if summary.get("split_source") else "")]
    for p in summary.get("published") or []:
        out += ["", f"Published [{p.get('tag', '')}]: {p['text']}; ours: {p.get('ours', '')}; agrees: {agree_text(p.get('agrees'))}"]
    return out


def _published_of_test(record: dict) -> list[str]:
    out = []
    for p in record.get("published") or []:
        if isinstance(p, dict) and p.get("statistic"):
            out += ["", f"Published [{p.get('tag', '')}]: {p.get('text', '')}; ours: {p['statistic']} = "
                    f"{value_text(p.get('mean'), p.get('std'), p.get('n'))}; agrees: {agree_text(p.get('agrees'))}"]
    return out


def render_markdown(report: dict) -> str:
    out = [f"# {report['title']}", "", run_line(report), ""]
    claims = summaries(report)
    out.append("Claims: " + _counts(headline_counts(report), verdict_label) + "; claim tests: "
               + _counts(report["counts"]))
    out += _summary(report)
    context = {c["id"]: c for c in claims}
    for claim_id, first, tests in by_claim(report):
        out += ["", f"## {claim_id}", ""]
        if first.get("paper"):
            out += [f"*{first['paper']}, {first['section']}*", "", f"> {first['statement']}", "", f"Metric: {first['metric']}"]
            if first.get("paper_figure"):
                out += ["", f"The paper reports: {first['paper_figure']}"]
        if claim_id in context:
            out += [""] + _claim_context(context[claim_id])
        out += _figures(report.get("claim_figures", {}).get(claim_id, []))
        for r in tests:
            beyond = "" if in_regime(r) else f" (beyond the paper's regime: {r.get('regime_reason', '')})"
            out += ["", f"### {claim_id} [{params_text(r['params'])}]: {r['verdict'].upper()}{beyond}", ""]
            if r.get("judgements"):
                out += [f"Decided at look {r.get('look', 1)} of {r.get('looks', 1)} (n = {r.get('n_seeds')}).", "",
                        "| criterion | source | n | mean | std | 95% interval | per seed | one-sided bounds (level) | verdict |",
                        "|---|---|---|---|---|---|---|---|---|"]
                for j in r["judgements"]:
                    seeds = ", ".join(fmt(v, 3) for v in j.get("values", []))
                    role = " (premise)" if j.get("premise") else ""
                    fixed = f" *Corrected {j['corrected']}*" if j.get("corrected") else ""
                    out.append(f"| `{j['criterion']}`{role} | {_cell(j['source'] + fixed)} | {j['n']} | {fmt(j['mean'])} | "
                               f"{fmt(j['std'])} | {interval_text(j)} | {seeds} | ({fmt(j['lower'])}, {fmt(j['upper'])}) "
                               f"at {fmt(j.get('alpha'), 2)} | {j['verdict']} |")
            out += _published_of_test(r)
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
