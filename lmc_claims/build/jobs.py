"""Build jobs as plain, picklable values: train one model, run one permutation search, merge a
set of models with MergeMany.

A job holds everything a process needs to redo the work from scratch: the training config, the
dataset by name and subset sizes, the device kind, and for a search or a merge the setting's run
(a worker rebuilds the data, the template model and the permutation spec itself with
`setup.make_setup`). `zoo_config` is the cache key's config, so a job and its cache entry are one
thing (executors name cluster tasks by the zoo key).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .. import cpu
from ..recipes import SteRecipe, TrainConfig
from ..scales import Run
from ..seeds import sub_seed

if TYPE_CHECKING:
    from ..data import TensorData
    from ..zoo import Zoo


@dataclass(frozen=True)
class DataRef:
    """A dataset by name and subset sizes: what a worker loads for itself."""

    dataset: str
    n_train: int | None
    n_test: int | None
    data_root: str | None = None  # the client's --claims-data-root, if it gave one

    def load(self) -> "TensorData":
        """The subset on the CPU (memoised per process, as `data.load_dataset`)."""
        from ..data import load_dataset, set_data_root

        key = (self.dataset, self.n_train, self.n_test, self.data_root)
        with _LOCK:
            if key not in _DATA:
                if self.data_root:
                    set_data_root(self.data_root)
                _DATA[key] = load_dataset(self.dataset).subset(self.n_train, self.n_test)
            return _DATA[key]

    def fingerprint(self) -> str:
        key = (self.dataset, self.n_train, self.n_test, self.data_root)
        if key not in _FINGERPRINTS:
            _FINGERPRINTS[key] = self.load().fingerprint()
        return _FINGERPRINTS[key]


_LOCK = threading.RLock()
_DATA: dict[tuple, "TensorData"] = {}
_FINGERPRINTS: dict[tuple, str] = {}


@dataclass(frozen=True)
class SettingRef:
    """An architecture on a dataset at a width, with its run: enough to rebuild the setting's data,
    template model and permutation spec (`setup.make_setup`)."""

    arch: str
    dataset: str
    width: int
    run: Run
    data_root: str | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.arch, self.dataset, self.width)

    @property
    def label(self) -> str:
        return f"{self.arch}-w{self.width}-{self.dataset}"

    @property
    def data(self) -> DataRef:
        return DataRef(self.dataset, self.run.recipe.n_train, self.run.n_test, self.data_root)

    def train_config(self, seed: int) -> TrainConfig:
        return TrainConfig(arch=self.arch, dataset=self.dataset, width=self.width, seed=seed, recipe=self.run.recipe)


@dataclass(frozen=True)
class TrainJob:
    """Train one model from scratch."""

    config: TrainConfig
    data: DataRef
    device: str  # device kind: "cpu" or "cuda" (part of the cache key)
    fingerprint: str  # of the data the client keyed the entry with
    # The setting it trains a model of (not part of the cache key): a local executor reads from its
    # template whether models may train side by side.
    setting: SettingRef | None = None

    kind = "model"

    @property
    def zoo_config(self) -> dict:
        return {"train": self.config.as_dict(), "data": self.fingerprint}

    @property
    def label(self) -> str:
        return self.config.label()

    def describe(self) -> str:
        return f"training {self.label}"


@dataclass(frozen=True)
class SearchJob:
    """Permute model b onto model a by `method` (one of `names.METHODS`)."""

    method: str
    setting: SettingRef
    a: TrainJob
    b: TrainJob
    ste: SteRecipe | None  # the recipe (seeded per pair) for STE searches, None otherwise

    kind = "match"

    @property
    def device(self) -> str:
        return self.a.device

    @property
    def zoo_config(self) -> dict:
        return {
            "method": self.method,
            "a": self.a.config.as_dict(),
            "b": self.b.config.as_dict(),
            "data": self.a.fingerprint,
            "ste": asdict(self.ste) if self.ste is not None else None,
            # STE runs with one intra-op thread (compute.search_payload): entries from runs with more differ.
            "ste_threads": cpu.TRAIN_THREADS if self.ste is not None else None,
            "am_examples": self.setting.run.n_eval_train if self.method == "am" else None,
        }

    @property
    def label(self) -> str:
        return f"{self.method} matching {self.setting.label} seeds {self.b.config.seed}->{self.a.config.seed}"

    def describe(self) -> str:
        return self.label


@dataclass(frozen=True)
class MergeJob:
    """Git Re-Basin's MergeMany (Algorithm 3) of several models of one setting: each one's permutation."""

    setting: SettingRef
    models: tuple[TrainJob, ...]
    seed: int  # the visiting order of the models and of their weight matchings

    kind = "match"

    @property
    def device(self) -> str:
        return self.models[0].device

    @property
    def zoo_config(self) -> dict:
        return {"method": "mergemany", "models": [m.config.as_dict() for m in self.models],
                "data": self.models[0].fingerprint, "seed": self.seed}

    @property
    def label(self) -> str:
        return f"mergemany {self.setting.label} seeds {'-'.join(str(m.config.seed) for m in self.models)}"

    def describe(self) -> str:
        return self.label


Job = TrainJob | SearchJob | MergeJob


def inputs_of(job: Job) -> tuple[TrainJob, ...]:
    """The model jobs a job needs the results of."""
    if isinstance(job, SearchJob):
        return job.a, job.b
    if isinstance(job, MergeJob):
        return job.models
    return ()


# -- making jobs from plain values ----------------------------------------------------------

def train_job(ref: SettingRef, seed: int, device: str, fingerprint: str) -> TrainJob:
    return TrainJob(ref.train_config(seed), ref.data, device, fingerprint, ref)


def search_job(ref: SettingRef, method: str, seed_a: int, seed_b: int, device: str, fingerprint: str,
               ste: SteRecipe | None = None) -> SearchJob:
    """`ste`: the scale's recipe for an STE method; it is seeded here, per pair."""
    seeded = replace(ste, seed=sub_seed(method, seed_a, seed_b)) if method.startswith("ste") else None
    return SearchJob(method, ref, train_job(ref, seed_a, device, fingerprint), train_job(ref, seed_b, device, fingerprint),
                     seeded)


def merge_job(ref: SettingRef, seeds, device: str, fingerprint: str) -> MergeJob:
    return MergeJob(ref, tuple(train_job(ref, m, device, fingerprint) for m in seeds), sub_seed("mergemany", *seeds))


def entry_complete(zoo: "Zoo", job: Job) -> bool:
    """Whether the cache holds a finished entry for this job (cheap: no lock, no load)."""
    entry = zoo.entry_dir(job.kind, zoo.key(job.kind, job.zoo_config, job.device))
    return (Path(entry) / "COMPLETE").exists()
