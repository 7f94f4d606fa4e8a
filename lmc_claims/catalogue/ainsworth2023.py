"""Ainsworth, Hayase, Srinivasa 2023 (Git Re-Basin, arXiv 2209.04836) and Entezari et al. 2022."""

from __future__ import annotations

from ..judging import Claim, Criterion

PAPER = "Ainsworth, Hayase, Srinivasa 2023, Git Re-Basin (arXiv 2209.04836)"

CLAIMS = [
    Claim(
        id="ainsworth2023-wm-barrier",
        paper=PAPER,
        section="§3 and Figure 2 (MLP on MNIST)",
        statement="Two independently trained MLPs have a large loss barrier on the straight line between them; "
        "after weight matching the barrier is near zero.",
        metric="test loss barrier (mean cross-entropy, 25 interpolation points), naive and after WM",
        criteria=(
            Criterion("naive_barrier", ">=", 0.3, source="ours: 'large' read as >= 0.3 nats (paper gives no number)"),
            Criterion("wm_barrier", "<=", 0.05, source="ours: 'near zero' read as <= 0.05 nats (paper gives no tolerance)"),
        ),
    ),
    Claim(
        id="ainsworth2023-am-barrier",
        paper=PAPER,
        section="§3.1 (activation matching) and Figure 2",
        statement="After activation matching, the loss barrier between two independently trained networks is near "
        "zero, as after weight matching.",
        metric="test loss barrier (25 interpolation points), naive and after AM (correlation of layer outputs on training data)",
        criteria=(
            Criterion("naive_barrier", ">=", 0.3, source="ours: 'large' read as >= 0.3 nats (paper gives no number)"),
            Criterion("am_barrier", "<=", 0.05, source="ours: 'near zero' read as <= 0.05 nats (paper gives no tolerance)"),
        ),
    ),
    Claim(
        id="ainsworth2023-width",
        paper=PAPER,
        section="§5 and Figure 4 (width multiplier)",
        statement="The barrier after matching falls as the width multiplier grows.",
        metric="per pair: least-squares slope of the test loss barrier after WM and after AM against log2(width)",
        criteria=(
            Criterion("wm_barrier_slope", "<", 0.0, source="direction from the paper; one-sided 95% bound below 0 (ours)"),
            Criterion("am_barrier_slope", "<", 0.0, source="direction from the paper; one-sided 95% bound below 0 (ours)"),
        ),
    ),
]
