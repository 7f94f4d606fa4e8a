"""report.html: one self-contained page (inline CSS, figures as base64 PNG data URIs, no scripts,
nothing fetched), so it can be mailed, attached to a CI run or opened offline."""

from __future__ import annotations

import base64
import re
from html import escape

from .summary import (agree_text, by_claim, claim_tests, fmt, headline_counts, in_regime, interval_text, mixed_scales,
                      params_text, summaries, summary_cells, value_text, verdict_label)
from .tables import BEYOND_NOTE, HEADLINE_RULE, SEQUENTIAL_RULE, settings_split

CSS = """
:root { --pass: #1a7f37; --fail: #cf222e; --inconclusive: #9a6700; --error: #57606a; --needs: #8250df; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1f2328; margin: 0 auto; padding: 1.5rem 2rem 4rem; max-width: 1340px; overflow-wrap: anywhere; }
h1 { margin: 0 0 .3rem; font-size: 1.8rem; }
h2 { margin-top: 2.8rem; padding-bottom: .3rem; border-bottom: 2px solid var(--line); }
h3 { margin: 2rem 0 .6rem; font-size: 1.1rem; }
.meta, .prov, figcaption, .source, .setting, .why { color: #57606a; font-size: .88rem; }
table { border-collapse: collapse; width: 100%; max-width: 100%; table-layout: fixed; margin: .6rem 0 1rem; font-size: .86rem; }
th, td { border: 1px solid var(--line); padding: .35rem .5rem; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; word-break: normal; }
th { background: #f6f8fa; }
tr.pass td.verdict { color: var(--pass); } tr.fail td.verdict { color: var(--fail); }
tr.inconclusive td.verdict { color: var(--inconclusive); } tr.error td.verdict { color: var(--error); }
tr.needs-paper-scale td.verdict { color: var(--needs); } tr.premise-not-met td.verdict { color: var(--needs); }
tr.more td { border-top-style: dashed; }
td.num, td.seeds { font-variant-numeric: tabular-nums; }
td .setting { display: block; }
code { font-size: .85em; background: #f6f8fa; padding: .1rem .3rem; border-radius: 4px; }
.badge { display: inline-block; padding: .05rem .55rem; border-radius: 1rem; color: #fff; font-size: .8rem;
         font-weight: 600; letter-spacing: .03em; vertical-align: middle; overflow-wrap: normal; }
.badge.pass { background: var(--pass); } .badge.fail { background: var(--fail); }
.badge.inconclusive { background: var(--inconclusive); } .badge.error { background: var(--error); }
.badge.needs-paper-scale, .badge.premise-not-met { background: var(--needs); } .badge.beyond { background: #6e7781; }
blockquote { margin: .8rem 0; padding: .5rem 1rem; border-left: 4px solid #8c959f; background: #f6f8fa; }
figure { margin: 1.2rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
.test { border-left: 4px solid var(--line); padding-left: 1rem; margin-left: .2rem; }
.test.pass { border-color: var(--pass); } .test.fail { border-color: var(--fail); }
.test.inconclusive { border-color: var(--inconclusive); } .test.error { border-color: var(--error); }
.test.premise-not-met { border-color: var(--needs); } .corrected { color: #9a6700; font-size: .85em; }
.note { background: #fff8c5; padding: .4rem .7rem; border-radius: 4px; }
.warning { background: #ffebe9; padding: .4rem .7rem; border-radius: 4px; }
ul.published { padding-left: 1.2rem; }
pre { background: #f6f8fa; padding: .8rem; font-size: .8rem; white-space: pre-wrap; overflow-wrap: anywhere; }
a { color: #0969da; text-decoration: none; } a:hover { text-decoration: underline; }
"""


