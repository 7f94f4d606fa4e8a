"""Ainsworth, Hayase, Srinivasa 2023 (Git Re-Basin, arXiv 2209.04836) and Entezari et al. 2022.

Regimes, splits and published figures follow ../shared/PUBLISHED.md ("Git Re-Basin", "Barrier").
"""

from __future__ import annotations

import math

from ..judging import Claim, Criterion, Needs, Published, Regime

PAPER = "Ainsworth, Hayase, Srinivasa 2023, Git Re-Basin (arXiv 2209.04836)"

# Zero barrier after matching: the MNIST MLP (Figure 2), and ResNet20 only from 32x (Figure 4).
LMC_REGIME = Regime(
    text="MLP 3x512 on MNIST (Figure 2); ResNet20 (LayerNorm) reaches zero barrier only at 32x width (Figure 4)",
    source="PUBLISHED.md, Git Re-Basin: MNIST MLP [secondary], 32x [secondary], LayerNorm [code: src/resnet20.py]",
    min_width={"mlp": 512, "resnet20ln": 32, "resnet20": 32},
    training="MLP: Adam 1e-3, batch 500, 100 epochs [code: src/mnist_mlp_train.py]",
)
WIDTH_REGIME = Regime(
    text="ResNet20 (LayerNorm) and VGG on CIFAR-10 across width multipliers 1, 2, 4, 8, 16, 32 (Figure 4)",
    source="PUBLISHED.md, Git Re-Basin 'Width (Fig. 4)' [secondary], widths and LayerNorm [code: src/resnet20.py]",
    min_width={"resnet20ln": 1, "resnet20": 1, "vgg11": 1},
)
TRAIN_SPLIT = ("train", "Git Re-Basin Def. 2.2 and Entezari et al. 2022 Eq. 1: the barrier of the training loss "
                        "(PUBLISHED.md, Barrier); the test split is stored beside")
LARGE = "ours: 'large' read as >= 0.3 nats (paper gives no number)"
NEAR_ZERO = "ours: 'near zero' read as <= 0.05 nats (paper gives no tolerance)"


def _barrier_claim(id: str, search: str, section: str, statement: str, metric: str, published: str) -> Claim:
    return Claim(
        id=id, protocol="gr", needs=Needs.of(search), paper=PAPER, section=section, statement=statement, metric=metric,
        criteria=(Criterion("naive_barrier_train", ">=", 0.3, source=LARGE),
                  Criterion(f"{search}_barrier_train", "<=", 0.05, source=NEAR_ZERO)),
        regime=LMC_REGIME, split=TRAIN_SPLIT[0], split_source=TRAIN_SPLIT[1],
        published=(Published(published, "secondary", f"{search}_barrier_train", -math.inf, 0.05),),
    )


CLAIMS = [
    _barrier_claim(
        "ainsworth2023-wm-barrier", "wm", "§3 and Figure 2 (MLP on MNIST)",
        "Two independently trained MLPs have a large loss barrier on the straight line between them; "
        "after weight matching the barrier is near zero.",
        "training loss barrier (mean cross-entropy, 25 interpolation points), naive and after WM; test split stored",
        "MNIST MLP 3x512: zero barrier after WM; the test-loss path is convex (agreement: ours <= 0.05 nats)"),
    _barrier_claim(
        "ainsworth2023-am-barrier", "am", "§3.1 (activation matching) and Figure 2",
        "After activation matching, the loss barrier between two independently trained networks is near "
        "zero, as after weight matching.",
        "training loss barrier (25 interpolation points), naive and after AM (correlation of post-activation "
        "features on training data); test split stored",
        "MNIST MLP 3x512: zero barrier after AM (agreement: ours <= 0.05 nats)"),
    Claim(
        id="ainsworth2023-width", protocol="gr", needs=Needs.of("wm", "am"),
        paper=PAPER,
        section="§5 and Figure 4 (width multiplier)",
        statement="The barrier after matching falls as the width multiplier grows.",
        metric="per pair: least-squares slope of the training loss barrier after WM and after AM against log2(width)",
        criteria=(
            Criterion("wm_barrier_slope_train", "<", 0.0, source="direction from the paper; one-sided 95% bound below 0 (ours)"),
            Criterion("am_barrier_slope_train", "<", 0.0, source="direction from the paper; one-sided 95% bound below 0 (ours)"),
        ),
        regime=WIDTH_REGIME, split=TRAIN_SPLIT[0], split_source=TRAIN_SPLIT[1],
        published=(Published("no LMC at 1x; the WM barrier falls with width; ResNet20 reaches zero barrier at 32x "
                             "(agreement: our slope < 0)", "secondary", "wm_barrier_slope_train", -math.inf, 0.0),),
    ),
]
