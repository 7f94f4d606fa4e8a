"""The session's workbench: data, trained models and permutation searches for claim tests.

Everything expensive goes through the content-addressed zoo (so a second run reuses it)
and is memoised in-process (so several claims share one model or matching).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn

from .data import TensorData, load_dataset
from .matching.ste import ste_matching
from .matching.weight import weight_matching
from .models import get_architecture
from .permutation.apply import Params, Perms, apply_permutation
from .permutation.spec import PermutationSpec
from .scales import Scale
from .training import TrainConfig, make_model, train
from .zoo import Zoo


@dataclass
class Progress:
    """One line per model trained or permutation searched; quiet under -q."""

    quiet: bool = False
    write: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            self.write(f"[lmc-claims] {msg}")


class Lab:
    def __init__(self, scale: Scale, device: torch.device, zoo: Zoo, progress: Progress | None = None):
        self.scale = scale
        self.device = device
        self.zoo = zoo
        self.progress = progress or Progress(quiet=True)
        self._memo: dict = {}

    # -- data ---------------------------------------------------------------
    def data(self, dataset: str) -> TensorData:
        key = ("data", dataset)
        if key not in self._memo:
            full = load_dataset(dataset)
            sub = full.subset(self.scale.n_train, self.scale.n_test)
            self._memo[key] = TensorData(sub.name, *(t.to(self.device) for t in
                                         (sub.x_train, sub.y_train, sub.x_test, sub.y_test)), sub.num_classes)
        return self._memo[key]

    # -- models -------------------------------------------------------------
    def train_config(self, arch: str, dataset: str, width: int, seed: int) -> TrainConfig:
        s = self.scale
        return TrainConfig(arch=arch, dataset=dataset, width=width, depth=s.depth, seed=seed,
                           epochs=s.epochs, batch_size=s.batch_size, n_train=s.n_train)

    def template(self, arch: str, dataset: str, width: int) -> nn.Module:
        key = ("template", arch, dataset, width)
        if key not in self._memo:
            self._memo[key] = make_model(self.train_config(arch, dataset, width, 0), self.data(dataset)).to(self.device)
        return self._memo[key]

    def spec(self, arch: str, dataset: str, width: int) -> PermutationSpec:
        return get_architecture(arch).spec(self.template(arch, dataset, width))

    def model(self, arch: str, dataset: str, width: int, seed: int) -> Params:
        key = ("model", arch, dataset, width, seed)
        if key not in self._memo:
            cfg = self.train_config(arch, dataset, width, seed)
            data = self.data(dataset)
            zoo_cfg = {"train": cfg.as_dict(), "data": data.fingerprint()}

            def build():
                t0 = time.perf_counter()
                sd = train(cfg, data, self.device)
                self.progress(f"trained {cfg.label()}: {cfg.epochs} epochs in {time.perf_counter() - t0:.1f} s")
                return sd

            sd, _ = self.zoo.fetch("model", zoo_cfg, self.device.type, build)
            self._memo[key] = {k: v.to(self.device) for k, v in sd.items()}
        return self._memo[key]

    # -- permutation searches -------------------------------------------------
    def match(self, method: str, arch: str, dataset: str, width: int, seed_a: int, seed_b: int) -> Perms:
        """Permutation of model seed_b onto model seed_a found by `method` ("wm" or "ste")."""
        key = ("match", method, arch, dataset, width, seed_a, seed_b)
        if key in self._memo:
            return self._memo[key]
        a = self.model(arch, dataset, width, seed_a)
        b = self.model(arch, dataset, width, seed_b)
        spec = self.spec(arch, dataset, width)
        data = self.data(dataset)
        cfg = {
            "method": method,
            "a": self.train_config(arch, dataset, width, seed_a).as_dict(),
            "b": self.train_config(arch, dataset, width, seed_b).as_dict(),
            "data": data.fingerprint(),
            "ste": asdict(self.scale.ste) if method == "ste" else None,
        }

        def build():
            t0 = time.perf_counter()
            if method == "wm":
                res = weight_matching(spec, a, b, seed=seed_a * 1000 + seed_b)
            elif method == "ste":
                res = ste_matching(spec, self.template(arch, dataset, width), a, b, data.x_train, data.y_train, self.scale.ste)
            else:
                raise ValueError(f"unknown matching method {method!r}")
            label = f"{arch}-w{width}-{dataset} seeds {seed_b}->{seed_a}"
            self.progress(f"{method} matching {label}: {time.perf_counter() - t0:.1f} s")
            return {p: v.cpu() for p, v in res.perms.items()}

        perms, _ = self.zoo.fetch("match", cfg, self.device.type, build)
        self._memo[key] = {p: v.to(self.device) for p, v in perms.items()}
        return self._memo[key]

    def permuted(self, method: str, arch: str, dataset: str, width: int, seed_a: int, seed_b: int) -> Params:
        b = self.model(arch, dataset, width, seed_b)
        if method == "naive":
            return b
        return apply_permutation(self.spec(arch, dataset, width), self.match(method, arch, dataset, width, seed_a, seed_b), b)