def anchor(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-").lower()


def test_anchor(record: dict) -> str:
    return "test-" + anchor(record.get("data_file") or record["nodeid"])


def _badge(verdict: str, text: str | None = None) -> str:
    return f'<span class="badge {escape(verdict)}">{escape(text or verdict.upper())}</span>'


def _figure(fig: dict, pngs: dict[str, bytes]) -> str:
    data = base64.b64encode(pngs[fig["file"]]).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(fig["title"])}: {escape(fig["kind"])}">'
            f'<figcaption>{escape(fig["caption"])} <code>{escape(fig["file"])}</code></figcaption></figure>')


def _cols(*percent: int) -> str:
    """Column widths of a fixed-layout table: the page never grows wider than the window."""
    return "<colgroup>" + "".join(f'<col style="width:{p}%">' for p in percent) + "</colgroup>"


def _head(*names: str) -> str:
    return "<thead><tr>" + "".join(f"<th>{escape(n)}</th>" for n in names) + "</tr></thead>"


def _published_cells(p: dict) -> str:
    if not p.get("text"):
        return "<td>—</td><td>—</td><td>—</td>"
    return (f'<td>{escape(p["text"])} <span class="source">[{escape(str(p.get("tag", "")))}]</span></td>'
            f'<td class="num">{escape(p.get("ours", ""))}</td><td>{escape(agree_text(p.get("agrees")))}</td>')


def _claims_table(report: dict) -> list[str]:
    out = ['<table class="claims" id="claims-table">', _cols(16, 11, 6, 24, 14, 6, 23),
           _head("claim", "verdict", "tests in / beyond regime", "the paper reports", "ours", "agrees", "key figure"),
           "<tbody>"]
    for c in summaries(report):
        v = c["headline_verdict"]
        published = c.get("published") or [{}]
        span = f' rowspan="{len(published)}"' if len(published) > 1 else ""
        key = c.get("key_figure") or {}
        figure = escape(key.get("figure", ""))
        if key.get("condition"):
            figure += f" vs <code>{escape(key['condition'])}</code>"
        if key.get("setting"):
            beyond = "" if key.get("in_regime", True) else ", beyond the regime"
            figure += f'<span class="setting">{escape(key["setting"])}{beyond}</span>'
        out.append(f'<tr class="{escape(v)}"><td{span}><a href="#claim-{anchor(c["id"])}">{escape(c["id"])}</a></td>'
                   f'<td class="verdict"{span}><strong>{escape(c["verdict_text"])}</strong></td>'
                   f'<td class="num"{span}>{c["n_in_regime"]} / {c["n_beyond"]}</td>{_published_cells(published[0])}'
                   f'<td class="num"{span}>{figure}</td></tr>')
        out += [f'<tr class="more {escape(v)}">{_published_cells(p)}</tr>' for p in published[1:]]
    out.append("</tbody></table>")
    return out


def _settings_table(records: list[dict], table_id: str, with_scale: bool, beyond: bool = False) -> list[str]:
    cols = (14, 9, 7, 11, 11, 22, 9, 17) if beyond else (18, 10, 8, 12, 11, 28, 13)
    names = ("claim", "architecture", "dataset", "setting", "verdict", "key figure", "criterion") + (("why beyond",) if beyond else ())
    out = [f'<table class="settings" id="{table_id}">', _cols(*cols), _head(*names), "<tbody>"]
    for r in records:
        claim, arch, data, setting, verdict, figure, condition = summary_cells(r, with_scale)
        why = f'<td class="why">{escape(r.get("regime_reason", ""))}</td>' if beyond else ""
        out.append(f'<tr class="{escape(r["verdict"])}"><td><a href="#{test_anchor(r)}">{escape(claim)}</a></td>'
                   f"<td>{escape(arch)}</td><td>{escape(data)}</td><td>{escape(setting)}</td>"
                   f'<td class="verdict"><strong>{escape(verdict)}</strong></td><td class="num">{escape(figure)}</td>'
                   f"<td><code>{escape(condition)}</code></td>{why}</tr>")
    out.append("</tbody></table>")
    return out


