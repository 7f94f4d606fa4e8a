"""Every scale's settings in one place.

smoke: seconds; exercises the whole pipeline (tiny models, few epochs).
ci:    the default; minutes on 2 CPU cores: the papers' MLP (3 x 512, and 3 x 128) on real
       MNIST digits and a LayerNorm ResNet20 (the normalisation Git Re-Basin uses for ResNets)
       on scikit-learn's 8x8 digits.
paper: the papers' protocol sizes (widths, epochs, seeds), meant for a GPU.

Every setting that depends on the scale lives here, and so do the measurement protocols'
fixed numbers (fractions, thresholds, sample counts), so that one file says what a run does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import math

import numpy as np

from .datasets import INPUT_SHAPES, pca_parts
from .errors import LmcClaimsError, unknown_name
from .names import TAG
from .recipes import GIT_REBASIN_RECIPE, ITO_RECIPE, Recipe, SteRecipe

# -- measurement protocols: fixed numbers shared by every scale (sources in each comment) ------

# ito2024: subspace overlaps O_k at these fractions k / rank; "large singular values" are the
# top 10% of the rank (ours); Ito et al.'s R at the thresholds gamma its Figure 2 shows.
K_FRACTIONS = (0.02, 0.05, 0.1, 0.25, 0.5)
TOP_FRACTION = 0.1
ITO_R_GAMMAS = (0.0, 0.3)
# "most of the spectrum": singular values holding 90% of sum s_i^2 (ours); ito2024-width's
# dominant share and the Ferbach family's energy rank.
ENERGY = 0.9
# "near zero" barrier, the project's reading in ainsworth2023-wm-barrier (nats); used for the
# two-layer family's width_to_lmc data only.
LMC_BARRIER = 0.05
# csiszarik2023-robustness: fractions of every permutation's matched pairs a perturbation breaks.
FRACTIONS = (0.0, 0.1, 0.25, 0.5, 1.0)
# Git Re-Basin's STE at ci: a step budget instead of 250 epochs (1,000 steps of batch 1,000 on
# 4,000 examples), read off a measured convergence curve by the rule benchmarks/ste_convergence.py
# states (the first step whose best batch loss is within 1% of its fall over the full 1,000 steps):
# step 463 on the ci MLP 3 x 512, seeds 0 and 1 (benchmarks/RESULTS.md), rounded up to a whole
# epoch of 4 steps. Every run stores its curve (`ste_loss_curve`). Supporting data only: no verdict
# rests on this recipe.
STE_GR_CI_STEPS = 464
# ferbach2024: the two-layer family, trained by SGD (the paper's mean-field setting).
TWO_LAYER_ARCH = "mlp-d1"
TWO_LAYER_OPTIMIZER = "sgd"
# theus2025: the MLP shown beside a transformer is Git Re-Basin's 3 x 512 (the width whose barrier
# WM removes, ainsworth2023-wm-barrier), or the scale's widest MLP where it has no 512. Each scale
# lists its MLP run in extra_runs too, so that it is there when --claims-arch selects a transformer alone.
REFERENCE_MLP_ARCH = "mlp"
REFERENCE_MLP_WIDTH = 512


@dataclass(frozen=True)
class Run:
    """One architecture on one dataset at a scale, with its training recipe."""

    arch: str
    dataset: str
    widths: tuple[int, ...]  # hidden units (MLP) or width multipliers (conv nets)
    recipe: Recipe
    n_test: int | None = None
    n_eval_train: int | None = None  # training examples used for train-split curves (and BN statistics)
    merge_sizes: tuple[int, ...] = (3, 4, 5)


@dataclass(frozen=True)
class Scale:
    name: str
    runs: tuple[Run, ...]
    custom: Run  # template for architectures given with --claims-arch
    # n0: the independent samples (disjoint model pairs, each with a third model of its own) every
    # claim test starts with; `sample_pairs` says which models they are.
    n_pairs: int
    n_random: int  # random permutations per pair (baseline for alignment / distance)
    # STE under Ito et al.'s recipe (decides their claims) and under Git Re-Basin's Algorithm 2
    # (supporting data; its step budget is the scale's, from a measured convergence curve).
    ste: SteRecipe
    ste_gr: SteRecipe
    # Coefficient vectors drawn per scheme (and per broken fraction) and pair by the
    # csiszarik2023 claims, each applied to the aligned and to the unaligned pair.
    combination_samples: int
    # Runs used only by claim families that choose their own settings (e.g. two-layer nets
    # across input dimensions); the `setting`-parametrized claims never see them.
    extra_runs: tuple[Run, ...] = ()
    # Architectures (base names; `mlp` covers mlp-dN) Git Re-Basin's STE recipe runs on; None: all.
    ste_gr_archs: tuple[str, ...] | None = None
    # Sequential sample sizes: the samples a claim test has at each look while it is undecided (the
    # first is n_pairs), inside its paper's regime and beyond it; () = one look at n_pairs.
    # judging.alpha_per_look keeps the error rate over all the looks.
    looks_in_regime: tuple[int, ...] = ()
    looks_beyond: tuple[int, ...] = ()
    # The first model seed (--claims-seeds): another start trains and judges a fresh sample.
    seed_start: int = 0

    def __post_init__(self):
        for looks in (self.looks_in_regime, self.looks_beyond):
            if looks and (looks[0] != self.n_pairs or list(looks) != sorted(set(looks))):
                raise ValueError(f"scale {self.name!r}: looks {looks} must rise from n_pairs = {self.n_pairs}")

    def looks(self, in_regime: bool) -> tuple[int, ...]:
        return (self.looks_in_regime if in_regime else self.looks_beyond) or (self.n_pairs,)

    @property
    def n_max(self) -> int:
        return max(self.looks(True) + self.looks(False))

    # Sample i is the pair (a, b) and its own third model c. The first n_pairs samples keep the
    # layout every run has had: pairs (0, 1), (2, 3), ... then the third models; a later sample i
    # takes the seeds 3i, 3i + 1, 3i + 2, beyond all of those. Every seed is offset by seed_start.
    def pair_at(self, i: int) -> tuple[int, int]:
        base = self.seed_start + (2 * i if i < self.n_pairs else 3 * i)
        return (base, base + 1)

    def third_at(self, i: int) -> int:
        return self.seed_start + (2 * self.n_pairs + i if i < self.n_pairs else 3 * i + 2)

    def sample_pairs(self, n: int | None = None) -> list[tuple[int, int]]:
        return [self.pair_at(i) for i in range(self.n_pairs if n is None else n)]

    def index_of(self, pair: tuple[int, int]) -> int:
        offset = pair[0] - self.seed_start
        i = offset // 2 if offset < 2 * self.n_pairs else offset // 3
        if self.pair_at(i) != tuple(pair):
            raise ValueError(f"{pair} is not a sample pair of scale {self.name!r}")
        return i

    def thirds(self, pairs) -> list[int]:
        """Each pair's own third model (Ito et al.'s triples, the transitivity claim's common model)."""
        return [self.third_at(self.index_of(p)) for p in pairs]

    def runs_ste_gr(self, arch: str) -> bool:
        if self.ste_gr_archs is None:
            return True
        base = arch.split(TAG, 1)[0]
        return any(base == a or base.startswith(f"{a}-d") for a in self.ste_gr_archs)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """The first look's samples."""
        return self.sample_pairs()

    def run(self, arch: str, dataset: str) -> Run:
        for r in self.runs + self.extra_runs:
            if (r.arch, r.dataset) == (arch, dataset):
                return r
        raise LmcClaimsError(f"Scale {self.name!r} has no run of {arch!r} on {dataset!r}.",
                             "pick an architecture and dataset from `lmc-claims list`.")

    def select(self, archs: list[str] | None = None, datasets: list[str] | None = None) -> "Scale":
        """The scale restricted to / extended with the given architectures and datasets."""
        runs = list(self.runs)
        if archs:
            by_arch = {r.arch: r for r in runs}
            runs = [r for r in runs if r.arch in archs] + [
                replace(self.custom, arch=a) for a in archs if a not in by_arch
            ]
        if datasets:
            runs = [replace(r, dataset=d) for r in {r.arch: r for r in runs}.values() for d in datasets]
        return replace(self, runs=tuple(runs))


