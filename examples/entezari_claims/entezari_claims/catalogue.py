"""Entezari, Sedghi, Saukh, Neyshabur 2022, "The Role of Permutation Invariance in Linear Mode
Connectivity of Neural Networks" (ICLR 2022, arXiv 2110.06296): the barrier between two
independently trained networks (no matching) grows with depth.

Declared outside lmc-claims, as any researcher's package would: a module with a CLAIMS list,
named by the entry point `lmc_claims.claims` in pyproject.toml. The criterion is ours, fixed
before measuring: the direction the paper states, the slope of the barrier over depth above 0
with the one-sided bound of lmc-claims' judging.
"""

from lmc_claims.judging import Claim, Criterion, Needs, Regime

CLAIMS = [
    Claim(
        id="entezari2022-depth", needs=Needs.of(),
        paper="Entezari, Sedghi, Saukh, Neyshabur 2022 (arXiv 2110.06296)",
        section="§3, Figure 2 (effect of depth)",
        statement="The loss barrier between two independently trained networks, without matching, increases "
        "with depth.",
        metric="test loss barrier of the naive path per pair at each depth; least-squares slope of the barrier "
        "over depth, per pair",
        criteria=(Criterion("naive_barrier_depth_slope", ">", 0.0,
                            source="paper §3 (direction: the barrier grows with depth); the one-sided bound is ours"),),
        regime=Regime("MLPs of depth 1 to 8 on MNIST (Figure 2)", "[paper, §3]"),
        split="test", split_source="Entezari et al. 2022 report the test barrier for the depth experiment",
    ),
]
