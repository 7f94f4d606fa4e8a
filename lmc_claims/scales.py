"""Every scale's settings in one place.

smoke: seconds; exercises the whole pipeline (tiny models, few epochs).
ci:    the default; minutes on 2 CPU cores; the papers' MLP depth and width 512.
paper: the papers' protocol sizes, meant for a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import unknown_name
from .matching.ste import SteConfig


@dataclass(frozen=True)
class Scale:
    name: str
    datasets: tuple[str, ...]
    archs: tuple[str, ...]
    widths: tuple[int, ...]
    depth: int  # hidden layers of the MLP (the papers use 3)
    epochs: int
    batch_size: int
    n_train: int | None  # None: the whole training split
    n_test: int | None
    n_pairs: int  # disjoint model pairs (0,1), (2,3), ...: independent samples for verdicts
    merge_sizes: tuple[int, ...]  # N models merged at once
    merge_sets: int  # model sets per N
    n_random: int  # random permutations per pair (baseline for alignment)
    ste: SteConfig

    @property
    def n_models(self) -> int:
        return max(2 * self.n_pairs, max(self.merge_sizes, default=0) + self.merge_sets - 1)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        return [(2 * i, 2 * i + 1) for i in range(self.n_pairs)]

    def merge_set(self, n: int, index: int) -> list[int]:
        """Model seeds of the index-th set of n models (the first is the reference)."""
        return [(index + j) % self.n_models for j in range(n)]


SCALES: dict[str, Scale] = {
    "smoke": Scale(
        name="smoke", datasets=("mnist5k",), archs=("mlp",), widths=(32,), depth=2,
        epochs=3, batch_size=128, n_train=1000, n_test=500, n_pairs=3,
        merge_sizes=(3,), merge_sets=3, n_random=2,
        ste=SteConfig(epochs=1, batch_size=250),
    ),
    "ci": Scale(
        name="ci", datasets=("mnist5k",), archs=("mlp",), widths=(128, 512), depth=3,
        epochs=20, batch_size=128, n_train=None, n_test=None, n_pairs=3,
        merge_sizes=(3, 4, 5), merge_sets=3, n_random=5,
        ste=SteConfig(epochs=2, batch_size=256),
    ),
    "paper": Scale(
        name="paper", datasets=("mnist5k",), archs=("mlp",), widths=(128, 256, 512, 1024, 2048), depth=3,
        epochs=50, batch_size=128, n_train=None, n_test=None, n_pairs=5,
        merge_sizes=(3, 4, 5), merge_sets=5, n_random=5,
        ste=SteConfig(epochs=10, batch_size=256),
    ),
}


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise unknown_name("scale", name, SCALES)
    return SCALES[name]
