"""Claim declarations and how a verdict is judged from per-seed measurements.

A claim = a statement, a metric, criteria (each with the source of its number), the regime
its paper states (architecture family, minimum width, training), the data split that decides
it, the figures the paper publishes, and a minimum number of independent samples. Judging is
separate from measuring and has three outcomes: pass, fail, inconclusive (asv-style).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

from .names import METHODS

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
# A claim test whose premise (the condition its paper's statement presupposes) does not hold here:
# never a FAIL of the claim, shown with the measured value.
PREMISE_NOT_MET = "premise-not-met"
VERDICTS = (PASS, FAIL, INCONCLUSIVE, PREMISE_NOT_MET)
# Each side's error over all the looks of a sequential claim test: a PASS when the criterion is
# false, or a FAIL when it holds, has probability at most ALPHA however many looks are taken.
ALPHA = 0.05
CONFIDENCE = 1 - ALPHA  # one look: one-sided bounds use Student's t at this level


def alpha_per_look(looks: int) -> float:
    """The level of each look when a test may look `looks` times: ALPHA split evenly over the looks
    (Bonferroni's inequality: P(any of K looks errs) <= sum of the K levels). The simplest valid
    group-sequential rule; see Jennison & Turnbull, Group Sequential Methods with Applications to
    Clinical Trials (2000), ch. 2, where it bounds Pocock's and O'Brien-Fleming's boundaries from
    the conservative side. It holds for any dependence between the looks (ours share samples)."""
    return ALPHA / max(1, looks)


@dataclass(frozen=True)
class Criterion:
    statistic: str  # a 1-D variable of the claim's dataset, one value per seed (pair / set)
    op: str  # ">", ">=", "<", "<="
    threshold: float
    source: str  # where the threshold comes from: the paper, ../CLAIMS.md, or "ours"
    exact: bool = False  # exact maths: judged on the worst seed, without statistics
    # A condition for the comparison to mean anything (e.g. STE left its starting point): when it
    # does not pass, the claim is inconclusive, whatever the other criteria say.
    precondition: bool = False
    # The paper's premise (its statement presupposes it): judged like a criterion; when it fails, the
    # claim test is "premise not met", never a FAIL.
    premise: bool = False
    # "YYYY-MM-DD: what it was, and why it changed" for a criterion corrected after results were seen.
    corrected: str = ""

    def text(self) -> str:
        return f"{self.statistic} {self.op} {self.threshold:g}"


@dataclass(frozen=True)
class Regime:
    """The setting a paper states a claim for, fixed before measuring and never moved to make a
    claim pass. A claim test outside it is still measured and shown, apart from the headline."""

    text: str  # the paper's setting in words, e.g. "MLP 784-512-512-512-10 on MNIST, Adam"
    source: str  # where the paper states it, with its tag: [paper], [code] or [secondary]
    min_width: dict[str, int] = field(default_factory=dict)  # architecture family -> smallest width; {} = any
    optimizer: str = ""  # the training optimizer the statement is about ("sgd"), "" = any
    training: str = ""  # the paper's training length, stated beside ours (not a gate: CPU runs are shorter)

    def check(self, arch: str, width: int | None, optimizer: str) -> str:
        """Why a setting is outside the regime, or "" when it is inside."""
        family = arch.split("@", 1)[0]
        if self.min_width and family not in self.min_width:
            return f"{family} is not an architecture the paper states this for ({', '.join(self.min_width)})"
        if width is not None and self.min_width and width < self.min_width[family]:
            return f"width {width} is below the paper's {self.min_width[family]} for {family}"
        if self.optimizer and optimizer != self.optimizer:
            return f"trained with {optimizer}, the paper's statement is about {self.optimizer}"
        return ""


ANY_REGIME = Regime("no regime stated", "[not found]")


@dataclass(frozen=True)
class Published:
    """A figure the paper (or its code) publishes, beside which ours is shown."""

    text: str  # the figure in words, e.g. "r = 0.80-0.94 (Table 1)"
    tag: str  # "paper", "code", "secondary" (../shared/PUBLISHED.md's tags)
    statistic: str = ""  # our variable it is compared with; "" when nothing we measure is comparable
    low: float = -math.inf  # our mean agrees when it lies in [low, high]
    high: float = math.inf

    def agrees(self, mean: float | None) -> bool | None:
        if not self.statistic or mean is None or not math.isfinite(mean):
            return None
        return self.low <= mean <= self.high


# What a claim's tests build, besides its pairs' models: the family of settings it measures and
# what it uses there. `uses` holds matching methods (names.METHODS) and these protocol designs
# (designs.py): Ito et al.'s triples and merge sets, the transitivity claim's third models, and the
# scale's reference MLP (scales.reference_mlp) with its pairs matched by WM.
MAIN, TWO_LAYER = "main", "two-layer"
TRIPLES, MERGES, TRANSITIVE, REFERENCE = "triples", "merges", "transitive", "reference-mlp"


@dataclass(frozen=True)
class Needs:
    family: str = MAIN  # MAIN: the scale's runs; TWO_LAYER: its two-layer family (scales.two_layer_family)
    uses: tuple[str, ...] = ()

    @classmethod
    def of(cls, *uses: str, family: str = MAIN) -> "Needs":
        return cls(family, tuple(sorted(set(uses))))


# A claim that declares nothing gets everything either family can use built up front.
EVERYTHING = Needs(None, tuple(sorted({*METHODS, TRIPLES, MERGES, TRANSITIVE, REFERENCE})))


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
    regime: Regime = ANY_REGIME
    split: str = ""  # "train" or "test": the split whose loss decides; "" when no loss decides
    split_source: str = ""  # why that split
    published: tuple[Published, ...] = ()
    headline: bool = False  # one of the claims the summary leads with
    needs: Needs = EVERYTHING  # what its tests build (plan.py submits it up front)
    # The training protocol its tests use where a scale trains an architecture several ways (the paper
    # scale's "<arch>@ito" / "<arch>@gr" runs, scales.PROTOCOLS); "" = every run.
    protocol: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Judgement:
    criterion: Criterion
    n: int
    mean: float
    std: float
    lower: float  # one-sided bounds of the mean at the look's level (the worst seed for exact criteria)
    upper: float
    verdict: str
    alpha: float = ALPHA  # the look's one-sided level (alpha_per_look)
    low95: float = math.nan  # the mean's two-sided 95% interval, for the report
    high95: float = math.nan

    def as_dict(self) -> dict:
        d = asdict(self)
        d["criterion"] = self.criterion.text()
        d["source"] = self.criterion.source
        d["premise"] = self.criterion.premise
        d["corrected"] = self.criterion.corrected
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _holds(value: float, op: str, threshold: float) -> bool:
    return {">": value > threshold, ">=": value >= threshold, "<": value < threshold, "<=": value <= threshold}[op]


def judge(criterion: Criterion, values, min_seeds: int, alpha: float = ALPHA) -> Judgement:
    """Pass when the whole one-sided (1 - alpha) confidence bound satisfies the criterion, fail when
    the bound on the other side already violates it, inconclusive otherwise (or too few seeds)."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    mean, std, n = summarise(v)
    if n == 0:
        return Judgement(criterion, 0, math.nan, math.nan, math.nan, math.nan, INCONCLUSIVE, alpha)
    if criterion.exact:
        lower, upper = float(v.min()), float(v.max())
        worst = upper if criterion.op.startswith("<") else lower
        verdict = PASS if _holds(worst, criterion.op, criterion.threshold) else FAIL
        return Judgement(criterion, n, mean, std, lower, upper, verdict if n >= min_seeds else INCONCLUSIVE, alpha,
                         lower, upper)
    half = stats.t.ppf(1 - alpha, n - 1) * std / math.sqrt(n) if n > 1 else math.inf
    half95 = stats.t.ppf(0.975, n - 1) * std / math.sqrt(n) if n > 1 else math.inf
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
    return Judgement(criterion, n, mean, std, lower, upper, verdict, alpha, mean - half95, mean + half95)


def overall(judgements: list[Judgement]) -> str:
    """FAIL / PASS / INCONCLUSIVE over the criteria; a premise that fails makes the test "premise
    not met" and one not yet decided leaves it inconclusive, whatever the criteria say."""
    premises = [j for j in judgements if j.criterion.premise]
    if any(j.verdict == FAIL for j in premises):
        return PREMISE_NOT_MET
    if any(j.verdict != PASS for j in premises):
        return INCONCLUSIVE
    judgements = [j for j in judgements if not j.criterion.premise]
    if any(j.criterion.precondition and j.verdict != PASS for j in judgements):
        return INCONCLUSIVE
    verdicts = [j.verdict for j in judgements]
    if FAIL in verdicts:
        return FAIL
    if all(v == PASS for v in verdicts):
        return PASS
    return INCONCLUSIVE


def summarise(values) -> tuple[float, float, int]:
    """Mean, standard deviation (ddof 1) and count of the finite values."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)


def compare_published(published: Published, values) -> dict:
    """A published figure beside ours: our mean, spread and n of its statistic, and whether they agree."""
    mean, std, n = summarise(values) if published.statistic else (math.nan, math.nan, 0)
    agrees = published.agrees(mean if n else None)
    finite = lambda x: x if math.isfinite(x) else None
    return {"text": published.text, "tag": published.tag, "statistic": published.statistic,
            "mean": finite(mean), "std": finite(std), "n": n, "agrees": agrees}
