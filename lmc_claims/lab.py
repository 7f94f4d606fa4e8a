"""The session's workbench: data, trained models and permutation searches for claim tests.

Everything expensive goes through the content-addressed zoo (so a second run reuses it)
and is memoised in-process (so several claims share one model, matching or measurement).
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn

from .data import TensorData, load_dataset
from .matching.activation import activation_matching
from .matching.ste import ste_matching
from .matching.weight import weight_matching
from .metrics.interpolation import has_batchnorm
from .models.registry import get_architecture
from .permutation.apply import Params, Perms, apply_permutation
from .permutation.derive import derive_spec
from .permutation.spec import PermutationSpec
from .scales import Run, Scale
from .training import TrainConfig, concurrent_safe, concurrently, make_model, train
from .zoo import Zoo


@dataclass
class Progress:
    """One line per model trained or permutation searched; quiet under -q."""

    quiet: bool = False
    write: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            with self._lock:  # models trained at once report from their own threads
                self.write(f"[lmc-claims] {msg}")


class Lab:
    def __init__(self, scale: Scale, device: torch.device, zoo: Zoo, progress: Progress | None = None):
        self.scale = scale
        self.device = device
        self.zoo = zoo
        self.progress = progress or Progress(quiet=True)
        self._memo: dict = {}

    def memo(self, key: tuple, compute: Callable):
        """Compute once per session (measurements shared by several claims)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def run(self, arch: str, dataset: str) -> Run:
        return self.scale.run(arch, dataset)

    # -- data ---------------------------------------------------------------
    def data(self, arch: str, dataset: str) -> TensorData:
        run = self.run(arch, dataset)

        def load():
            sub = load_dataset(dataset).subset(run.n_train, run.n_test)
            return TensorData(sub.name, *(t.to(self.device) for t in (sub.x_train, sub.y_train, sub.x_test, sub.y_test)),
                              sub.num_classes)

        return self.memo(("data", dataset, run.n_train, run.n_test), load)

    def eval_sets(self, arch: str, dataset: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The train and test splits used for curves and barriers."""
        d, n = self.data(arch, dataset), self.run(arch, dataset).n_eval_train
        return {"train": (d.x_train[:n], d.y_train[:n]), "test": (d.x_test, d.y_test)}

    def bn_data(self, arch: str, dataset: str, width: int) -> torch.Tensor | None:
        """Training inputs for resetting BatchNorm statistics, or None for nets without BN."""
        if not has_batchnorm(self.template(arch, dataset, width)):
            return None
        return self.eval_sets(arch, dataset)["train"][0]

    # -- models -------------------------------------------------------------
    def train_config(self, arch: str, dataset: str, width: int, seed: int) -> TrainConfig:
        run = self.run(arch, dataset)
        return TrainConfig(arch=arch, dataset=dataset, width=width, seed=seed, epochs=run.epochs,
                           batch_size=run.batch_size, lr=run.lr, n_train=run.n_train, optimizer=run.optimizer)

    def template(self, arch: str, dataset: str, width: int) -> nn.Module:
        return self.memo(("template", arch, dataset, width), lambda: make_model(
            self.train_config(arch, dataset, width, 0), self.data(arch, dataset)).to(self.device))

    def spec(self, arch: str, dataset: str, width: int) -> PermutationSpec:
        def build():
            model = self.template(arch, dataset, width)
            hand = get_architecture(arch).spec
            return hand(model) if hand is not None else derive_spec(model, self.data(arch, dataset).x_train[:2])

        return self.memo(("spec", arch, dataset, width), build)

    def model(self, arch: str, dataset: str, width: int, seed: int) -> Params:
        key = ("model", arch, dataset, width, seed)
        if key not in self._memo:
            # The first model asked for of a setting brings its pair partners along: the claims
            # use them all, and models trained together share the CPU's cores.
            paired = range(2 * self.scale.n_pairs)
            self.models(arch, dataset, width, list(paired) if seed in paired else [seed])
        return self._memo[key]

    def models(self, arch: str, dataset: str, width: int, seeds: list[int]) -> list[Params]:
        """The trained models of these seeds, from the cache or trained (several at once on a CPU)."""
        missing = [s for s in seeds if ("model", arch, dataset, width, s) not in self._memo]
        if missing:
            data = self.data(arch, dataset)
            safe = concurrent_safe(self.template(arch, dataset, width))
            jobs = [functools.partial(self._fetch_model, self.train_config(arch, dataset, width, s), data) for s in missing]
            for s, sd in zip(missing, concurrently(jobs, self.device, None if safe else 1)):
                self._memo[("model", arch, dataset, width, s)] = {k: v.to(self.device) for k, v in sd.items()}
        return [self._memo[("model", arch, dataset, width, s)] for s in seeds]

    def _fetch_model(self, cfg: TrainConfig, data: TensorData) -> Params:
        def build():
            t0 = time.perf_counter()
            last = {}
            sd = train(cfg, data, self.device, progress=lambda c, epoch, loss: last.update(epoch=epoch, loss=loss))
            self.progress(f"trained {cfg.label()}: epoch {last['epoch']}/{cfg.epochs}, "
                          f"loss {last['loss']:.4f}, {time.perf_counter() - t0:.1f} s")
            return sd

        return self.zoo.fetch("model", {"train": cfg.as_dict(), "data": data.fingerprint()}, self.device.type, build)[0]

    # -- permutation searches -------------------------------------------------
    def match(self, method: str, arch: str, dataset: str, width: int, seed_a: int, seed_b: int) -> Perms:
        """Permutation of model seed_b onto model seed_a found by `method`: "wm" (weight
        matching), "am" (activation matching) or "ste" (straight-through estimator)."""
        if method not in ("wm", "am", "ste"):
            raise ValueError(f"unknown matching method {method!r}")

        def fetch():
            a = self.model(arch, dataset, width, seed_a)
            b = self.model(arch, dataset, width, seed_b)
            spec = self.spec(arch, dataset, width)
            data = self.data(arch, dataset)
            cfg = {
                "method": method,
                "a": self.train_config(arch, dataset, width, seed_a).as_dict(),
                "b": self.train_config(arch, dataset, width, seed_b).as_dict(),
                "data": data.fingerprint(),
                "ste": asdict(self.scale.ste) if method == "ste" else None,
                "am_examples": self.run(arch, dataset).n_eval_train if method == "am" else None,
            }

            def build():
                t0 = time.perf_counter()
                if method == "wm":
                    res = weight_matching(spec, a, b, seed=seed_a * 1000 + seed_b)
                elif method == "am":
                    x = self.eval_sets(arch, dataset)["train"][0]
                    res = activation_matching(spec, self.template(arch, dataset, width), a, b, x)
                else:
                    res = ste_matching(spec, self.template(arch, dataset, width), a, b,
                                       data.x_train, data.y_train, self.scale.ste)
                self.progress(f"{method} matching {arch}-w{width}-{dataset} seeds {seed_b}->{seed_a}: "
                              f"{time.perf_counter() - t0:.1f} s")
                return {p: v.cpu() for p, v in res.perms.items()}

            perms, _ = self.zoo.fetch("match", cfg, self.device.type, build)
            return {p: v.to(self.device) for p, v in perms.items()}

        return self.memo(("match", method, arch, dataset, width, seed_a, seed_b), fetch)

    def permuted(self, method: str, arch: str, dataset: str, width: int, seed_a: int, seed_b: int) -> Params:
        b = self.model(arch, dataset, width, seed_b)
        if method == "naive":
            return b
        return apply_permutation(self.spec(arch, dataset, width), self.match(method, arch, dataset, width, seed_a, seed_b), b)
