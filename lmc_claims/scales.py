"""Every scale's settings in one place.

smoke: seconds; exercises the whole pipeline (tiny models, few epochs).
ci:    the default; minutes on 2 CPU cores: the papers' MLP (3 x 512, and 3 x 128) on real
       MNIST digits and a LayerNorm ResNet20 (the normalisation Git Re-Basin uses for ResNets)
       on scikit-learn's 8x8 digits.
paper: the papers' protocol sizes (widths, epochs, seeds), meant for a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import LmcClaimsError, unknown_name
from .matching.ste import SteConfig


@dataclass(frozen=True)
class Run:
    """One architecture on one dataset at a scale."""

    arch: str
    dataset: str
    widths: tuple[int, ...]  # hidden units (MLP) or width multipliers (conv nets)
    epochs: int
    batch_size: int = 128
    lr: float = 1e-3  # Adam
    n_train: int | None = None  # first n training examples; None: all
    n_test: int | None = None
    n_eval_train: int | None = None  # training examples used for train-split curves (and BN statistics)
    merge_sizes: tuple[int, ...] = (3, 4, 5)
    optimizer: str = "adam"  # or "sgd" (plain SGD, lr above), for claims stated for SGD-trained nets


@dataclass(frozen=True)
class Scale:
    name: str
    runs: tuple[Run, ...]
    custom: Run  # template for architectures given with --claims-arch
    n_pairs: int  # disjoint model pairs (0,1), (2,3), ...: independent samples for verdicts
    merge_sets: int  # model sets per merge size
    n_random: int  # random permutations per pair (baseline for alignment / distance)
    ste: SteConfig
    # Runs used only by claim families that choose their own settings (e.g. two-layer nets
    # across input dimensions); the `setting`-parametrized claims never see them.
    extra_runs: tuple[Run, ...] = ()

    @property
    def pairs(self) -> list[tuple[int, int]]:
        return [(2 * i, 2 * i + 1) for i in range(self.n_pairs)]

    def n_models(self, run: Run) -> int:
        return max(2 * self.n_pairs, max(run.merge_sizes, default=0) + self.merge_sets - 1)

    def merge_set(self, run: Run, n: int, index: int) -> list[int]:
        """Model seeds of the index-th set of n models (the first is the reference)."""
        return [(index + j) % self.n_models(run) for j in range(n)]

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


SCALES: dict[str, Scale] = {
    "smoke": Scale(
        name="smoke",
        runs=(Run("mlp", "mnist5k", widths=(16, 32), epochs=3, n_train=1000, n_test=500, merge_sizes=(3,)),),
        custom=Run("custom", "digits", widths=(1, 2), epochs=2, batch_size=64, n_eval_train=200, merge_sizes=(3,)),
        n_pairs=3, merge_sets=3, n_random=2,
        ste=SteConfig(epochs=1, batch_size=250),
        # Ferbach et al. 2024: two-layer nets trained by plain SGD, on MNIST and its projections
        # onto k principal components (input dimension k), across widths.
        extra_runs=tuple(Run("mlp-d1", d, widths=(8, 16, 32, 64), epochs=2, lr=0.1, n_train=1000, n_test=500,
                             n_eval_train=250, optimizer="sgd") for d in ("mnist5k", "mnist5k-pca8", "mnist5k-pca32"))
        # ... and on MNIST at other SGD learning rates (the paper's Figure 2 varies the learning rate).
        + tuple(Run(f"mlp-d1@lr{lr:g}", "mnist5k", widths=(8, 16, 32, 64), epochs=2, lr=lr, n_train=1000, n_test=500,
                    n_eval_train=250, optimizer="sgd") for lr in (0.01, 0.03)),
    ),
    "ci": Scale(
        name="ci",
        runs=(
            Run("mlp", "mnist5k", widths=(128, 512), epochs=20),
            # 8x8 digits keep the conv net within the CPU budget (28x28 maps cost ~12x more).
            Run("resnet20ln", "digits", widths=(1,), epochs=10, batch_size=64, lr=2e-3, n_eval_train=400, merge_sizes=(3,)),
        ),
        custom=Run("custom", "digits", widths=(1, 2), epochs=10, batch_size=64, lr=2e-3, n_eval_train=400, merge_sizes=(3,)),
        n_pairs=3, merge_sets=3, n_random=5,
        ste=SteConfig(epochs=2, batch_size=256),
        extra_runs=tuple(Run("mlp-d1", d, widths=(16, 32, 64, 128, 256, 512), epochs=10, lr=0.1, n_eval_train=1000,
                             optimizer="sgd")
                         for d in ("mnist5k", *(f"mnist5k-pca{k}" for k in (8, 16, 32, 64, 128))))
        + tuple(Run(f"mlp-d1@lr{lr:g}", "mnist5k", widths=(16, 32, 64, 128, 256, 512), epochs=10, lr=lr,
                    n_eval_train=1000, optimizer="sgd") for lr in (0.003, 0.01, 0.03)),
    ),
    "paper": Scale(
        name="paper",
        # Ito et al.: MLP (3 x 512) on MNIST and Fashion-MNIST, VGG11 and ResNet20 with width
        # multipliers on CIFAR-10; Git Re-Basin sweeps ResNet20 widths x1..x16 (LayerNorm).
        runs=(
            Run("mlp", "mnist", widths=(128, 256, 512, 1024, 2048), epochs=50, batch_size=512, n_eval_train=10000),
            Run("mlp", "fashion_mnist", widths=(512,), epochs=50, batch_size=512, n_eval_train=10000),
            Run("vgg11", "cifar10", widths=(1, 2, 4), epochs=100, batch_size=128, n_eval_train=10000),
            Run("resnet20", "cifar10", widths=(1, 2, 4, 8), epochs=100, batch_size=128, n_eval_train=10000),
            Run("resnet20ln", "cifar10", widths=(1, 2, 4, 8, 16), epochs=100, batch_size=128, n_eval_train=10000),
        ),
        custom=Run("custom", "mnist", widths=(1, 2, 4), epochs=30, n_eval_train=10000),
        n_pairs=5, merge_sets=5, n_random=5,
        ste=SteConfig(epochs=10, batch_size=256),
        extra_runs=tuple(Run("mlp-d1", d, widths=(64, 128, 256, 512, 1024, 2048, 4096), epochs=30, lr=0.1,
                             n_eval_train=10000, optimizer="sgd")
                         for d in ("mnist", *(f"mnist-pca{k}" for k in (8, 16, 32, 64, 128, 256))))
        + tuple(Run(f"mlp-d1@lr{lr:g}", "mnist", widths=(64, 128, 256, 512, 1024, 2048, 4096), epochs=30, lr=lr,
                    n_eval_train=10000, optimizer="sgd") for lr in (0.0001, 0.001, 0.01)),
    ),
}


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise unknown_name("scale", name, SCALES)
    return SCALES[name]
