"""The session's workbench: a `Setting` per architecture x dataset x width, with its data, its
trained models and its permutation searches.

Everything expensive is a build job (`build/`) that goes through the content-addressed zoo (so a
second run reuses it) and is memoised in-process (so several claims share one model, matching or
measurement). `Builds` holds that memo and hands the executor what jobs need (it satisfies
`build.executor.Inputs`); a `Setting` is a setup plus the methods measurements call, and reaches
the builds, never the `Lab`. Measurements take a `Setting` and the model pairs they use, never
loose (arch, dataset, width, seed) tuples.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence, TypeVar

import torch
from torch import nn

from .build.compute import merge_perms, search_parts
from .build.executor import Executor
from .build.local import LocalExecutor
from .build.jobs import DataRef, SearchJob, SettingRef, TrainJob, merge_job, search_job, train_job
from .build.setup import Setup, make_setup, on_device
from .cpu import concurrently
from .data import TensorData, given_data_root
from .metrics.interpolation import model_copy
from .names import check_method
from .permutation.apply import Params, Perms, apply_permutation
from .progress import Progress
from .recipes import SteRecipe
from .scales import Run, Scale
from .zoo import Zoo

T = TypeVar("T")


class Builds:
    """Models, searches and merges of a run, through its executor and memoised in-process; the
    `Inputs` an executor asks for (setups, data on the device, models)."""

    def __init__(self, scale: Scale, device: torch.device, zoo: Zoo, progress: Progress, executor: Executor):
        self.scale = scale
        self.device = device
        self.zoo = zoo
        self.progress = progress
        self.executor = executor
        self.load_data = True
        self._memo: dict = {}

    def memoised(self, key: tuple) -> bool:
        return key in self._memo

    def memo(self, key: tuple, compute: Callable):
        """Compute once per session."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    # -- what jobs need (build.executor.Inputs) -----------------------------------------
    def data(self, ref: DataRef) -> TensorData:
        return self.memo(("data", ref.dataset, ref.n_train, ref.n_test), lambda: on_device(ref.load(), self.device))

    def setup(self, ref: SettingRef) -> Setup:
        return self.memo(("setup", ref), lambda: make_setup(ref, self.device, self.data(ref.data)))

    def model(self, job: TrainJob) -> Params:
        if ("model", job) not in self._memo:
            self.models([job])
        return self._memo[("model", job)]

    # -- building ---------------------------------------------------------------------------
    def fingerprint(self, ref: DataRef) -> str:
        if not self.load_data:  # jobs only counted and costed (`lmc-claims plan`): no data read
            return "not-loaded"
        return self.memo(("fingerprint", ref), ref.fingerprint)

    def train_job(self, ref: SettingRef, seed: int) -> TrainJob:
        return train_job(ref, seed, self.device.type, self.fingerprint(ref.data))

    def search_job(self, ref: SettingRef, method: str, a: int, b: int) -> SearchJob:
        check_method(method)
        return search_job(ref, method, a, b, self.device.type, self.fingerprint(ref.data), self.ste_recipe(method))

    def merge_job(self, ref: SettingRef, seeds: Sequence[int]):
        return merge_job(ref, seeds, self.device.type, self.fingerprint(ref.data))

    def ste_recipe(self, method: str) -> SteRecipe | None:
        """The scale's recipe of an STE method (seeded per pair by the job), None otherwise."""
        return {"ste": self.scale.ste, "ste-gr": self.scale.ste_gr}.get(method)

    def models(self, jobs: Sequence[TrainJob]) -> list[Params]:
        """The trained models, from the cache or trained (several at once on a CPU)."""
        missing = [j for j in dict.fromkeys(jobs) if ("model", j) not in self._memo]
        if missing:
            for job, sd in zip(missing, self.executor.build(missing, self)):
                self._memo[("model", job)] = {k: v.to(self.device) for k, v in sd.items()}
        return [self._memo[("model", j)] for j in jobs]

    def searches(self, jobs: Sequence[SearchJob]) -> list[tuple[Perms, dict, dict]]:
        """(permutations, diagnostics, an STE search's first projection) of each search."""
        todo = [j for j in dict.fromkeys(jobs) if ("search", j) not in self._memo]
        if todo:
            self.models(sorted({m for j in todo for m in (j.a, j.b)}, key=lambda m: m.config.seed))
            for job, payload in zip(todo, self.executor.build(todo, self)):
                self._memo[("search", job)] = search_parts(payload, self.device)
        return [self._memo[("search", j)] for j in jobs]

    def merge_many(self, ref: SettingRef, seeds: Sequence[int]) -> list[Perms]:
        job = self.merge_job(ref, tuple(seeds))

        def compute():
            self.models(list(job.models))
            return merge_perms(self.executor.build([job], self)[0], len(seeds), self.device)

        return self.memo(("mergemany", job), compute)


