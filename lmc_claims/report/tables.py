"""The summary tables of a report: the claims table, the claim tests inside and beyond their
papers' regimes, and their text layout for the terminal and report.md.
"""

from __future__ import annotations

from .summary import agree_text, by_claim, distinguishing_params, in_regime, key_figure, params_text, summaries

HEADLINE_RULE = ("A claim's verdict is decided only by its claim tests inside the regime its paper states: FAIL if one "
                 "of them fails (or crashed), PASS if all pass, INCONCLUSIVE otherwise, \"premise not met\" when every "
                 "one's premise fails, and \"needs the paper scale\" "
                 "when none ran inside it. The key figure is the deciding test's criterion: for a PASS the one "
                 "closest to its threshold, otherwise the first that did not pass.")
SEQUENTIAL_RULE = ("A claim test passes when its criterion holds for the one-sided bound over its independent samples, "
                   "fails when the bound on the other side already violates it, and is inconclusive otherwise. It "
                   "starts with the scale's first samples and, while undecided, looks again with more (inside the "
                   "paper's regime); each look's bounds are at level 0.05 / (number of looks), so that the error "
                   "rate over all the looks stays at 5% (Bonferroni; Jennison & Turnbull 2000). A test whose "
                   "premise (a criterion marked premise) fails is 'premise not met', never a FAIL, and decides no "
                   "headline.")
BEYOND_NOTE = "Still measured and shown; these claim tests decide no claim's verdict."
CLAIM_HEADER = ("claim", "verdict", "tests in / beyond regime", "the paper reports", "ours", "agrees", "key figure")
SETTINGS_HEADER = ("claim", "architecture", "dataset", "setting", "verdict", "key figure", "criterion")
TERMINAL_TEXT = 60  # the published figure's text is cut to this many characters in the terminal
TERMINAL_CLAIM_HEADER = ("claim", "verdict", "in/beyond", "the paper reports", "ours", "agrees", "key figure")


def _shorten(text: str, limit: int | None) -> str:
    return text if limit is None or len(text) <= limit else text[:limit - 1].rstrip() + "…"


def claim_rows(report: dict, limit: int | None = None) -> list[tuple[str, ...]]:
    """One row per claim (a further row for each further published figure, its other cells empty);
    `limit` shortens the published text (the terminal's table)."""
    rows = []
    for c in summaries(report):
        key = c.get("key_figure") or {}
        figure = key.get("text", "")
        if key.get("setting"):
            figure += f" [{key['setting']}]"
        published = c.get("published") or [{}]
        for i, p in enumerate(published):
            paper = f"{_shorten(p['text'], limit)} [{p.get('tag', '')}]" if p.get("text") else "—"
            ours = p.get("ours", "—") if p.get("text") else "—"
            agrees = agree_text(p.get("agrees")) if p.get("text") else "—"
            first = i == 0
            rows.append((c["id"] if first else "", c["verdict_text"] if first else "",
                         f"{c['n_in_regime']} / {c['n_beyond']}" if first else "", paper, ours, agrees,
                         figure if first else ""))
    return rows


def settings_split(report: dict) -> tuple[list[dict], list[dict]]:
    """The claim tests inside and beyond their paper's regime, each in the claims' summary order."""
    ordered = [r for _, _, tests in by_claim(report) for r in tests]
    return [r for r in ordered if in_regime(r)], [r for r in ordered if not in_regime(r)]


class SummaryRows(list):
    """`summary_rows`' answer: a list of the settings rows (claim, parameters, verdict, key figure vs
    criterion), inside the regime first, carrying the per-claim rows and where the rows beyond the
    regime start, so that `format_table` prints the claims first, then the two settings parts."""

    def __init__(self, rows, claims, n_inside, reasons):
        super().__init__(rows)
        self.claims = claims
        self.n_inside = n_inside
        self.reasons = reasons  # why each row beyond the regime is beyond it

    def lines(self) -> list[str]:
        inside, beyond = self[:self.n_inside], self[self.n_inside:]
        setting_header = ("claim", "parameters", "verdict", "key figure vs criterion")
        out = ["claims (a claim's verdict is decided only by its claim tests inside the paper's regime)",
               *_table(self.claims, TERMINAL_CLAIM_HEADER), "",
               "claim tests inside the paper's regime", *(_table(inside, setting_header) if inside else ["(none)"]), "",
               "claim tests beyond the paper's regime (measured and shown; they decide no claim's verdict)"]
        out += _table([(*r, why) for r, why in zip(beyond, self.reasons)], (*setting_header, "why beyond")) if beyond \
            else ["(none)"]
        return out


def _row_params(record: dict) -> str:
    p = record.get("params", {})
    shown = {k: p[k] for k in ("arch", "dataset") if k in p}
    return params_text({**shown, **distinguishing_params(record)})


def summary_rows(report: dict) -> SummaryRows:
    inside, beyond = settings_split(report)
    row = lambda r: (r["id"], _row_params(r), r["verdict"].upper(), key_figure(r))
    return SummaryRows([row(r) for r in inside + beyond], claim_rows(report, TERMINAL_TEXT), len(inside),
                       [r.get("regime_reason") or "outside the paper's regime" for r in beyond])


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return [line(header), line(tuple("-" * w for w in widths))] + [line(r) for r in rows]


def format_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    """Aligned text columns; `summary_rows`' answer prints as its three tables (its own headers)."""
    if isinstance(rows, SummaryRows):
        return rows.lines()
    return _table(rows, header)