def _summary(report: dict) -> list[str]:
    with_scale = mixed_scales(report)
    inside, beyond = settings_split(report)
    out = [f"<p>{escape(HEADLINE_RULE)}</p>", *_claims_table(report),
           '<h3 id="inside">Claim tests inside the paper\'s regime</h3>']
    out += _settings_table(inside, "summary-table", with_scale) if inside else ["<p>None.</p>"]
    out += ['<h3 id="beyond">Claim tests beyond the paper\'s regime</h3>', f"<p>{escape(BEYOND_NOTE)}</p>"]
    out += _settings_table(beyond, "beyond-table", with_scale, beyond=True) if beyond else \
        ["<p>None: every claim test ran inside its paper's regime.</p>"]
    return out


def _criteria(record: dict) -> list[str]:
    out = ['<table class="criteria">', _cols(17, 25, 5, 13, 17, 13, 10),
           _head("criterion", "source of the number", "n", "mean ± std [95% interval]", "per seed",
                 "one-sided bounds at the look's level (lower, upper)", "verdict"), "<tbody>"]
    for j in record["judgements"]:
        seeds = ", ".join(fmt(v, 3) for v in j.get("values", []))
        role = " (premise)" if j.get("premise") else ""
        corrected = f'<div class="corrected">corrected {escape(j["corrected"])}</div>' if j.get("corrected") else ""
        out.append(f'<tr class="{escape(j["verdict"])}"><td><code>{escape(j["criterion"])}</code>{role}{corrected}</td>'
                   f'<td>{escape(j["source"])}</td><td class="num">{j["n"]}</td>'
                   f'<td class="num">{fmt(j["mean"])} ± {fmt(j["std"], 2)} {escape(interval_text(j))}</td>'
                   f'<td class="seeds">{escape(seeds)}</td>'
                   f'<td class="seeds">({fmt(j["lower"])}, {fmt(j["upper"])}) at {fmt(j.get("alpha"), 2)}</td>'
                   f'<td class="verdict"><strong>{escape(j["verdict"])}</strong></td></tr>')
    out.append("</tbody></table>")
    return out


def _published_item(p: dict, ours: str) -> str:
    return (f'<li><span class="source">[{escape(str(p.get("tag", "")))}]</span> {escape(p.get("text", ""))}; '
            f"ours: {escape(ours)}; agrees: {escape(agree_text(p.get('agrees')))}</li>")


def _claim_context(c: dict) -> list[str]:
    out = [f"<p><strong>Verdict:</strong> {_badge(c['headline_verdict'], c['verdict_text'])} "
           f"({claim_tests(c['n_in_regime'])} inside the paper's regime, {c['n_beyond']} beyond it)</p>"]
    regime = c.get("regime") or {}
    if regime.get("text"):
        training = f"; the paper trains: {escape(regime['training'])}" if regime.get("training") else ""
        out.append(f"<p><strong>Regime:</strong> {escape(regime['text'])} "
                   f'<span class="source">({escape(regime.get("source", ""))})</span>{training}</p>')
    if c.get("split"):
        source = f' <span class="source">({escape(c["split_source"])})</span>' if c.get("split_source") else ""
        out.append(f"<p><strong>Deciding split:</strong> {escape(c['split'])}{source}</p>")
    if c.get("published"):
        out += ["<p><strong>Published, beside ours:</strong></p>", '<ul class="published">',
                *(_published_item(p, p.get("ours", "")) for p in c["published"]), "</ul>"]
    return out


def _test_published(record: dict) -> list[str]:
    items = [_published_item(p, f"{p['statistic']} = {value_text(p.get('mean'), p.get('std'), p.get('n'))}")
             for p in record.get("published") or [] if isinstance(p, dict) and p.get("statistic")]
    return ['<ul class="published">', *items, "</ul>"] if items else []