@dataclass(frozen=True, eq=False)
class Setting:
    """One architecture on one dataset at one width: what every measurement of it needs."""

    ref: SettingRef
    scale: Scale = field(repr=False)
    setup: Setup = field(repr=False)
    builds: Builds = field(repr=False)

    arch = property(lambda self: self.ref.arch)
    dataset = property(lambda self: self.ref.dataset)
    width = property(lambda self: self.ref.width)
    run = property(lambda self: self.ref.run)
    data = property(lambda self: self.setup.data)
    eval_sets = property(lambda self: self.setup.eval_sets)  # "train", "test" -> (x, y)
    bn_data = property(lambda self: self.setup.bn_data)  # training inputs for BatchNorm statistics, None without BN
    template = property(lambda self: self.setup.template)  # the architecture, evaluated with functional_call
    spec = property(lambda self: self.setup.spec)
    device = property(lambda self: self.builds.device)

    @property
    def key(self) -> tuple[str, str, int]:
        return self.ref.key

    @property
    def label(self) -> str:
        return self.ref.label

    @property
    def config(self) -> dict:
        """What a claim test records about the setting it measured."""
        return {"arch": self.arch, "dataset": self.dataset, "width": self.width}

    def memo(self, name: str, *parts, compute: Callable):
        """A measurement of this setting computed once per session (shared by several claims)."""
        return self.builds.memo((name, *self.key, *parts), compute)

    def memoised(self, name: str, *parts) -> bool:
        return self.builds.memoised((name, *self.key, *parts))

    def concurrently(self, tasks: Sequence[Callable[[nn.Module], T]]) -> list[T]:
        """Measurement tasks, each called with its thread's own copy of the template (functional_call
        swaps a module's parameters while it runs). On a CPU as many run at once as there are cores,
        with one intra-op thread each, as models train (`cpu.concurrently`): a result is then the
        same alone, beside others and on any number of cores. Elsewhere one after another. A task
        gets what it measures as arguments: the searches and models it needs are fetched before,
        in this thread."""
        own = threading.local()

        def call(task):
            if not hasattr(own, "template"):
                own.template = model_copy(self.template)
            return task(own.template)

        return concurrently([functools.partial(call, task) for task in tasks], self.device)

    def train_job(self, seed: int) -> TrainJob:
        return self.builds.train_job(self.ref, seed)

    def model(self, seed: int) -> Params:
        job = self.train_job(seed)
        if not self.builds.memoised(("model", job)):
            # The first model asked for of a setting brings its pair partners along: the claims
            # use them all, and models trained together share the CPU's cores.
            paired = [m for pair in self.scale.pairs for m in pair]
            self.models(paired if seed in paired else [seed])
        return self.builds.model(job)

    def models(self, seeds: Sequence[int]) -> list[Params]:
        return self.builds.models([self.train_job(s) for s in seeds])

    def _search(self, method: str, a: int, b: int):
        return self.builds.searches([self.builds.search_job(self.ref, method, a, b)])[0]

    def match(self, method: str, a: int, b: int) -> Perms:
        """Permutation of model b onto model a found by `method` (one of `names.METHODS`)."""
        return self._search(method, a, b)[0]

    def diagnostics(self, method: str, a: int, b: int) -> dict[str, torch.Tensor]:
        """What the search recorded besides its permutation (STE: loss curve, drift, steps)."""
        return self._search(method, a, b)[1]

    def start(self, method: str, a: int, b: int) -> Perms:
        """An STE search's first projection: weight matching of b onto a from the search's own
        visiting order. An STE whose proxy never moves returns exactly this."""
        return self._search(method, a, b)[2]

    def prefetch(self, wanted: Sequence[tuple[str, int, int]]) -> None:
        """Build the searches (method, seed_a, seed_b) a measurement is about to use, together:
        on a CPU the STE searches among them then run several at once."""
        self.builds.searches([self.builds.search_job(self.ref, m, a, b) for m, a, b in wanted])

    def ste_recipe(self, method: str, a: int, b: int) -> SteRecipe | None:
        """The recipe an STE search of b onto a runs with (the scale's, seeded per pair)."""
        return self.builds.search_job(self.ref, method, a, b).ste

    def merge_many(self, seeds: Sequence[int]) -> list[Perms]:
        """Git Re-Basin's MergeMany (Algorithm 3) of these models: each one's permutation. A
        permutation search like the others, cached in the zoo and built through the executor."""
        return self.builds.merge_many(self.ref, seeds)

    def permuted(self, method: str, a: int, b: int) -> Params:
        """Model b as trained ("naive") or permuted onto model a by `method`."""
        if method == "naive":
            return self.model(b)
        return apply_permutation(self.spec, self.match(method, a, b), self.model(b))


