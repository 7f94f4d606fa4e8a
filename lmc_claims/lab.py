"""The session's workbench: a `Setting` per architecture x dataset x width, with its data, its
trained models and its permutation searches.

Everything expensive goes through the content-addressed zoo (so a second run reuses it)
and is memoised in-process (so several claims share one model, matching or measurement).
Measurements take a `Setting` and the model pairs they use, never loose (arch, dataset,
width, seed) tuples.
"""

from __future__ import annotations

import copy
import functools
import sys
import threading
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence, TypeVar

import torch
from torch import nn

from .data import TensorData, load_dataset
from .executor import LocalExecutor
from .jobs import PERM, TrainJob, merge_job, merge_payload, merge_perms, search_job, search_payload, train_job
from .jobs import train_payload
from .matching.ste import SteRecipe
from .metrics.interpolation import has_batchnorm, model_copy
from .models.registry import permutation_spec
from .permutation.apply import Params, Perms, apply_permutation
from .permutation.spec import PermutationSpec
from .scales import Run, Scale
from .seeds import sub_seed
from .training import TrainConfig, concurrently, make_model
from .zoo import Zoo

T = TypeVar("T")
Pair = tuple[int, int]  # (seed of model A, seed of model B): B is permuted onto A
# Permutation searches ("naive" means B as trained): weight matching, activation matching, and
# the straight-through estimator under Ito et al.'s recipe ("ste", the one their claims are judged
# with) and under Git Re-Basin's Algorithm 2 ("ste-gr", supporting data).
SEARCHES = ("wm", "am", "ste", "ste-gr")
# PERM (from jobs): prefix of the permutations in a search's cache payload; the rest is diagnostics


def _check_method(method: str) -> None:
    if method not in SEARCHES:
        raise ValueError(f"unknown matching method {method!r}; expected one of {SEARCHES}")


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


@dataclass(frozen=True, eq=False)
class Setting:
    """One architecture on one dataset at one width: what every measurement of it needs."""

    lab: "Lab" = field(repr=False)
    arch: str
    dataset: str
    width: int
    run: Run
    data: TensorData = field(repr=False)
    eval_sets: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(repr=False)  # "train", "test" -> (x, y)
    bn_data: torch.Tensor | None = field(repr=False)  # training inputs for BatchNorm statistics, None without BN
    template: nn.Module = field(repr=False)  # the architecture, evaluated with functional_call
    spec: PermutationSpec = field(repr=False)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.arch, self.dataset, self.width)

    @property
    def label(self) -> str:
        return f"{self.arch}-w{self.width}-{self.dataset}"

    @property
    def config(self) -> dict:
        """What a claim test records about the setting it measured."""
        return {"arch": self.arch, "dataset": self.dataset, "width": self.width}

    def memo(self, name: str, *parts, compute: Callable):
        """A measurement of this setting computed once per session (shared by several claims)."""
        return self.lab.memo((name, *self.key, *parts), compute)

    def memoised(self, name: str, *parts) -> bool:
        return self.lab.memoised((name, *self.key, *parts))

    def concurrently(self, jobs: Sequence[Callable[[nn.Module], T]]) -> list[T]:
        """Measurement jobs, each called with its thread's own copy of the template (functional_call
        swaps a module's parameters while it runs). On a CPU as many run at once as there are cores,
        with one intra-op thread each, as models train (`training.concurrently`): a result is then
        the same alone, beside others and on any number of cores. Elsewhere one after another.
        A job gets what it measures as arguments: the searches and models it needs are fetched
        before, in this thread."""
        own = threading.local()

        def call(job):
            if not hasattr(own, "template"):
                own.template = model_copy(self.template)
            return job(own.template)

        return concurrently([functools.partial(call, job) for job in jobs], self.lab.device)

    def train_config(self, seed: int) -> TrainConfig:
        return TrainConfig(arch=self.arch, dataset=self.dataset, width=self.width, seed=seed, recipe=self.run.recipe)

    def model(self, seed: int) -> Params:
        return self.lab.model(self, seed)

    def models(self, seeds: Sequence[int]) -> list[Params]:
        return self.lab.models(self, list(seeds))

    def match(self, method: str, a: int, b: int) -> Perms:
        """Permutation of model b onto model a found by `method` (one of SEARCHES)."""
        return self.lab.search(self, method, a, b)[0]

    def diagnostics(self, method: str, a: int, b: int) -> dict[str, torch.Tensor]:
        """What the search recorded besides its permutation (STE: loss curve, drift, steps)."""
        return self.lab.search(self, method, a, b)[1]

    def prefetch(self, wanted: Sequence[tuple[str, int, int]]) -> None:
        """Build the searches (method, seed_a, seed_b) a measurement is about to use, together:
        on a CPU the STE searches among them then run several at once."""
        self.lab.searches(self, wanted)

    def permuted(self, method: str, a: int, b: int) -> Params:
        """Model b as trained ("naive") or permuted onto model a by `method`."""
        if method == "naive":
            return self.model(b)
        return apply_permutation(self.spec, self.match(method, a, b), self.model(b))