# Ferbach et al.'s Figure 2 (PUBLISHED.md [code: OT_LMC notebook]): MLP 3x512 ReLU, SGD with
# momentum 0.9, warm-up (from 1e-6 over 10 steps) then cosine, batch 500, 6 learning rates
# log-spaced from 1e-4 to 1e-1. Runs are named `mlp@fig2-lr<lr>` (the registry builds `mlp`).
FIGURE2_TAG = "fig2"
FIGURE2_LRS = tuple(float(f"{lr:.3g}") for lr in np.logspace(-4, -1, 6))


def figure2_runs(dataset: str, widths: tuple[int, ...], lrs=FIGURE2_LRS, epochs: int = 50, n_train=None, n_test=None,
                 n_eval_train=None) -> tuple[Run, ...]:
    return tuple(Run(f"mlp{TAG}{FIGURE2_TAG}-lr{lr:g}", dataset, widths,
                     recipe=Recipe(epochs=epochs, batch_size=500, lr=lr, optimizer="sgd", momentum=0.9, warmup_steps=10,
                                   n_train=n_train),
                     n_test=n_test, n_eval_train=n_eval_train) for lr in lrs)


# The scales' MLP runs on MNIST digits (each also the theus2025 reference MLP's run).
SMOKE_MLP = Run("mlp", "mnist5k", widths=(16, 32), recipe=Recipe(epochs=3, n_train=1000), n_test=500, merge_sizes=(3,))
CI_MLP = Run("mlp", "mnist5k", widths=(128, 512), recipe=Recipe(epochs=20))
# The paper scale trains each architecture as the paper whose claims it serves does; where two papers
# train the same one differently both runs exist, named "<arch>@<protocol>", and each claim declares
# the protocol it uses (`Claim.protocol`; `PROTOCOLS`). Recipes carry their PUBLISHED.md source.
PROTOCOLS = ("ito", "gr")  # Ito et al.'s sibling code (e5-a/STE-MM); Git Re-Basin's code (samuela/git-re-basin)
ITO_MLP = Recipe(epochs=5, batch_size=500, lr=1e-3, source="Ito et al. sibling code: Adam 1e-3, batch 500, 5 epochs "
                 "[code: e5-a/STE-MM scripts/run_train.sh]")
