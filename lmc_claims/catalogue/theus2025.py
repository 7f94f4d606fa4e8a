"""Theus et al. 2025 (NeurIPS 2025, arXiv 2506.22712): symmetries of transformers and the barrier
permutation-only weight matching leaves.

Regime, split and published figures follow ../shared/PUBLISHED.md ("Theus et al. 2025"), every
figure there tagged [secondary]. The thresholds are ours, fixed from that table before anything
was measured; each criterion says where its number comes from.

Their table of test-loss barriers (mean ± sd), naive (vanilla averaging) -> weight matching:
CIFAR-10 ViT 1.69 -> 0.36, CIFAR-100 ViT 2.46 -> 0.69, Tiny ImageNet ViT 2.84 -> 0.47, Tiny
Shakespeare GPT-2 2.02 -> 0.34, BookCorpus GPT-2 4.34 -> 1.56. WM removes 1 - WM / naive =
79%, 72%, 83%, 83% and 64% of the naive barrier, and leaves 0.34 nats or more everywhere.
"""

from __future__ import annotations

import math

from ..judging import Claim, Criterion, Needs, Published, Regime, REFERENCE

# scales.LMC_BARRIER, the project's near-zero barrier (a test checks they are equal); not imported,
# so that the catalogue, like the report built from it, needs no torch.
LMC_BARRIER = 0.05

PAPER = "Theus et al. 2025 (NeurIPS 2025, arXiv 2506.22712)"

# Their CIFAR-10 ViT (`vit-d6` at width 8: 8 heads of 32, dim 256, MLP 512). Narrower or shallower
# ViTs are outside it: the ci `vit` (2 blocks, dim 64, ~72k parameters against ~3M) is far from it.
REGIME = Regime(
    text="ViT, 6 layers, 8 heads, dim 256, MLP 512, on CIFAR-10 (and CIFAR-100, Tiny ImageNet; GPT-2 on text)",
    source="PUBLISHED.md, Theus et al. 2025: architecture and training [secondary]",
    min_width={"vit-d6": 8},
    training="AdamW, 150 epochs (CIFAR) [secondary]",
)
TEST_SPLIT = ("test", "Theus et al.'s table reports test-loss barriers (PUBLISHED.md [secondary]); the training split "
                      "is stored beside")

REDUCTION = 0.5
REDUCTION_SOURCE = ("ours: 'lowers a lot' read as WM removing at least half of the naive test-loss barrier; Theus et al.'s "
                    "WM removes 64-83.5% across their five settings (79% for the CIFAR-10 ViT), so 0.5 sits below all of them")
CLEAR = 2 * LMC_BARRIER
CLEAR_SOURCE = (f"ours: 'a clear barrier' read as more than twice the project's near-zero reading ({LMC_BARRIER:g} nats, "
                f"ainsworth2023-wm-barrier), so that clear and near zero cannot both hold; Theus et al.'s smallest WM "
                f"barrier is 0.34 nats")
NEAR_ZERO = (f"ours: the project's near-zero reading, <= {LMC_BARRIER:g} nats (scales.LMC_BARRIER, as in "
             "ainsworth2023-wm-barrier), on the reference MLP (Git Re-Basin's 3 x 512 on MNIST digits)")

CLAIMS = [
    Claim(
        id="theus2025-transformer-barrier", needs=Needs.of("wm", REFERENCE),
        paper=PAPER,
        section="test-loss barrier table, weight matching vs vanilla averaging (ViT on CIFAR-10)",
        statement="Permutation-only weight matching lowers a transformer's loss barrier a lot but leaves a clear "
        "one, while it removes the barrier of an MLP.",
        metric="test loss barrier (mean cross-entropy, 25 interpolation points), naive and after WM, of the setting's "
        "pairs; the share WM removes, 1 - B_WM / B_naive; the reference MLP's test loss barrier after WM; training "
        "split stored",
        criteria=(
            Criterion("wm_barrier_reduction_test", ">=", REDUCTION, source=REDUCTION_SOURCE),
            Criterion("wm_barrier_test", ">", CLEAR, source=CLEAR_SOURCE),
            Criterion("mlp_wm_barrier_test", "<=", LMC_BARRIER, source=NEAR_ZERO),
        ),
        regime=REGIME, split=TEST_SPLIT[0], split_source=TEST_SPLIT[1],
        published=(
            Published("CIFAR-10 ViT: WM removes 79% of the test-loss barrier (1.69 ± 0.07 -> 0.36 ± 0.01); 64-83.5% over "
                      "their five settings (agreement: our share in 0.64-0.835)", "secondary",
                      "wm_barrier_reduction_test", 0.64, 0.835),
            Published("CIFAR-10 ViT: test-loss barrier after WM 0.36 ± 0.01 (agreement: ours within 3 sd, 0.33-0.39; "
                      "a different dataset at ci)", "secondary", "wm_barrier_test", 0.33, 0.39),
            Published("CIFAR-10 ViT: naive (vanilla averaging) test-loss barrier 1.69 ± 0.07 (agreement: ours within "
                      "3 sd, 1.48-1.90; a different dataset at ci)", "secondary", "naive_barrier_test", 1.48, 1.90),
            Published("MLP: the barrier after WM near zero (Git Re-Basin's MNIST MLP, ainsworth2023-wm-barrier; "
                      "agreement: ours <= 0.05 nats)", "secondary", "mlp_wm_barrier_test", -math.inf, LMC_BARRIER),
        ),
    ),
]