class Lab:
    """The run's workbench: its scale, and a `Setting` per architecture x dataset x width."""

    def __init__(self, scale: Scale, device: torch.device, zoo: Zoo, progress: Progress | None = None,
                 executor: Executor | None = None):
        self.scale = scale
        # Where models are trained and searches run: in this process (default) or on a Dask
        # cluster (build/dask_cluster.py); the zoo stays the one source of truth either way.
        self.builds = Builds(scale, device, zoo, progress or Progress(quiet=True),
                             executor if executor is not None else LocalExecutor())

    device = property(lambda self: self.builds.device)
    zoo = property(lambda self: self.builds.zoo)
    progress = property(lambda self: self.builds.progress)
    executor = property(lambda self: self.builds.executor)

    def ref(self, arch: str, dataset: str, width: int, run: Run | None = None) -> SettingRef:
        """`run`: a run of the caller's own (a claim declared in another package); default the scale's."""
        return SettingRef(arch, dataset, width, run or self.scale.run(arch, dataset), given_data_root())

    def setting(self, arch: str, dataset: str, width: int, run: Run | None = None, checked: bool = True) -> Setting:
        """The setting; unless `checked` is False, its spec is checked to be a symmetry of its network
        first (an error naming the permutation, the parameters and the difference when it is not)."""
        ref = self.ref(arch, dataset, width, run)
        s = self.builds.memo(("setting", ref), lambda: Setting(ref, self.scale, self.builds.setup(ref), self.builds))
        if checked:
            self.builds.memo(("spec-checked", ref), lambda: check_spec(s, self.progress))
        return s

    def settings(self, arch: str, dataset: str, widths: Sequence[int] | None = None) -> list[Setting]:
        """One Setting per width (default: every width of the scale's run), for claims across widths."""
        return [self.setting(arch, dataset, w) for w in widths or self.scale.run(arch, dataset).widths]


SPARSE_SPEC = 0.5  # below this share of hidden units permuted, a run says so before it trains


def check_spec(s: Setting, progress) -> bool:
    """Stop every claim test of a setting whose spec is not a symmetry of its network (one random
    permutation, eval and train mode), and say so when the spec permutes little."""
    from .errors import LmcClaimsError
    from .testing.checks import check_symmetry, spec_coverage

    found = check_symmetry(s.template, s.eval_sets["train"][0][:64], s.spec, seed=0)
    if found:
        raise LmcClaimsError(f"{s.label}: {found[0].message()}",
                             "correct the architecture's permutation spec (or drop it to have it derived); the "
                             "spec-symmetry claim test shows every failing permutation.")
    share, fixed = spec_coverage(s.spec, {k: v.detach() for k, v in s.template.state_dict().items()})
    if share < SPARSE_SPEC:
        progress(f"warning: the permutation spec of {s.label} permutes only {share:.0%} of its hidden units; the "
                 f"units of {', '.join(fixed[:6])}{' ...' if len(fixed) > 6 else ''} stay fixed, so the claims measure "
                 "a network that matching can barely change")
    return True