def _provenance(record: dict) -> str:
    p = record.get("provenance", {})
    seeds = p.get("seeds")
    parts = [f'data <a href="{escape(record["data_file"])}"><code>{escape(record["data_file"])}</code></a>']
    parts += [f"{label} {escape(str(p[key]))}" for key, label in
              (("device", "device"), ("git_commit", "commit"), ("torch_version", "torch"), ("created", "measured"))
              if p.get(key)]
    if seeds:
        parts.append("seeds " + escape(", ".join(map(str, seeds if isinstance(seeds, list) else [seeds]))))
    if record.get("duration_s") is not None:
        parts.append(f"{record['duration_s']:.1f} s")
    return '<p class="prov">' + " · ".join(parts) + "</p>"


def _test(record: dict, pngs: dict[str, bytes]) -> list[str]:
    v = escape(record["verdict"])
    out = [f'<article class="test {v}" id="{test_anchor(record)}">',
           f"<h3>{escape(params_text(record['params']) or record.get('nodeid', ''))} {_badge(record['verdict'])}"
           + ("" if in_regime(record) else ' <span class="badge beyond">BEYOND THE REGIME</span>') + "</h3>"]
    if not in_regime(record):
        out.append(f'<p class="why">Beyond the paper\'s regime: {escape(record.get("regime_reason", ""))}. '
                   "Measured and shown; it does not decide the claim's verdict.</p>")
    if record.get("judgements"):
        out += _criteria(record)
    out += _test_published(record)
    out += [f'<p class="note">Note: {escape(n)}</p>' for n in record.get("notes", [])]
    if record.get("message"):
        out.append(f"<pre>{escape(record['message'])}</pre>")
    out += [_figure(f, pngs) for f in record.get("figures", [])]
    if record.get("data_file"):
        out.append(_provenance(record))
    out.append("</article>")
    return out


def render_html(report: dict, pngs: dict[str, bytes]) -> str:
    """The page; `pngs` maps each figure's file (as listed in the report) to its PNG bytes."""
    claims = " ".join(f'<span class="badge {escape(v)}">{n} {escape(verdict_label(v))}</span>'
                      for v, n in headline_counts(report).items())
    counts = " ".join(f'<span class="badge {escape(v)}">{n} {escape(v)}</span>' for v, n in report["counts"].items())
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{escape(report['title'])}</title><style>{CSS}</style></head><body>",
           f"<header><h1>{escape(report['title'])}</h1>",
           f'<p class="meta">scale <code>{escape(str(report.get("scale")))}</code> · device '
           f'<code>{escape(str(report.get("device")))}</code> · lmc-claims {escape(report["package_version"])} · commit '
           f'<code>{escape(str(report.get("git_commit")))}</code> · {escape(report["created"])}</p>',
           f"<p>claims {claims} · claim tests {counts}</p></header>",
           '<section id="summary"><h2>Summary</h2>',
           f"<p>{escape(SEQUENTIAL_RULE)}</p>", *_summary(report), "</section>"]
    context = {c["id"]: c for c in summaries(report)}
    for claim_id, first, tests in by_claim(report):
        out.append(f'<section class="claim" id="claim-{anchor(claim_id)}"><h2>{escape(claim_id)}</h2>')
        if first.get("paper"):
            out += [f'<p class="source">{escape(first["paper"])}, {escape(first["section"])}</p>',
                    f"<blockquote>{escape(first['statement'])}</blockquote>",
                    f"<p><strong>Metric:</strong> {escape(first['metric'])}</p>"]
            if first.get("paper_figure"):
                out.append(f"<p><strong>The paper reports:</strong> {escape(first['paper_figure'])}</p>")
        if claim_id in context:
            out += _claim_context(context[claim_id])
        out += [_figure(f, pngs) for f in report.get("claim_figures", {}).get(claim_id, [])]
        for r in tests:
            out += _test(r, pngs)
        out.append("</section>")
    out += [f'<p class="warning">Warning: {escape(w)}</p>' for w in report.get("warnings", [])]
    out.append("</body></html>")
    return "\n".join(out) + "\n"