class Lab:
    def __init__(self, scale: Scale, device: torch.device, zoo: Zoo, progress: Progress | None = None,
                 executor=None):
        self.scale = scale
        self.device = device
        self.zoo = zoo
        self.progress = progress or Progress(quiet=True)
        # Where models are trained and searches run: in this process (default) or on a Dask
        # cluster (lmc_claims/executor.py); the zoo stays the one source of truth either way.
        self.executor = executor if executor is not None else LocalExecutor()
        self._memo: dict = {}

    def memoised(self, key: tuple) -> bool:
        return key in self._memo

    def memo(self, key: tuple, compute: Callable):
        """Compute once per session."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def setting(self, arch: str, dataset: str, width: int) -> Setting:
        return self.memo(("setting", arch, dataset, width), lambda: self._setting(arch, dataset, width))

    def settings(self, arch: str, dataset: str, widths: Sequence[int] | None = None) -> list[Setting]:
        """One Setting per width (default: every width of the scale's run), for claims across widths."""
        return [self.setting(arch, dataset, w) for w in widths or self.scale.run(arch, dataset).widths]

    def _setting(self, arch: str, dataset: str, width: int) -> Setting:
        run = self.scale.run(arch, dataset)
        data = self._data(dataset, run)
        n = run.n_eval_train
        eval_sets = {"train": (data.x_train[:n], data.y_train[:n]), "test": (data.x_test, data.y_test)}
        config = TrainConfig(arch=arch, dataset=dataset, width=width, seed=0, recipe=run.recipe)
        template = make_model(config, data).to(self.device)
        spec = permutation_spec(arch, template, data.x_train[:2])
        bn_data = eval_sets["train"][0] if has_batchnorm(template) else None
        return Setting(self, arch, dataset, width, run, data, eval_sets, bn_data, template, spec)

    def _data(self, dataset: str, run: Run) -> TensorData:
        def load():
            sub = load_dataset(dataset).subset(run.recipe.n_train, run.n_test)
            return TensorData(sub.name, *(t.to(self.device) for t in (sub.x_train, sub.y_train, sub.x_test, sub.y_test)),
                              sub.num_classes)

        return self.memo(("data", dataset, run.recipe.n_train, run.n_test), load)

    # -- models -------------------------------------------------------------
    def model(self, setting: Setting, seed: int) -> Params:
        key = ("model", *setting.key, seed)
        if key not in self._memo:
            # The first model asked for of a setting brings its pair partners along: the claims
            # use them all, and models trained together share the CPU's cores.
            paired = range(2 * self.scale.n_pairs)
            self.models(setting, list(paired) if seed in paired else [seed])
        return self._memo[key]

    def models(self, setting: Setting, seeds: list[int]) -> list[Params]:
        """The trained models of these seeds, from the cache or trained (several at once on a CPU)."""
        missing = [s for s in seeds if ("model", *setting.key, s) not in self._memo]
        if missing:
            built = self.executor.models(self, setting, [train_job(setting, s) for s in missing])
            for s, sd in zip(missing, built):
                self._memo[("model", *setting.key, s)] = {k: v.to(self.device) for k, v in sd.items()}
        return [self._memo[("model", *setting.key, s)] for s in seeds]

    def _fetch_model(self, job: TrainJob, data: TensorData) -> Params:
        def build():
            sd, line = train_payload(job.config, data, self.device)
            self.progress(line)
            return sd

        return self.executor.fetch(self, job, build)

    # -- permutation searches -------------------------------------------------
    def search(self, setting: Setting, method: str, seed_a: int, seed_b: int) -> tuple[Perms, dict]:
        """(permutation of model seed_b onto model seed_a, the search's diagnostics)."""
        _check_method(method)
        return self.memo(("search", method, *setting.key, seed_a, seed_b),
                         lambda: self._fetch_search(setting, method, seed_a, seed_b))

    def searches(self, setting: Setting, wanted: Sequence[tuple[str, int, int]]) -> None:
        """Build these searches (method, seed_a, seed_b) unless memoised, through the executor, which
        may run several at once."""
        for method, _, _ in wanted:
            _check_method(method)
        todo = [w for w in dict.fromkeys(wanted) if ("search", w[0], *setting.key, w[1], w[2]) not in self._memo]
        if not todo:
            return
        self.models(setting, sorted({seed for _, a, b in todo for seed in (a, b)}))
        for (method, a, b), found in zip(todo, self.executor.searches(self, setting, todo)):
            self._memo[("search", method, *setting.key, a, b)] = found

    def merge_many(self, setting: Setting, seeds: Sequence[int]) -> list[Perms]:
        """Git Re-Basin's MergeMany (Algorithm 3) of these models: each one's permutation. A
        permutation search like the others, so it is cached in the zoo and built through the
        executor (a measurement that uses it is still made afresh)."""
        seeds = tuple(seeds)

        def compute():
            job = merge_job(setting, seeds)

            def build():
                payload, line = merge_payload(setting, job, self.models(setting, list(seeds)))
                self.progress(line)
                return payload

            return merge_perms(self.executor.fetch(self, job, build), len(seeds), self.device)

        return self.memo(("mergemany", *setting.key, seeds), compute)

    def ste_recipe(self, method: str, seed_a: int, seed_b: int) -> SteRecipe:
        recipe = self.scale.ste if method == "ste" else self.scale.ste_gr
        return replace(recipe, seed=sub_seed(method, seed_a, seed_b))

    def _fetch_search(self, s: Setting, method: str, seed_a: int, seed_b: int,
                      own_template: bool = False) -> tuple[Perms, dict]:
        """`own_template`: run on a copy of the setting's template, for searches running beside
        others in threads (functional_call swaps a module's parameters while it runs)."""
        a, b = s.model(seed_a), s.model(seed_b)
        job = search_job(s, method, seed_a, seed_b)

        def build():
            template = copy.deepcopy(s.template) if own_template else s.template
            payload, line = search_payload(s, method, seed_a, seed_b, a, b, job.ste, template=template)
            self.progress(line)
            return payload

        payload = self.executor.fetch(self, job, build)
        perms = {k[len(PERM):]: v.to(self.device) for k, v in payload.items() if k.startswith(PERM)}
        return perms, {k: v for k, v in payload.items() if not k.startswith(PERM)}