GR_MLP = Recipe(epochs=100, batch_size=500, lr=1e-3, source="Git Re-Basin: Adam 1e-3, batch 500, 100 epochs "
                "[code: src/mnist_mlp_train.py]")
ITO_CIFAR = Recipe(epochs=100, batch_size=500, lr=0.4, optimizer="sgd", momentum=0.9, weight_decay=5e-4,
                   augment="crop4-flip", source="Ito et al. sibling code: SGD lr 0.4, momentum 0.9, weight decay 5e-4, "
                   "batch 500, 100 epochs, random crop and flip [code: e5-a/STE-MM scripts/run_train.sh]")
# Git Re-Basin's ResNet20 (LayerNorm) recipe is not in PUBLISHED.md: ours, Adam 1e-3, batch 128, 100 epochs,
# and no augmentation (augmentation is off unless a published recipe names it).
GR_RESNET_LN = Recipe(epochs=100, batch_size=128, lr=1e-3,
                      source="ours: Git Re-Basin's ResNet20 recipe is not in PUBLISHED.md (widths x1-x32 and LayerNorm "
                      "are [code: src/resnet20.py])")
PAPER_MLP = Run("mlp@gr", "mnist", widths=(512,), recipe=GR_MLP, n_eval_train=10000)

SCALES: dict[str, Scale] = {
    "smoke": Scale(
        name="smoke",
        runs=(SMOKE_MLP,),
        custom=Run("custom", "digits", widths=(1, 2), recipe=Recipe(epochs=2, batch_size=64), n_eval_train=200,
                   merge_sizes=(3,)),
        n_pairs=3, n_random=2,
        looks_in_regime=(3, 4),  # exercises a second look in seconds
        ste=replace(ITO_RECIPE, epochs=1),
        ste_gr=replace(GIT_REBASIN_RECIPE, max_steps=4),
        ste_gr_archs=("mlp",),  # as at ci
        combination_samples=2,
        # Ferbach et al. 2024: two-layer nets trained by plain SGD, on MNIST and its projections
        # onto k principal components (input dimension k), across widths.
        extra_runs=tuple(Run("mlp-d1", d, widths=(8, 16, 32, 64), recipe=Recipe(epochs=2, lr=0.1, n_train=1000, optimizer="sgd"),
                             n_test=500, n_eval_train=250) for d in ("mnist5k", "mnist5k-pca8", "mnist5k-pca32"))
        + figure2_runs("mnist5k", (32,), lrs=(1e-3, 1e-2, 1e-1), epochs=2, n_train=1000, n_test=500, n_eval_train=250)
        + (SMOKE_MLP,),
    ),
    "ci": Scale(
        name="ci",
        runs=(
            CI_MLP,
            # 8x8 digits keep the conv net within the CPU budget (28x28 maps cost ~12x more). Two
            # widths, so that Git Re-Basin's width claim (ResNet20 across width multipliers) has a
            # setting in its regime; its zero barrier (32x) needs the paper scale.
            Run("resnet20ln", "digits", widths=(1, 2), recipe=Recipe(epochs=10, batch_size=64, lr=2e-3), n_eval_train=400,
                merge_sizes=(3,)),
            # A ViT on the MLP's digits: 2 blocks, width 2 = 2 heads of 32 (dim 64, MLP 128), 16 tokens of 7x7
            # patches; ~72k parameters, about 10 s per model on one core (92-93% test accuracy in a trial run).
            # Far smaller than Theus et al.'s (6 blocks, dim 256): beyond theus2025's regime. Train-split
            # curves on 1,000 of the 4,000 training digits: a ViT forward costs ~5x the MLP's on a CPU.
            Run("vit", "mnist5k", widths=(2,), recipe=Recipe(epochs=20, lr=3e-3), n_eval_train=1000),
        ),
        custom=Run("custom", "digits", widths=(1, 2), recipe=Recipe(epochs=10, batch_size=64, lr=2e-3), n_eval_train=400,
                   merge_sizes=(3,)),
        n_pairs=3, n_random=5,
        # Inside a paper's regime an undecided test looks again at 6 and 10 samples (issue: n_max >= 10);
        # beyond it, one look at 3 keeps the default run within its time budget.
        looks_in_regime=(3, 6, 10),
        ste=ITO_RECIPE,
        ste_gr=replace(GIT_REBASIN_RECIPE, max_steps=STE_GR_CI_STEPS),
        # Git Re-Basin publishes its STE recipe for the MNIST MLP only (PUBLISHED.md [code:
        # src/mnist_mlp_ste2.py]); on a CPU its 464 steps of batch 1,000 cost a ResNet20 x2 on digits
        # 2.5 min a pair. It is supporting data, so at ci it runs where it is published; the paper
        # scale runs it everywhere.
        ste_gr_archs=("mlp",),
        # Kept small at ci: the family's share of the default run is about two minutes on 2 CPU cores.
        combination_samples=8,
        extra_runs=tuple(Run("mlp-d1", d, widths=(16, 32, 64, 128, 256, 512), recipe=Recipe(epochs=10, lr=0.1, optimizer="sgd"),
                             n_eval_train=1000)
                         for d in ("mnist5k", *(f"mnist5k-pca{k}" for k in (8, 16, 32, 64, 128))))
        # Figure 2's protocol with fewer epochs (20 of 50) and the scale's 3 repetitions (of 4).
        + figure2_runs("mnist5k", (512,), epochs=20, n_eval_train=1000)
        + (CI_MLP,),
    ),
    "paper": Scale(
        name="paper",
        # Ito et al.: MLP (3 x 512) on MNIST and Fashion-MNIST, VGG11 and ResNet20 with width
        # multipliers on CIFAR-10; Git Re-Basin sweeps ResNet20 widths x1..x16 (LayerNorm).
        runs=(
            # Ito et al.'s claims: their sibling code's recipes, at widths that reach their regime (VGG11 x4, ResNet20 x16).
            Run("mlp@ito", "mnist", widths=(128, 256, 512, 1024, 2048), recipe=ITO_MLP, n_eval_train=10000),
            Run("mlp@ito", "fashion_mnist", widths=(512,), recipe=ITO_MLP, n_eval_train=10000),
            Run("vgg11@ito", "cifar10", widths=(1, 2, 4), recipe=ITO_CIFAR, n_eval_train=10000),
            Run("resnet20@ito", "cifar10", widths=(1, 2, 4, 8, 16), recipe=ITO_CIFAR, n_eval_train=10000),
            # Git Re-Basin's claims: its MNIST MLP recipe, and its ResNet20 (LayerNorm) sweep up to x32 (Fig. 4).
            PAPER_MLP,
            Run("resnet20ln@gr", "cifar10", widths=(1, 2, 4, 8, 16, 32), recipe=GR_RESNET_LN, n_eval_train=10000),
            # Theus et al. 2025's ViT (PUBLISHED.md): 6 blocks, 8 heads of 32 (dim 256), MLP 512, AdamW, 150 epochs
            # on CIFAR-10. Their learning rate, batch, weight decay and augmentation are not in PUBLISHED.md: ours
            # are AdamW's defaults (lr 1e-3, weight decay 0.01), batch 128, no augmentation.
            Run("vit-d6", "cifar10", widths=(8,), recipe=Recipe(
                epochs=150, batch_size=128, optimizer="adamw", weight_decay=0.01,
                source="Theus et al.: AdamW, 150 epochs [secondary]; lr, weight decay and batch ours (not published)"),
                n_eval_train=10000),
        ),
        custom=Run("custom", "mnist", widths=(1, 2, 4), recipe=Recipe(epochs=30), n_eval_train=10000),
        n_pairs=5, n_random=5,
        looks_in_regime=(5, 10, 20),
        ste=ITO_RECIPE,
        ste_gr=GIT_REBASIN_RECIPE,
        combination_samples=32,
        extra_runs=tuple(Run("mlp-d1", d, widths=(64, 128, 256, 512, 1024, 2048, 4096),
                             recipe=Recipe(epochs=30, lr=0.1, optimizer="sgd"), n_eval_train=10000)
                         for d in ("mnist", *(f"mnist-pca{k}" for k in (8, 16, 32, 64, 128, 256))))
        + figure2_runs("mnist", (512,), epochs=50, n_eval_train=10000)
        + (PAPER_MLP,),
    ),
}


