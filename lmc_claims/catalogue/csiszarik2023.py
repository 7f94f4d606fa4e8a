"""Csiszárik, Kiss, Kőrösi-Szabó, Muntag, Papp, Varga 2023 (arXiv 2308.11511): mode combinability.

What the paper's public text confirms (its abstract; the full text was not available offline):
element-wise convex combinations theta_c = c * theta_A + (1 - c) * pi(theta_B), c in the
hypercube [0, 1]^d "and its vicinity", drawn from "various distributions"; broad regions of the
hypercube have low loss; transitivity (two models re-based onto a common third are linearly
mode connected); robustness (significant perturbations of the neuron matching still give
working combinations); non-vacuity (significant functional differences between the resulting
models). The coefficient schemes and every threshold below are ../shared/CLAIMS.md's or ours.
"""

from __future__ import annotations

from ..judging import Claim, Criterion, Needs, Published, Regime, TRANSITIVE

PAPER = "Csiszárik, Kiss, Kőrösi-Szabó, Muntag, Papp, Varga 2023, Mode Combinability (arXiv 2308.11511)"

REGIME = Regime("no model, width or training stated", "[not found] (PUBLISHED.md: the abstract only; distributions, "
                "models and numbers not found)")
TEST_SPLIT = ("test", "ours: the paper's split was not found; combinations are judged on how they generalise")
TRAIN_SPLIT = ("train", "ours, as Entezari et al. 2022 Eq. 1 defines a barrier: training loss (PUBLISHED.md, Barrier)")
ABSTRACT = (Published("abstract only: no number found", "paper"),)
CONTEXT = dict(regime=REGIME, published=ABSTRACT)

# The premise of the combinability, transitivity and robustness statements: they are about
# permutation-aligned models, an extension of LMC to the hypercube, so the aligned models must be
# linearly connected to begin with. Declared on 2026-12-07 before any run measured with it (issue 20).
_PREMISE = ("the paper frames these properties as linear mode connectivity of permutation-aligned models extended to "
            "the hypercube (abstract; issue 20): WM must connect A and pi(B). 'Connected' is the project's near-zero "
            "reading of ainsworth2023-wm-barrier, <= 0.05 nats (ours)")


def _premise(statistic: str) -> Criterion:
    return Criterion(statistic, "<=", 0.05, source=_PREMISE, premise=True)


_REMOVED = ("ours, in the style of CLAIMS.md item 2: 'stays low while unaligned pairs do not' read as "
            ">= 80% of the unaligned combinations' excess test loss removed by WM (paper gives no number)")

