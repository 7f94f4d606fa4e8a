"""`lmc-claims compare RUN_A RUN_B`: which verdicts and key figures changed between two report directories.

Claim tests are matched by claim id and parameters (not node id, which a renamed test file
would change). A regression is a claim test that passed in A and fails (or crashes) in B.
Claims whose headline verdict changed (see summary.headline_verdict) are listed after the table.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import LmcClaimsError
from .summary import ERROR, by_claim, deciding_judgement, fmt, headline_verdict, params_text, statistic_of, verdict_label

REL_TOL = 1e-9  # figures equal to this relative tolerance count as unchanged (float round trips)


def load_report(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    path = run_dir / "report.json"
    if not run_dir.is_dir():
        raise LmcClaimsError(
            f"The report directory {run_dir} does not exist.",
            "pass two directories written by `pytest -m claims` (each run's --claims-report-dir; `reports` by default).",
        )
    if not path.is_file():
        rebuild = (run_dir / "data").is_dir() and any((run_dir / "data").glob("*.nc"))
        raise LmcClaimsError(
            f"{run_dir} has no report.json.",
            f"run `lmc-claims report {run_dir}` to rebuild it from the data/*.nc files there." if rebuild else
            f"run the claims into it first: `pytest -m claims --claims-report-dir={run_dir}`.",
        )
    try:
        report = json.loads(path.read_text())
        claims = report["claims"]
        if not isinstance(claims, list):
            raise TypeError("'claims' is not a list")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LmcClaimsError(
            f"{path} is not a readable lmc-claims report ({e}).",
            f"run `lmc-claims report {run_dir}` to rebuild it from the data/*.nc files there.",
        ) from None
    return report


def match_key(record: dict) -> tuple[str, str]:
    return record["id"], json.dumps(record.get("params", {}), sort_keys=True)


@dataclass
class Row:
    claim: str
    params: str
    verdict_a: str | None
    verdict_b: str | None
    figure: str  # the statistic compared: the deciding criterion's (in B, else in A)
    value_a: float | None
    value_b: float | None
    change: str

    @property
    def regression(self) -> bool:
        return self.verdict_a == "pass" and self.verdict_b in ("fail", ERROR)


def _mean_of(record: dict | None, statistic: str) -> float | None:
    for j in (record or {}).get("judgements", []):
        if statistic_of(j["criterion"]) == statistic:
            return j.get("mean")
    return None


def _changed_statistics(old: dict | None, new: dict | None) -> list[str]:
    """Criterion statistics whose mean differs between the two records (in B's criterion order)."""
    if not old or not new:
        return []
    stats = [statistic_of(j["criterion"]) for j in new.get("judgements", [])]
    return [s for s in stats if not _same(_mean_of(old, s), _mean_of(new, s))]


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=0.0)


class Comparison(list):
    """compare_reports' rows, carrying the claims whose headline verdict changed: (claim, verdict A, verdict B)."""

    def __init__(self, rows, headline_changes):
        super().__init__(rows)
        self.headline_changes = headline_changes


def headline_verdicts(report: dict) -> dict[str, str]:
    """Each claim's headline verdict, recomputed from the claim tests (old report.json files lack it)."""
    return {cid: headline_verdict(tests) for cid, _, tests in by_claim(report)}


def headline_changes(a: dict, b: dict) -> list[tuple[str, str | None, str | None]]:
    va, vb = headline_verdicts(a), headline_verdicts(b)
    return [(cid, va.get(cid), vb.get(cid)) for cid in [*vb, *(c for c in va if c not in vb)] if va.get(cid) != vb.get(cid)]


def compare_reports(a: dict, b: dict) -> Comparison:
    ra = {match_key(r): r for r in a["claims"]}
    rb = {match_key(r): r for r in b["claims"]}
    rows = []
    # B's order (the newer report, sorted by claim and parameters), then what only A has.
    for key in [*rb, *(k for k in ra if k not in rb)]:
        old, new = ra.get(key), rb.get(key)
        j = deciding_judgement(new or {}) or deciding_judgement(old or {})
        statistic = statistic_of(j["criterion"]) if j else ""
        moved = _changed_statistics(old, new)
        if moved and statistic not in moved:
            statistic = moved[0]  # the deciding figure held still: show one that moved
        va, vb = _mean_of(old, statistic), _mean_of(new, statistic)
        verdict_a, verdict_b = old and old["verdict"], new and new["verdict"]
        if old is None:
            change = "only in B"
        elif new is None:
            change = "only in A"
        elif verdict_a != verdict_b:
            change = "REGRESSION" if verdict_a == "pass" and verdict_b in ("fail", ERROR) else "verdict"
        elif moved:
            change = "figure"
        else:
            change = ""
        rows.append(Row(key[0], params_text((new or old).get("params", {})), verdict_a, verdict_b, statistic, va, vb, change))
    return Comparison(rows, headline_changes(a, b))


def _delta(row: Row) -> str:
    if row.value_a is None or row.value_b is None or _same(row.value_a, row.value_b):
        return ""
    d = row.value_b - row.value_a
    rel = f" ({d / abs(row.value_a):+.1%})" if row.value_a else ""
    return f"{d:+.3g}{rel}"


def table_rows(rows: list[Row]) -> list[tuple[str, ...]]:
    verdicts = lambda r: f"{(r.verdict_a or '-').upper()} -> {(r.verdict_b or '-').upper()}" if r.verdict_a != r.verdict_b \
        else (r.verdict_a or "-").upper()
    return [(r.claim, r.params, verdicts(r), r.figure, fmt(r.value_a), fmt(r.value_b), _delta(r), r.change) for r in rows]


HEADER = ("claim", "parameters", "verdict A -> B", "key figure", "A", "B", "B - A", "change")


def summary_line(rows: list[Row]) -> str:
    n = lambda what: sum(r.change == what for r in rows)
    regressions = sum(r.regression for r in rows)
    line = (f"{len(rows)} claim tests: {n('verdict') + regressions} verdicts changed, {n('figure')} key figures changed "
            f"(same verdict), {n('only in A')} only in A, {n('only in B')} only in B; "
            f"{regressions} regression{'s' if regressions != 1 else ''} (passed in A, fails in B).")
    changes = getattr(rows, "headline_changes", None)
    if changes is None:
        return line
    label = lambda v: verdict_label(v) if v else "-"
    return "\n".join([line, f"{len(changes)} claim headline verdict{'s' if len(changes) != 1 else ''} changed"
                       + (":" if changes else "."),
                       *(f"  {cid}: {label(va)} -> {label(vb)}" for cid, va, vb in changes)])
