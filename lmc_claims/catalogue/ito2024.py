"""Ito, Yamada, Kumagai 2024 (arXiv 2402.04051): weight matching through singular vectors.

Protocols, regimes and published figures follow ../shared/PUBLISHED.md ("Ito, Yamada, Kumagai"),
each with its tag. Barriers are judged on training loss: Ito et al. state no split, and the
definition they build on (Entezari et al. 2022, Eq. 1) uses training loss unless stated.
"""

from __future__ import annotations

import math

from ..judging import Claim, Criterion, Needs, Published, Regime, MERGES, TRIPLES

PAPER = "Ito, Yamada, Kumagai 2024 (arXiv 2402.04051)"

REGIME = Regime(
    text="MLP 784-512-512-512-10 on MNIST / Fashion-MNIST; VGG11 and ResNet20 on CIFAR-10 at the sibling code's "
    "widths (VGG11 x4, ResNet20 x16)",
    source="PUBLISHED.md: models [secondary]; widths and training [code: e5-a/STE-MM scripts/run_train.sh]",
    min_width={"mlp": 512, "vgg11": 4, "resnet20": 16, "resnet20ln": 16},
    training="MLP: Adam 1e-3, batch 500, 5 epochs; VGG11 / ResNet20: SGD lr 0.4, momentum 0.9, 100 epochs [code]",
)
WIDTH_REGIME = Regime(
    text="the same architectures across widths (MLP, VGG11, ResNet20)",
    source="PUBLISHED.md 'Width' [secondary]",
    min_width={"mlp": 1, "vgg11": 1, "resnet20": 1, "resnet20ln": 1},
)
TRAIN_SPLIT = ("train", "Ito et al. state no split [not found]; the barrier they build on (Entezari et al. 2022, Eq. 1) "
                        "is on training loss unless stated (PUBLISHED.md, Barrier)")
# STE's comparison with WM means nothing when STE returns WM's answer (it never left model A).
# The search starts at weight matching of B onto A (with its own visiting order) and returns that
# answer when its proxy never moves; WM from another visiting order already differs from it on most
# units of a 3 x 512 MLP (`wm_order_differs`), so the reference is STE's own first projection.
STE_MOVED = ("ours: STE's permutation must differ from its first projection (weight matching of B onto A) for at "
             "least 1% of the units, else STE returned WM's answer and the comparison is inconclusive (issue: "
             "'STE barely runs')")