CLAIMS = [
    Claim(
        id="csiszarik2023-combinability", needs=Needs.of("wm"),
        paper=PAPER,
        section="abstract (section numbers not confirmed; CLAIMS.md item 11)",
        statement="For permutation-aligned models A and pi(B), element-wise convex combinations "
        "c * theta_A + (1 - c) * pi(theta_B) with c drawn from the hypercube [0, 1]^d (uniform per weight, "
        "Bernoulli(1/2) per weight, one c per neuron, one c per layer) keep a low loss, "
        "while the same combinations of unaligned models do not.",
        metric="excess test loss (mean loss of theta_c over samples minus the endpoints' mean loss), "
        "share removed by WM: 1 - excess_WM / excess_naive, per coefficient scheme",
        criteria=(_premise("premise_wm_barrier_test"),) + tuple(
            Criterion(f"excess_removed_{scheme}", ">=", 0.8, source=_REMOVED)
            for scheme in ("uniform", "bernoulli", "neuron", "layer")
        ),
        paper_figure="broad regions of the hypercube form surfaces of low loss (abstract)",
        split=TEST_SPLIT[0], split_source=TEST_SPLIT[1], **CONTEXT,
    ),
    Claim(
        id="csiszarik2023-transitivity", needs=Needs.of("wm", TRANSITIVE),
        paper=PAPER,
        section="abstract, transitivity property (CLAIMS.md item 12)",
        statement="Two models A and B, each re-based (weight matching) onto a common third model C, "
        "are linearly mode connected to each other: the barrier between pi_A(A) and pi_B(B) is small "
        "compared with the naive barrier between A and B.",
        metric="training loss barrier (25 points) between pi_A(A) and pi_B(B); reduction 1 - B_transitive / B_naive; "
        "test split stored",
        criteria=(
            # Both re-basings onto C: the larger of the two WM barriers, per pair.
            _premise("premise_rebasin_barrier_train"),
            Criterion("barrier_reduction_transitive_train", ">=", 0.8,
                      source="ours, as CLAIMS.md item 2: 'small compared with the naive barrier' read as "
                      ">= 80% lower than the naive barrier (paper gives no number)"),
            Criterion("barrier_transitive_train", "<=", 0.05,
                      source="CLAIMS.md item 12 ('linearly mode connected to each other', 'barrier ... small'), read "
                      "as the project's near-zero barrier of ainsworth2023-wm-barrier, <= 0.05 nats (ours)",
                      corrected="2026-12-07, after the results were seen (issue 20's audit): added. The relative "
                      "reduction alone (>= 80% of the naive barrier) could pass with a barrier of several tenths of a "
                      "nat left, which is not the linear mode connectivity the statement asserts"),
        ),
        split=TRAIN_SPLIT[0], split_source=TRAIN_SPLIT[1], **CONTEXT,
    ),
    Claim(
        id="csiszarik2023-robustness", needs=Needs.of("wm"),
        paper=PAPER,
        section="abstract, robustness property (CLAIMS.md item 13)",
        statement="Perturbing the neuron matching (breaking a fraction f of the matched pairs in every layer) "
        "still gives working combinations; performance degrades gradually as f grows.",
        metric="excess test loss E(f) of uniform-hypercube combinations with a perturbed WM matching, f in "
        "(0, 0.1, 0.25, 0.5, 1); at f = 0.25 the share of the fully broken (f = 1) excess that remains removed; "
        "the steepest rise of E between adjacent fractions relative to its average rise E(1) - E(0) over [0, 1] "
        "(Spearman correlation of f with the loss stored beside)",
        criteria=(
            _premise("premise_wm_barrier_test"),
            Criterion("excess_removed_at_quarter", ">=", 0.5,
                      source="ours: 'significant perturbation' read as f = 0.25 of every layer's matches broken, "
                      "'still a working model' as at least half of the fully broken matching's excess loss still "
                      "removed (paper gives no number)"),
            Criterion("steepest_relative_rise", "<=", 2.5,
                      source="ours: 'degrades gradually' read as no interval of f where the excess loss rises more than "
                      "2.5x faster than its average rate over [0, 1]; a flat curve that then rises gradually passes, "
                      "a cliff does not (replaces a Spearman >= 0.9 test that failed flat curves)"),
        ),
        split=TEST_SPLIT[0], split_source=TEST_SPLIT[1], **CONTEXT,
    ),
    Claim(
        id="csiszarik2023-non-vacuous", needs=Needs.of("wm"),
        paper=PAPER,
        section="abstract, functional similarity (CLAIMS.md item 14)",
        statement="Combinations of aligned models are non-vacuous: their test predictions differ from both "
        "endpoints clearly more than a model's predictions differ from themselves.",
        metric="fraction of test examples on which a WM combination predicts differently from the nearer endpoint, "
        "mean over samples, least over the four coefficient schemes",
        criteria=(
            Criterion("disagreement_excess", ">", 0.0,
                      source="CLAIMS.md item 14 (above a model's disagreement with itself); one-sided 95% bound "
                      "above 0 (ours)"),
            Criterion("disagreement_ratio", ">=", 0.25,
                      source="ours: 'well above' read as at least a quarter of the disagreement between the two "
                      "endpoints themselves (paper gives no number)"),
        ),
        split=TEST_SPLIT[0], split_source=TEST_SPLIT[1], **CONTEXT,
    ),
]