def protocol_of(arch: str) -> str:
    """The protocol a run's name declares ("mlp@ito" -> "ito"), "" for a run every claim uses."""
    tag = arch.split(TAG, 1)[1] if TAG in arch else ""
    return tag if tag in PROTOCOLS else ""


def dry_run(scale: Scale) -> Scale:
    """The scale's every setting at its smallest widths, one epoch on 64 training and 64 test
    examples, three samples and one look: what the test suite runs to show a scale gets past its
    first minute on a CPU (the judged values mean nothing)."""
    def small(r: Run) -> Run:
        # Two widths (three for the two-layer family, whose slope needs three points): every claim across
        # widths still has its fit.
        keep = 3 if r.arch.startswith(TWO_LAYER_ARCH) else 2
        return replace(r, widths=tuple(sorted(r.widths)[:keep]), recipe=replace(r.recipe, epochs=1, n_train=64),
                       n_test=64, n_eval_train=64)

    return replace(scale, name=f"{scale.name}-dry", runs=tuple(small(r) for r in scale.runs),
                   extra_runs=tuple(small(r) for r in scale.extra_runs), custom=small(scale.custom), n_pairs=3,
                   looks_in_regime=(), looks_beyond=(), ste=replace(scale.ste, epochs=1), combination_samples=2,
                   ste_gr=replace(scale.ste_gr, max_steps=2))


