"""The expensive work as module-level jobs with picklable descriptions: training one model and
running one permutation search.

A job description (`TrainJob`, `SearchJob`) holds everything a process needs to redo the work
from scratch: the training config, the dataset by name and subset sizes, the device kind, and
for a search the setting's run (the worker rebuilds the data, the template model and the
permutation spec itself, through the same `Lab` code as the client). `zoo_config` is the cache
key's config, so a job and its cache entry are one thing (`executor.py` names cluster tasks by
the zoo key).

The computations themselves (`train_payload`, `search_payload`) are shared by the local path
(`Lab` calls them in-process, as it always did) and by cluster workers (`run_train`,
`run_search`), so a model trained on a worker is the one trained locally, bit for bit.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .errors import LmcClaimsError
from .matching.ste import SteRecipe
from .scales import Run
from .seeds import sub_seed
from . import training
from .training import TrainConfig, train

if TYPE_CHECKING:  # lab imports this module
    from .data import TensorData
    from .lab import Setting

PERM = "perm/"  # prefix of the permutations in a search's payload (lab.PERM); the rest is diagnostics
START = "start/"  # prefix of an STE search's first projection (weight matching of B onto A with its seed)
TRACEBACK_LINES = 12  # lines of a worker's traceback kept in the error a claim test shows


def versions() -> dict[str, str]:
    """What must agree between the process that owns the cache and a worker: the versions that
    enter every cache key (lmc-claims, torch) or change results (numpy). Read at call time."""
    import numpy

    import lmc_claims

    return {"lmc-claims": lmc_claims.__version__, "torch": torch.__version__, "numpy": numpy.__version__}


def worker_facts() -> dict:
    """The version probe a client runs on every worker when it connects."""
    return {"versions": versions(), "cuda": torch.cuda.is_available(), "host": socket.gethostname(), "pid": os.getpid()}


def check_versions(theirs: dict[str, str], ours: dict[str, str], where: str) -> None:
    differ = {k: (ours.get(k), theirs.get(k)) for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k)}
    if differ:
        detail = "; ".join(f"{k} {a} here, {b} on the worker" for k, (a, b) in differ.items())
        raise LmcClaimsError(
            f"The Dask worker {where} runs other versions than this process ({detail}): its models and "
            "matchings would not be the ones this cache holds.",
            "install the same lmc-claims, torch and numpy on every worker as here (one environment for the "
            "whole cluster), or point --claims-scheduler at a cluster started from this environment.")


# -- job descriptions ---------------------------------------------------------------------

@dataclass(frozen=True)
class DataRef:
    """A dataset by name and subset sizes: what a worker loads for itself."""

    dataset: str
    n_train: int | None
    n_test: int | None
    data_root: str | None = None  # the client's --claims-data-root, if it gave one

    def load(self) -> "TensorData":
        """The subset on the CPU (memoised per process, as `data.load_dataset`)."""
        from .data import load_dataset, set_data_root

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
_SETTINGS: dict[tuple, "Setting"] = {}


@dataclass(frozen=True)
class TrainJob:
    """Train one model from scratch."""

    config: TrainConfig
    data: DataRef
    device: str  # device kind: "cpu" or "cuda" (part of the cache key)
    fingerprint: str  # of the data the client keyed the entry with

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
class SettingRef:
    """An architecture on a dataset at a width, with its run: enough to rebuild the `Setting`."""

    arch: str
    dataset: str
    width: int
    run: Run
    data_root: str | None = None

    @property
    def label(self) -> str:
        return f"{self.arch}-w{self.width}-{self.dataset}"


@dataclass(frozen=True)
class SearchJob:
    """Permute model b onto model a by `method` ("wm", "am", "ste", "ste-gr")."""

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
            # STE runs with one intra-op thread (search_payload): entries from runs with more differ.
            "ste_threads": training.TRAIN_THREADS if self.ste is not None else None,
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


def data_ref(setting: "Setting") -> DataRef:
    from .data import _DATA_ROOT

    run = setting.run
    return DataRef(setting.dataset, run.recipe.n_train, run.n_test, str(_DATA_ROOT[0]) if _DATA_ROOT else None)


def train_job(setting: "Setting", seed: int) -> TrainJob:
    ref = data_ref(setting)
    return TrainJob(setting.train_config(seed), ref, setting.lab.device.type,
                    setting.lab.memo(("fingerprint", ref), ref.fingerprint))


def search_job(setting: "Setting", method: str, seed_a: int, seed_b: int) -> SearchJob:
    ref = SettingRef(setting.arch, setting.dataset, setting.width, setting.run, data_ref(setting).data_root)
    ste = setting.lab.ste_recipe(method, seed_a, seed_b) if method.startswith("ste") else None
    return SearchJob(method, ref, train_job(setting, seed_a), train_job(setting, seed_b), ste)


def merge_job(setting: "Setting", seeds) -> MergeJob:
    ref = SettingRef(setting.arch, setting.dataset, setting.width, setting.run, data_ref(setting).data_root)
    return MergeJob(ref, tuple(train_job(setting, m) for m in seeds), sub_seed("mergemany", *seeds))


# -- the computations (in-process and on workers alike) -----------------------------------

def train_payload(cfg: TrainConfig, data: "TensorData", device: torch.device) -> tuple[dict, str]:
    """(state dict on the CPU, the progress line saying what was trained)."""
    t0 = time.perf_counter()
    last = {}
    sd = train(cfg, data, device, progress=lambda c, epoch, loss: last.update(epoch=epoch, loss=loss))
    return sd, (f"trained {cfg.label()}: epoch {last['epoch']}/{cfg.recipe.epochs}, "
                f"loss {last['loss']:.4f}, {time.perf_counter() - t0:.1f} s")


def search_payload(s: "Setting", method: str, seed_a: int, seed_b: int, a: dict, b: dict,
                   ste_recipe: SteRecipe | None, template=None) -> tuple[dict, str]:
    """(the search's cache payload: permutations under PERM plus diagnostics, the progress line).
    `template`: the module to evaluate with (default the setting's)."""
    from .matching.activation import activation_matching
    from .matching.ste import ste_matching
    from .matching.weight import weight_matching
    from .training import cpu_threads

    t0 = time.perf_counter()
    extra = {}
    template = s.template if template is None else template
    if method == "wm":
        res = weight_matching(s.spec, a, b, seed=sub_seed("wm", seed_a, seed_b))
    elif method == "am":
        res = activation_matching(s.spec, template, a, b, s.eval_sets["train"][0])
    else:
        # One intra-op thread, like training: an STE run is then the same whether it runs alone, beside
        # others (Lab.searches) or on a single-threaded cluster worker.
        with cpu_threads(s.lab.device):
            res = ste_matching(s.spec, template, a, b, s.data.x_train, s.data.y_train, ste_recipe)
        extra = {"loss_curve": torch.tensor(res.loss_curve, dtype=torch.float64),
                 "drift_curve": torch.tensor(res.drift_curve, dtype=torch.float64),
                 "drift": torch.tensor(res.drift, dtype=torch.float64),
                 "best_step": torch.tensor(res.best_step), "n_steps": torch.tensor(res.n_steps),
                 **{START + p: v.cpu() for p, v in res.initial_perms.items()}}
    done = f", drift {res.drift:.3g}, {res.n_steps} steps" if method.startswith("ste") else ""
    line = f"{method} matching {s.label} seeds {seed_b}->{seed_a}: {time.perf_counter() - t0:.1f} s{done}"
    return {**{PERM + p: v.cpu() for p, v in res.perms.items()}, **extra}, line


def merge_payload(s: "Setting", job: MergeJob, models: list[dict]) -> tuple[dict, str]:
    """(every model's MergeMany permutation under "<index>/<perm>", the progress line)."""
    from .matching.merge import merge_many

    t0 = time.perf_counter()
    perms = merge_many(s.spec, models, seed=job.seed)
    return ({f"{i}/{p}": v.cpu() for i, ps in enumerate(perms) for p, v in ps.items()},
            f"{job.label}: {time.perf_counter() - t0:.1f} s")


def merge_perms(payload: dict, n: int, device) -> list[dict]:
    """The per-model permutations of a MergeMany payload."""
    out = [{} for _ in range(n)]
    for k, v in payload.items():
        i, p = k.split("/", 1)
        out[int(i)][p] = v.to(device)
    return out


# -- what a worker runs ------------------------------------------------------------------

@dataclass
class Done:
    """A job's result as it travels back: the payload (None when the worker stored it in the
    shared cache itself), its progress line and where it ran."""

    payload: dict | None
    message: str
    worker: str
    seconds: float
    built: bool = True  # False: the shared cache already held it


@dataclass
class Failed:
    """A job that failed for good (a user-fixable error: divergence, a bad config). Returned, not
    raised, so that the cluster does not retry what would fail again."""

    problem: str
    fix: str
    worker: str
    traceback: str = ""
    upstream: str = ""  # the job whose failure this one inherits (a search of a model that failed)

    def error(self, what: str) -> LmcClaimsError:
        origin = f" (its input failed: {self.upstream})" if self.upstream else ""
        tb = f"\nWorker traceback (last lines):\n{self.traceback}" if self.traceback else ""
        return LmcClaimsError(f"{what} failed on the Dask worker {self.worker}{origin}: {self.problem}{tb}", self.fix)


@dataclass(frozen=True)
class ModelRef:
    """A model a search needs that the shared cache holds (or will): the worker fetches it."""

    job: TrainJob


@dataclass(frozen=True)
class Context:
    """How a worker runs its jobs: the client's versions (checked on every job, so a worker that
    joins later is refused too) and, in shared-cache mode, the cache root to write to."""

    versions: dict = field(default_factory=dict)
    shared_root: str | None = None


def traceback_tail(exc: BaseException, lines: int = TRACEBACK_LINES) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip().splitlines()
    return "\n".join(text[-lines:])


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except Exception:  # not inside a Dask worker (a test calling the job directly)
        return f"{socket.gethostname()}:{os.getpid()}"


def _guarded(ctx: Context, compute) -> Done | Failed:
    where = _worker_address()
    t0 = time.perf_counter()
    try:
        if ctx.versions:
            check_versions(versions(), ctx.versions, where)
        payload, message, built = compute()
    except (LmcClaimsError, ValueError) as e:
        return Failed(getattr(e, "problem", f"{type(e).__name__}: {e}"), getattr(e, "fix", "see the traceback."),
                      where, traceback_tail(e))
    return Done(payload, message, where, time.perf_counter() - t0, built)


def _zoo(ctx: Context):
    from .zoo import Zoo

    return Zoo(ctx.shared_root)


def _check_data(job: TrainJob) -> None:
    fp = job.data.fingerprint()  # once per process and dataset
    if fp != job.fingerprint:
        raise LmcClaimsError(
            f"The worker's {job.data.dataset} data (fingerprint {fp}) are not the client's ({job.fingerprint}).",
            "give every worker the same dataset files (the same --claims-data-root / $LMC_CLAIMS_DATA contents).")


def _train(job: TrainJob) -> tuple[dict, str]:
    data = job.data.load()
    _check_data(job)
    device = torch.device(job.device)
    return train_payload(job.config, data if device.type == "cpu" else _on(data, device), device)


def _on(data: "TensorData", device: torch.device) -> "TensorData":
    from .data import TensorData

    return TensorData(data.name, *(t.to(device) for t in (data.x_train, data.y_train, data.x_test, data.y_test)),
                      data.num_classes)


def _model(ctx: Context, m: Any) -> dict:
    """A search's input: the payload itself, or a model the shared cache holds."""
    if isinstance(m, ModelRef):
        return _zoo(ctx).fetch("model", m.job.zoo_config, m.job.device, lambda: _train(m.job)[0])[0]
    return m


def run_train(job: TrainJob, ctx: Context = Context()) -> Done | Failed:
    """Train one model on this worker; in shared-cache mode store it there and return no payload."""

    def compute():
        if ctx.shared_root is None:
            return (*_train(job), True)
        message = []

        def build():
            sd, line = _train(job)
            message.append(line)
            return sd

        _, built = _zoo(ctx).fetch("model", job.zoo_config, job.device, build)
        return None, (message[0] if message else f"{job.label} found in the shared cache"), built

    return _guarded(ctx, compute)


def worker_setting(ref: SettingRef, device: str) -> "Setting":
    """The `Setting` a search runs in, rebuilt on this process by the client's own code path
    (`Lab.setting`): the same data, template model and permutation spec."""
    from .lab import Lab
    from .scales import Scale

    key = (ref, device)
    with _LOCK:
        if key not in _SETTINGS:
            scale = Scale(name="worker", runs=(ref.run,), custom=ref.run, n_pairs=1, n_random=0,
                          ste=SteRecipe(), ste_gr=SteRecipe(), combination_samples=0)
            if ref.data_root:
                from .data import set_data_root

                set_data_root(ref.data_root)
            _SETTINGS[key] = Lab(scale, torch.device(device), zoo=None).setting(ref.arch, ref.dataset, ref.width)
        return _SETTINGS[key]


def _input(m: Any, job: TrainJob) -> Any:
    """A model job's result as a search's input: its payload, or (shared cache) where to find it."""
    if isinstance(m, Done):
        return m.payload if m.payload is not None else ModelRef(job)
    return m


def run_search(job: SearchJob, a: Any, b: Any, ctx: Context = Context()) -> Done | Failed:
    """Run one permutation search on this worker. `a` and `b` are the models' results (payloads,
    `ModelRef`s, or the `Failed` of a model job, which this job then inherits)."""
    for m, mj in ((a, job.a), (b, job.b)):
        if isinstance(m, Failed):
            return replace(m, upstream=m.upstream or mj.describe())
    a, b = _input(a, job.a), _input(b, job.b)

    def build(s):
        dev = s.lab.device
        pa = {k: v.to(dev) for k, v in _model(ctx, a).items()}
        pb = {k: v.to(dev) for k, v in _model(ctx, b).items()}
        return search_payload(s, job.method, job.a.config.seed, job.b.config.seed, pa, pb, job.ste)

    return _guarded(ctx, lambda: _built_on_worker(ctx, job, build))


def run_merge(job: MergeJob, models: list, ctx: Context = Context()) -> Done | Failed:
    """Run one MergeMany on this worker; `models` are the model jobs' results, in the job's order."""
    for m, mj in zip(models, job.models):
        if isinstance(m, Failed):
            return replace(m, upstream=m.upstream or mj.describe())
    inputs = [_input(m, mj) for m, mj in zip(models, job.models)]

    def build(s):
        return merge_payload(s, job, [{k: v.to(s.lab.device) for k, v in _model(ctx, m).items()} for m in inputs])

    return _guarded(ctx, lambda: _built_on_worker(ctx, job, build))


def _built_on_worker(ctx: Context, job: SearchJob | MergeJob, build):
    """(payload, message, built) of a search-like job: returned to the client, or stored in the
    shared cache here (then no payload travels)."""
    s = worker_setting(job.setting, job.device)
    _check_data(inputs_of(job)[0])
    if ctx.shared_root is None:
        return (*build(s), True)
    message = []
    _, built = _zoo(ctx).fetch("match", job.zoo_config, job.device,
                               lambda: message.append(build(s)) or message[-1][0])
    return None, (message[0][1] if message else f"{job.label} found in the shared cache"), built


def entry_complete(zoo, job: Job) -> bool:
    """Whether the cache holds a finished entry for this job (cheap: no lock, no load)."""
    entry = zoo.entry_dir(job.kind, zoo.key(job.kind, job.zoo_config, job.device))
    return (Path(entry) / "COMPLETE").exists()
