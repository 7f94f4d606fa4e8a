"""Ito, Yamada, Kumagai 2024 (arXiv 2402.04051): weight matching through singular vectors."""

from __future__ import annotations

from ..judging import Claim, Criterion

PAPER = "Ito, Yamada, Kumagai 2024 (arXiv 2402.04051)"

CLAIMS = [
    Claim(
        id="ito2024-singular-values",
        paper=PAPER,
        section="§4, Eq. (3)",
        statement="A permutation P_l W_l P_{l-1}^T leaves every layer's singular values unchanged "
        "(it only moves the singular vectors to P_l U and P_{l-1} V).",
        metric="max over layers and ranks of |s_i(W) - s_i(P W P^T)| / s_1(W), trained weights, random permutations",
        criteria=(
            Criterion("max_rel_sv_change", "<=", 1e-9, exact=True,
                      source="exact identity; float64 SVD error is ~eps*n*s_1 ~ 1e-13 for n <= 1000, "
                      "1e-9 leaves margin for float32 weights (ours)"),
        ),
    ),
    Claim(
        id="ito2024-l2-distance",
        paper=PAPER,
        section="§3",
        statement="Weight matching does not significantly reduce the L2 distance between two models "
        "(r = ||theta_A - pi(theta_B)|| / ||theta_A - theta_B|| stays close to 1) although it removes most of the barrier; "
        "LMC is not explained by the reduction: shrinking B towards A without matching reaches WM's barrier only at a "
        "much smaller distance.",
        metric="r per model pair (and r for random permutations); test loss barrier reduction 1 - B_WM / B_naive; "
        "shrink ratio t* = largest t with barrier(A, A + t (B - A)) <= B_WM",
        criteria=(
            Criterion("l2_ratio", ">=", 0.7, source="CLAIMS.md item 2 (our CPU criterion: r >= 0.7)"),
            Criterion("barrier_reduction", ">=", 0.8, source="CLAIMS.md item 2 (our CPU criterion: >= 80% lower barrier)"),
            Criterion("l2_ratio_minus_shrink_ratio", ">", 0.0,
                      source="issue criterion (ours): shrinking B towards A without matching must reach WM's barrier "
                      "only at a smaller distance ratio than WM's r; one-sided 95% bound above 0"),
        ),
    ),
    Claim(
        id="ito2024-sv-alignment",
        paper=PAPER,
        section="§4, Figure 2",
        statement="The permutation found by WM aligns the singular vectors with large singular values: "
        "their subspaces overlap more after WM than before matching or after a random permutation, "
        "and more than the subspaces of the small singular values do.",
        metric="O_k = ||U_k^A^T U_k^B'||_F^2 / k on each permuted side, k = 10% of the rank, mean over layers",
        criteria=(
            Criterion("top_gain_vs_naive", ">", 0.0, source="CLAIMS.md item 3 ('clearly higher': one-sided 95% bound above 0, ours)"),
            Criterion("top_gain_vs_random", ">", 0.0, source="CLAIMS.md item 3 ('clearly higher': one-sided 95% bound above 0, ours)"),
            Criterion("top_minus_tail_wm", ">", 0.0, source="CLAIMS.md item 3 (top-k above tail-k after WM; bound above 0, ours)"),
        ),
    ),
    Claim(
        id="ito2024-merge-wm-vs-ste",
        paper=PAPER,
        section="§6",
        statement="When merging three or more models (each permuted onto a reference, then averaged), "
        "weight matching gives a better merged model than the straight-through estimator.",
        metric="test accuracy and loss of the merged model, WM minus STE, paired over model sets",
        criteria=(
            Criterion("accuracy_gain_wm_over_ste", ">", 0.0, source="paper §6 (direction); 95% one-sided bound above 0 (ours)"),
            Criterion("loss_gain_wm_over_ste", ">", 0.0, source="paper §6 (direction); 95% one-sided bound above 0 (ours)"),
        ),
    ),
    Claim(
        id="ito2024-ste-alignment",
        paper=PAPER,
        section="§6",
        statement="The straight-through estimator reaches LMC without aligning the singular vectors with large "
        "singular values the way weight matching does.",
        metric="top-10% subspace overlap gain over the unmatched pair, WM minus STE; test loss barrier reduction of STE",
        criteria=(
            Criterion("top_gain_wm_minus_ste", ">", 0.0, source="paper §6 (direction); one-sided 95% bound above 0 (ours)"),
            Criterion("ste_barrier_reduction", ">=", 0.8, source="CLAIMS.md item 2's '>= 80% lower barrier' reused for 'reaches LMC' (ours)"),
        ),
    ),
    Claim(
        id="ito2024-width",
        paper=PAPER,
        section="open question 2 / §4 discussion (width and dominant singular values)",
        statement="Wider models satisfy LMC more easily: the barrier after WM falls as width grows, and so does the "
        "share of singular values needed to hold most of each layer's spectrum.",
        metric="per pair: least-squares slope against log2(width) of the WM test loss barrier and of the fraction of "
        "singular values holding 90% of sum s_i^2 (mean over hidden-layer weight matrices)",
        criteria=(
            Criterion("wm_barrier_slope", "<", 0.0, source="direction from the paper; one-sided 95% bound below 0 (ours)"),
            Criterion("dominant_share_slope", "<", 0.0, source="direction from the paper; 90% energy cut and bound are ours"),
        ),
    ),
]