CLAIMS = [
    Claim(
        id="ito2024-singular-values", protocol="ito", needs=Needs.of(),
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
        regime=Regime("any network: an identity of linear algebra", "[paper] §4"),
        published=(Published("singular values unchanged by every permutation (exact)", "paper",
                             "max_rel_sv_change", 0.0, 1e-9),),
        headline=True,
    ),
    Claim(
        id="ito2024-l2-distance", protocol="ito", needs=Needs.of("wm"),
        paper=PAPER,
        section="§3, Table 1",
        statement="Weight matching does not significantly reduce the L2 distance between two models "
        "(r = ||theta_A - pi(theta_B)|| / ||theta_A - theta_B|| stays close to 1) although it removes most of the barrier; "
        "LMC is not explained by the reduction: shrinking B towards A without matching reaches WM's barrier only at a "
        "much smaller distance.",
        metric="r per model pair (and r for random permutations); training loss barrier reduction 1 - B_WM / B_naive; "
        "shrink ratio t* = largest t with barrier(A, A + t (B - A)) <= B_WM (training loss)",
        criteria=(
            Criterion("l2_ratio", ">=", 0.7, source="CLAIMS.md item 2 (our CPU criterion: r >= 0.7)"),
            Criterion("barrier_reduction_train", ">=", 0.8,
                      source="CLAIMS.md item 2 (our CPU criterion: >= 80% lower barrier)"),
            Criterion("l2_ratio_minus_shrink_ratio", ">", 0.0,
                      source="issue criterion (ours): shrinking B towards A without matching must reach WM's barrier "
                      "only at a smaller distance ratio than WM's r; one-sided 95% bound above 0"),
        ),
        regime=REGIME,
        split=TRAIN_SPLIT[0], split_source=TRAIN_SPLIT[1],
        published=(Published("r = 0.80-0.94: WM lowers the L2 distance by only 6-20% (Table 1, 3-5 trials)",
                             "secondary", "l2_ratio", 0.80, 0.94),),
        headline=True,
    ),
    Claim(
        id="ito2024-sv-alignment", protocol="ito", needs=Needs.of("wm", "ste", "ste-gr"),
        paper=PAPER,
        section="§4, Figure 2",
        statement="The permutation found by WM aligns the singular vectors with large singular values: "
        "R(theta_a, pi(theta_b)) over the singular values above gamma * s_1 is higher after WM than without a "
        "permutation or after a random one, and higher at gamma = 0.3 (large singular values) than at gamma = 0.",
        metric="Ito et al.'s R = sum_l sum_{i,j in S_l} (u_i^a . P u_j^b)(v_i^a . P' v_j^b) / sum_l n_l, "
        "S_l = singular values >= gamma * s_1, at gamma = 0.3 and 0, per pair; O_k subspace overlaps stored beside",
        criteria=(
            Criterion("r_wm_minus_naive_gamma03", ">", 0.0,
                      source="PUBLISHED.md [secondary]: R with WM clearly above R without permutation (~0); "
                      "one-sided 95% bound above 0 (ours)"),
            Criterion("r_wm_minus_random_gamma03", ">", 0.0,
                      source="issue item 5: above random permutations; one-sided 95% bound above 0 (ours)"),
            Criterion("r_wm_rise_gamma03_over_gamma0", ">", 0.0,
                      source="PUBLISHED.md [secondary]: with WM, R at gamma = 0.3 clearly higher than at gamma = 0; "
                      "one-sided 95% bound above 0 (ours)"),
        ),
        regime=REGIME,
        published=(
            Published("R ~ 0 without permutation (Figure 2, blue bars)", "secondary", "r_naive_gamma03", -0.05, 0.05),
            Published("R after WM at gamma = 0.3: ~0.2 (VGG11 / ResNet20) up to ~0.8 (MLP); readings conflict, the "
                      "range spans both", "secondary", "r_wm_gamma03", 0.15, 0.85),
        ),
        headline=True,
    ),
    Claim(
        id="ito2024-merge-wm-vs-ste", protocol="ito", needs=Needs.of(TRIPLES, MERGES),
        paper=PAPER,
        section="§6, Figure 6 and Table 3",
        statement="With three models, theta_b and theta_c each permuted onto an anchor theta_a, the barrier between "
        "pi_b(theta_b) and pi_c(theta_c) is smaller with weight matching than with the straight-through estimator: "
        "WM is more advantageous for merging three or more models.",
        metric="training loss barrier between pi_b(theta_b) and pi_c(theta_c), STE minus WM, paired over disjoint "
        "model triples; merged models of N = 3, 4, 5 (onto an anchor and MergeMany) stored beside",
        criteria=(
            Criterion("ste_moved_fraction", ">=", 0.01, precondition=True, source=STE_MOVED),
            Criterion("barrier_gain_ste_minus_wm_train", ">", 0.0,
                      source="paper §6 (direction: WM's barrier smaller); one-sided 95% bound above 0 over disjoint "
                      "triples (ours)"),
        ),
        regime=REGIME,
        split=TRAIN_SPLIT[0], split_source=TRAIN_SPLIT[1],
        published=(Published("barrier(pi_b(b), pi_c(c)): WM -0.098 +- 0.040 vs STE 0.296 +- 0.003 (readings conflict: "
                             "MLP on FMNIST WM 0.74 vs STE 3.47); agreement = STE's barrier higher",
                             "secondary", "barrier_gain_ste_minus_wm_train", 0.0, math.inf),),
        headline=True,
    ),
    Claim(
        id="ito2024-ste-alignment", protocol="ito", needs=Needs.of("wm", "ste", "ste-gr"),
        paper=PAPER,
        section="§6, Table 2",
        statement="The straight-through estimator reaches LMC without aligning the singular vectors with large "
        "singular values the way weight matching does: R after STE stays below R after WM.",
        metric="the share of WM's alignment gain that STE keeps, (R_STE - R_naive) / (R_WM - R_naive), Ito et al.'s R "
        "at gamma = 0.3, per pair; training loss barrier reduction of STE (R_WM - R_STE stored beside)",
        criteria=(
            Criterion("ste_moved_fraction", ">=", 0.01, precondition=True, source=STE_MOVED),
            Criterion("ste_kept_alignment_gamma03", "<=", 0.5,
                      source="ours, from the paper's R ~ 0 for STE (Table 2) and §6 ('permutations found by STE do not "
                      "align the directions of singular vectors' the way WM does): STE keeps at most half of WM's "
                      "alignment gain over no permutation",
                      corrected="2026-12-07, after the results were seen (issue 20): was r_wm_minus_ste_gamma03 > 0 "
                      "(set in issue 12 before measuring). It passed at R_STE = 0.111 against R_WM = 0.116, STE keeping "
                      "about 95% of WM's alignment, which the paper's R ~ 0 contradicts: it did not test the statement. "
                      "R_WM - R_STE stays in the data"),
            Criterion("ste_barrier_reduction_train", ">=", 0.8,
                      source="CLAIMS.md item 2's '>= 80% lower barrier' reused for 'reaches LMC' (ours)"),
        ),
        regime=REGIME,
        split=TRAIN_SPLIT[0], split_source=TRAIN_SPLIT[1],
        published=(Published("STE reaches a low barrier with R ~ 0 (Table 2)", "secondary", "r_ste_gamma03", -0.05, 0.05),),
    ),
    Claim(
        id="ito2024-width", protocol="ito", needs=Needs.of("wm", "am"),
        paper=PAPER,
        section="open question 2 / §4 discussion (width and dominant singular values)",
        statement="Wider models satisfy LMC more easily: the barrier after WM falls as width grows, and so does the "
        "share of singular values needed to hold most of each layer's spectrum.",
        metric="per pair: least-squares slope against log2(width) of the WM training loss barrier and of the fraction "
        "of singular values holding 90% of sum s_i^2 (mean over hidden-layer weight matrices)",
        criteria=(
            Criterion("wm_barrier_slope_train", "<", 0.0, source="direction from the paper; one-sided 95% bound below 0 (ours)"),
            Criterion("dominant_share_slope", "<", 0.0, source="direction from the paper; 90% energy cut and bound are ours"),
        ),
        regime=WIDTH_REGIME,
        split=TRAIN_SPLIT[0], split_source=TRAIN_SPLIT[1],
        published=(Published("wider models make LMC by WM easier, 'due to a decrease in the proportion of dominant "
                             "singular vectors'; numbers not found", "secondary"),),
    ),
]