# The paper scale's dry run: `pytest -m claims --claims-scale=paper-dry` (tests/test_paper_dry_run.py).
SCALES["paper-dry"] = dry_run(SCALES["paper"])


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise unknown_name("scale", name, SCALES)
    return SCALES[name]


# -- the two-layer family of the ferbach2024 claims ------------------------------------------

def input_dim(dataset: str) -> int:
    return math.prod(INPUT_SHAPES[dataset])


def two_layer_family(scale: Scale) -> tuple[Run, tuple[Run, ...]]:
    """The scale's two-layer SGD runs: the base run (a dataset as shipped) and the settings
    (the base and its "<base>-pca<k>" projections), lowest input dimension first."""
    runs = [r for r in scale.extra_runs if r.arch == TWO_LAYER_ARCH and r.recipe.optimizer == TWO_LAYER_OPTIMIZER]
    bases = [r for r in runs if pca_parts(r.dataset) is None]
    if len(bases) != 1:
        raise LmcClaimsError(
            f"Scale {scale.name!r} has {len(bases)} two-layer SGD runs on an unprojected dataset; the "
            "Ferbach et al. claims need exactly one.",
            f"give the scale one extra Run({TWO_LAYER_ARCH!r}, DATASET, recipe=Recipe(optimizer="
            f"{TWO_LAYER_OPTIMIZER!r})) plus its DATASET-pcaK runs.",
        )
    base = bases[0]
    settings = [r for r in runs if r is base or (pca_parts(r.dataset) or ("",))[0] == base.dataset]
    return base, tuple(sorted(settings, key=lambda r: input_dim(r.dataset)))


