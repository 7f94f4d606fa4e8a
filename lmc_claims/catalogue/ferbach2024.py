"""Ferbach, Goujaud, Gidel, Dieuleveut 2024, Proving Linear Mode Connectivity of Neural Networks
via Optimal Transport (AISTATS 2024, arXiv 2310.19103).

Regimes and protocols follow ../shared/PUBLISHED.md ("Ferbach"): Theorem 3.1 is about two-layer
networks trained by SGD; Figure 2 is a 3 x 512 MLP trained by SGD with momentum at six learning
rates. Both judge the test loss, as Figure 2 plots it.
"""

from __future__ import annotations

from ..judging import Claim, Criterion, Needs, Published, Regime, TWO_LAYER

PAPER = "Ferbach, Goujaud, Gidel, Dieuleveut 2024, Proving LMC of Neural Networks via Optimal Transport (arXiv 2310.19103)"
TEST_SPLIT = ("test", "Ferbach et al.'s Figure 2 plots the test loss (PUBLISHED.md [code: OT_LMC notebook, `bump`])")

CLAIMS = [
    Claim(
        id="ferbach2024-barrier-vs-width", needs=Needs.of("wm", family=TWO_LAYER),
        paper=PAPER,
        section="Abstract and Theorem 3.1 (two-layer networks trained by SGD); rates of §5",
        statement="Two wide two-layer networks trained by SGD from independent seeds are linearly connected after "
        "matching their hidden neurons by optimal transport, with high probability; the barrier shrinks as the width "
        "grows, at the Wasserstein convergence rate of empirical measures (about width^(-1/d) for neuron weights on a "
        "d-dimensional support).",
        metric="per pair: least-squares slope of log(test loss barrier after OT matching = weight matching of the one "
        "hidden layer) against log(width), over the run's widths; reported beside the predicted slope -1/d for the "
        "ambient and for the measured (participation-ratio) dimension of the neuron weights",
        criteria=(
            Criterion("wm_barrier_loglog_slope", "<", 0.0,
                      source="paper (abstract, Theorem 3.1): the barrier after matching vanishes as width grows; the "
                      "direction only, with a one-sided 95% bound below 0 over pairs (ours). The rate -1/d is an "
                      "upper bound with unknown constants, so the measured slope is reported beside it, not judged"),
        ),
        paper_figure="No measurement for this claim: a bound. Width about eps^(-d) suffices for a barrier eps "
        "(d: dimension of the neuron weights' support, the input dimension for full-dimensional weights), i.e. a "
        "log-log slope of -1/d: -1/784 for MNIST pixels.",
        regime=Regime("two-layer networks (one hidden layer) trained by SGD, wide (mean field)", "[paper] Theorem 3.1",
                      min_width={"mlp-d1": 1}, optimizer="sgd"),
        split=TEST_SPLIT[0], split_source=TEST_SPLIT[1],
        published=(Published("a bound, no measured number: width ~ eps^(-d) suffices, slope -1/d", "paper"),),
    ),
    Claim(
        id="ferbach2024-dimension-vs-barrier", needs=Needs.of("wm", family=TWO_LAYER),
        paper=PAPER,
        section="Abstract and §6 (Figure 2)",
        statement="Linear mode connectivity correlates with the dimension of the support of the neuron weight "
        "distribution: settings whose neuron weights occupy a lower-dimensional support have smaller barriers "
        "after matching, i.e. reach LMC at smaller widths.",
        metric="per pair (seeds s, s+1): Spearman correlation across the six SGD learning rates (Figure 2) between the "
        "approximate dimension, the participation ratio (sum lam)^2 / sum lam^2 of the eigenvalues of the uncentred "
        "W^T W per layer (mean over hidden layers; the covariance-weighted W Sigma_in W^T stored beside), and the "
        "barrier, the test loss at t = 1/2 after weight matching. Beyond the paper: the same across MNIST projected "
        "onto k principal components, for two-layer nets",
        criteria=(
            Criterion("spearman_dim_barrier", ">", 0.0,
                      source="paper (abstract, §6): positive correlation between the dimension and the barrier; the "
                      "direction only, with a one-sided 95% bound above 0 over pairs (ours)"),
        ),
        paper_figure="Figure 2: a 3 x 512 MLP on MNIST trained by SGD at learning rates 1e-4 to 1e-1; the approximate "
        "dimension tr(S)^2/tr(S^2) of the matched weights is plotted against the barrier, lower dimension going with "
        "lower barrier.",
        regime=Regime("MLP 3x512 ReLU on MNIST trained by SGD (momentum 0.9, warm-up cosine) at 6 learning rates "
                      "log-spaced 1e-4 ... 1e-1", "[code: OT_LMC notebook] (PUBLISHED.md, Figure 2 protocol)",
                      min_width={"mlp": 512}, optimizer="sgd",
                      training="batch 500, 50 epochs, 4 repetitions [code]"),
        split=TEST_SPLIT[0], split_source=TEST_SPLIT[1],
        published=(Published("lower dimension goes with lower barrier, less clear at lr 1e-1 (Figure 2; agreement: "
                             "our rank correlation > 0)", "code", "spearman_dim_barrier", 0.0, 1.0),),
    ),
]
