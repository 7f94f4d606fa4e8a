"""report.html: one self-contained page (inline CSS, figures as base64 PNG data URIs, no scripts,
nothing fetched), so it can be mailed, attached to a CI run or opened offline."""

from __future__ import annotations

import base64
import re
from html import escape

from .summary import by_claim, fmt, params_text, summary_cells

CSS = """
:root { --pass: #1a7f37; --fail: #cf222e; --inconclusive: #9a6700; --error: #57606a; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1f2328; margin: 0 auto; padding: 1.5rem 2rem 4rem; max-width: 1200px; }
h1 { margin: 0 0 .3rem; font-size: 1.8rem; }
h2 { margin-top: 2.8rem; padding-bottom: .3rem; border-bottom: 2px solid var(--line); }
h3 { margin: 2rem 0 .6rem; font-size: 1.1rem; }
.meta, .prov, figcaption, .source { color: #57606a; font-size: .88rem; }
table { border-collapse: collapse; width: 100%; margin: .6rem 0 1rem; font-size: .88rem; }
th, td { border: 1px solid var(--line); padding: .35rem .55rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
tr.pass td.verdict { color: var(--pass); } tr.fail td.verdict { color: var(--fail); }
tr.inconclusive td.verdict { color: var(--inconclusive); } tr.error td.verdict { color: var(--error); }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
td.seeds { font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; }
table.summary td:first-child, table.summary code { white-space: nowrap; }
code { font-size: .85em; background: #f6f8fa; padding: .1rem .3rem; border-radius: 4px; }
.badge { display: inline-block; padding: .05rem .55rem; border-radius: 1rem; color: #fff; font-size: .8rem;
         font-weight: 600; letter-spacing: .03em; vertical-align: middle; }
.badge.pass { background: var(--pass); } .badge.fail { background: var(--fail); }
.badge.inconclusive { background: var(--inconclusive); } .badge.error { background: var(--error); }
blockquote { margin: .8rem 0; padding: .5rem 1rem; border-left: 4px solid #8c959f; background: #f6f8fa; }
figure { margin: 1.2rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
.test { border-left: 4px solid var(--line); padding-left: 1rem; margin-left: .2rem; }
.test.pass { border-color: var(--pass); } .test.fail { border-color: var(--fail); }
.test.inconclusive { border-color: var(--inconclusive); } .test.error { border-color: var(--error); }
.note { background: #fff8c5; padding: .4rem .7rem; border-radius: 4px; }
.warning { background: #ffebe9; padding: .4rem .7rem; border-radius: 4px; }
pre { background: #f6f8fa; padding: .8rem; overflow-x: auto; font-size: .8rem; }
a { color: #0969da; text-decoration: none; } a:hover { text-decoration: underline; }
"""


def anchor(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-").lower()


def test_anchor(record: dict) -> str:
    return "test-" + anchor(record.get("data_file") or record["nodeid"])


def _badge(verdict: str) -> str:
    return f'<span class="badge {escape(verdict)}">{escape(verdict.upper())}</span>'


def _figure(fig: dict, pngs: dict[str, bytes]) -> str:
    data = base64.b64encode(pngs[fig["file"]]).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(fig["title"])}: {escape(fig["kind"])}">'
            f'<figcaption>{escape(fig["caption"])} <code>{escape(fig["file"])}</code></figcaption></figure>')


def _summary(report: dict) -> list[str]:
    out = ['<div class="scroll"><table class="summary" id="summary-table"><thead><tr><th>claim</th><th>architecture</th><th>dataset</th>'
           '<th>scale</th><th>verdict</th><th>key figure</th><th>criterion</th></tr></thead><tbody>']
    for r in report["claims"]:
        claim, arch, data, scale, verdict, figure, condition = summary_cells(r)
        out.append(f'<tr class="{escape(r["verdict"])}"><td><a href="#{test_anchor(r)}">{escape(claim)}</a></td>'
                   f"<td>{escape(arch)}</td><td>{escape(data)}</td><td>{escape(scale)}</td>"
                   f'<td class="verdict"><strong>{escape(verdict)}</strong></td><td class="num">{escape(figure)}</td>'
                   f"<td><code>{escape(condition)}</code></td></tr>")
    out.append("</tbody></table></div>")
    return out


def _criteria(record: dict) -> list[str]:
    out = ['<div class="scroll"><table class="criteria"><thead><tr><th>criterion</th><th>source of the number</th><th>n</th>'
           "<th>mean ± std</th><th>per seed</th><th>one-sided 95% bounds (lower, upper)</th><th>verdict</th>"
           "</tr></thead><tbody>"]
    for j in record["judgements"]:
        seeds = ", ".join(fmt(v, 3) for v in j.get("values", []))
        out.append(f'<tr class="{escape(j["verdict"])}"><td><code>{escape(j["criterion"])}</code></td>'
                   f'<td>{escape(j["source"])}</td><td class="num">{j["n"]}</td>'
                   f'<td class="num">{fmt(j["mean"])} ± {fmt(j["std"], 2)}</td><td class="seeds">{escape(seeds)}</td>'
                   f'<td class="seeds">({fmt(j["lower"])}, {fmt(j["upper"])})</td>'
                   f'<td class="verdict"><strong>{escape(j["verdict"])}</strong></td></tr>')
    out.append("</tbody></table></div>")
    return out


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
           f"<h3>{escape(params_text(record['params']) or record.get('nodeid', ''))} {_badge(record['verdict'])}</h3>"]
    if record.get("judgements"):
        out += _criteria(record)
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
    counts = " ".join(f'<span class="badge {escape(v)}">{n} {escape(v)}</span>' for v, n in report["counts"].items())
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{escape(report['title'])}</title><style>{CSS}</style></head><body>",
           f"<header><h1>{escape(report['title'])}</h1>",
           f'<p class="meta">scale <code>{escape(str(report.get("scale")))}</code> · device '
           f'<code>{escape(str(report.get("device")))}</code> · lmc-claims {escape(report["package_version"])} · commit '
           f'<code>{escape(str(report.get("git_commit")))}</code> · {escape(report["created"])}</p>',
           f"<p>{counts}</p></header>",
           '<section id="summary"><h2>Summary</h2>',
           "<p>A claim test <strong>passes</strong> when its criterion holds for the one-sided 95% bound over seeds, "
           "<strong>fails</strong> when the bound on the other side already violates it, and is "
           "<strong>inconclusive</strong> otherwise.</p>", *_summary(report), "</section>"]
    for claim_id, first, tests in by_claim(report):
        out.append(f'<section class="claim" id="claim-{anchor(claim_id)}"><h2>{escape(claim_id)}</h2>')
        if first.get("paper"):
            out += [f'<p class="source">{escape(first["paper"])}, {escape(first["section"])}</p>',
                    f"<blockquote>{escape(first['statement'])}</blockquote>",
                    f"<p><strong>Metric:</strong> {escape(first['metric'])}</p>"]
            if first.get("paper_figure"):
                out.append(f"<p><strong>The paper reports:</strong> {escape(first['paper_figure'])}</p>")
        out += [_figure(f, pngs) for f in report.get("claim_figures", {}).get(claim_id, [])]
        for r in tests:
            out += _test(r, pngs)
        out.append("</section>")
    out += [f'<p class="warning">Warning: {escape(w)}</p>' for w in report.get("warnings", [])]
    out.append("</body></html>")
    return "\n".join(out) + "\n"