def figure2_family(scale: Scale) -> tuple[Run, ...]:
    """The scale's Figure 2 runs (`mlp@fig2-lr<lr>`), lowest learning rate first."""
    runs = [r for r in scale.extra_runs if TAG in r.arch and r.arch.split(TAG, 1)[1].startswith(FIGURE2_TAG + "-")]
    if len(runs) < 3:
        raise LmcClaimsError(f"Scale {scale.name!r} has {len(runs)} Figure 2 runs; a rank correlation across learning "
                             "rates needs at least 3.", "add runs with scales.figure2_runs(...) to its extra_runs.")
    return tuple(sorted(runs, key=lambda r: r.recipe.lr))


def reference_mlp(scale: Scale) -> tuple[str, str, int]:
    """The setting (arch, dataset, width) of the MLP theus2025 shows beside a transformer."""
    # extra_runs first: --claims-dataset moves the scale's runs to other data, never its extra runs.
    # The MLP itself, or the paper scale's MLP of a protocol ("mlp@gr"), never another run's variant (Figure 2's).
    runs = [r for r in scale.extra_runs + scale.runs
            if r.arch == REFERENCE_MLP_ARCH or (r.arch.split(TAG, 1)[0] == REFERENCE_MLP_ARCH and protocol_of(r.arch))]
    if not runs:
        raise LmcClaimsError(f"Scale {scale.name!r} has no {REFERENCE_MLP_ARCH!r} run for theus2025's reference MLP.",
                             f"add a Run({REFERENCE_MLP_ARCH!r}, DATASET, ...) to its extra_runs.")
    widths = runs[0].widths
    return runs[0].arch, runs[0].dataset, REFERENCE_MLP_WIDTH if REFERENCE_MLP_WIDTH in widths else max(widths)
