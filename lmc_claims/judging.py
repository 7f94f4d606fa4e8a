"""Claim declarations and how a verdict is judged from per-seed measurements.

A claim = a statement, a metric, criteria (each with the source of its number),
and a minimum number of seeds. Judging is separate from measuring and has three
outcomes: pass, fail, inconclusive (asv-style).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
VERDICTS = (PASS, FAIL, INCONCLUSIVE)
CONFIDENCE = 0.95  # one-sided bounds use Student's t at this level


@dataclass(frozen=True)
class Criterion:
    statistic: str  # a 1-D variable of the claim's dataset, one value per seed (pair / set)
    op: str  # ">", ">=", "<", "<="
    threshold: float
    source: str  # where the threshold comes from: the paper, ../CLAIMS.md, or "ours"
    exact: bool = False  # exact maths: judged on the worst seed, without statistics

    def text(self) -> str:
        return f"{self.statistic} {self.op} {self.threshold:g}"


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    section: str
    statement: str
    metric: str
    criteria: tuple[Criterion, ...]
    min_seeds: int = 3
    paper_figure: str = ""  # what the paper itself reports, shown beside our figure

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Judgement:
    criterion: Criterion
    n: int
    mean: float
    std: float
    lower: float  # one-sided bounds of the mean (the worst seed for exact criteria)
    upper: float
    verdict: str

    def as_dict(self) -> dict:
        d = asdict(self)
        d["criterion"] = self.criterion.text()
        d["source"] = self.criterion.source
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _holds(value: float, op: str, threshold: float) -> bool:
    return {">": value > threshold, ">=": value >= threshold, "<": value < threshold, "<=": value <= threshold}[op]


def judge(criterion: Criterion, values, min_seeds: int) -> Judgement:
    """Pass when the whole one-sided confidence bound satisfies the criterion, fail when
    the bound on the other side already violates it, inconclusive otherwise (or too few seeds)."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return Judgement(criterion, 0, math.nan, math.nan, math.nan, math.nan, INCONCLUSIVE)
    mean = float(v.mean())
    std = float(v.std(ddof=1)) if n > 1 else 0.0
    if criterion.exact:
        lower, upper = float(v.min()), float(v.max())
        worst = upper if criterion.op.startswith("<") else lower
        verdict = PASS if _holds(worst, criterion.op, criterion.threshold) else FAIL
        return Judgement(criterion, n, mean, std, lower, upper, verdict if n >= min_seeds else INCONCLUSIVE)
    half = stats.t.ppf(CONFIDENCE, n - 1) * std / math.sqrt(n) if n > 1 else math.inf
    lower, upper = mean - half, mean + half
    favourable, unfavourable = (lower, upper) if criterion.op.startswith(">") else (upper, lower)
    if n < min_seeds:
        verdict = INCONCLUSIVE
    elif _holds(favourable, criterion.op, criterion.threshold):
        verdict = PASS
    elif not _holds(unfavourable, criterion.op, criterion.threshold):
        verdict = FAIL
    else:
        verdict = INCONCLUSIVE
    return Judgement(criterion, n, mean, std, lower, upper, verdict)


def overall(judgements: list[Judgement]) -> str:
    verdicts = [j.verdict for j in judgements]
    if FAIL in verdicts:
        return FAIL
    if all(v == PASS for v in verdicts):
        return PASS
    return INCONCLUSIVE
