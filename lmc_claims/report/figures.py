"""Figures for the report, chosen by the variables a claim test's dataset holds (never by claim id).

A figure kind is a drawing function registered with `@figure(name, needs={variable: dims})`.
Every claim test whose dataset holds those variables (with at least those dimensions) gets the
figure, so a new claim that stores, say, `combination_loss` over (combination, sample) gets a
plot by adding one registered function to `plots.py` (the decorator lives in `kinds.py`), without touching the report code:

    @figure("combination-loss", needs={"combination_loss": ("combination",)},
            caption="Loss of every hypercube combination, one histogram per search.")
    def combination_loss(fig, ds):
        ax = fig.subplots()
        ...

A kind with `across="width"` is drawn once per claim and setting instead, from all the claim's
datasets that differ only in that parameter (e.g. barrier against width); its function receives
a list of (parameter value, dataset) pairs sorted by value.

matplotlib is imported only when figures are drawn (Agg canvas, no pyplot state), so importing
the plugin stays cheap and no display is needed. Figures are drawn in parallel: this process
and a pool of fresh ('spawn') worker processes, one per idle CPU, each figure rendered to PNG
bytes; the report lists them in the order a serial run would. A kind whose drawing function cannot
travel to a worker (one defined inside a function) is drawn in this process, and so is
everything when a pool cannot start or breaks.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import pickle
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from . import plots  # noqa: F401  (registers the built-in kinds)
from .kinds import FigureKind, figure, registered  # noqa: F401  (figure: the decorator, re-exported)

DPI = 100
MIN_PARALLEL = 4  # fewer figures than this are drawn in this process: starting workers would cost more


def kinds() -> list[FigureKind]:
    return registered()


@dataclass
class RenderedFigure:
    kind: str
    file: str  # relative to the report directory: figures/NAME.png
    title: str
    caption: str
    png: bytes = field(repr=False)


@dataclass
class FigureSet:
    by_test: dict[str, list[RenderedFigure]] = field(default_factory=dict)  # data file -> its figures
    by_claim: dict[str, list[RenderedFigure]] = field(default_factory=dict)  # claim id -> figures across its tests
    warnings: list[str] = field(default_factory=list)

    def all(self) -> list[RenderedFigure]:
        return [f for fs in (*self.by_claim.values(), *self.by_test.values()) for f in fs]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", text).strip("_")


def _params_title(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _render(kind: FigureKind, data, title: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=kind.size, layout="constrained")
    FigureCanvasAgg(fig)
    kind.draw(fig, data)
    fig.suptitle(title, fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _draw(kind: FigureKind, data, title: str) -> tuple[bytes | None, str]:
    """(PNG bytes, "") or (None, why it could not be drawn): a plotting edge case must not cost the run
    its report. Runs in a worker process as well as in this one."""
    try:
        return _render(kind, data, title), ""
    except Exception as e:
        return None, f"{type(e).__name__}: {e}"


@dataclass
class _Job:
    kind: FigureKind
    data: object  # a dataset, or (parameter value, dataset) pairs for a kind drawn across a parameter
    title: str
    stem: str
    test: str | None = None  # the data file of the claim test the figure belongs to
    claim: str | None = None  # or the claim, for a figure across its tests


def _jobs(items: list[tuple[dict, object]]) -> list[_Job]:
    """Every figure to draw, in the report's order: kind by kind, claim test by claim test."""
    jobs = []
    for kind in kinds():
        matching = [(r, ds) for r, ds in items if kind.matches(ds)]
        if kind.across is None:
            for r, ds in matching:
                jobs.append(_Job(kind, ds, f"{r['id']} [{_params_title(r['params'])}]",
                                 re.sub(r"\.nc$", "", r["data_file"].split("/")[-1]), test=r["data_file"]))
            continue
        groups: dict[tuple, list[tuple[object, object]]] = {}
        for r, ds in matching:
            if kind.across in r["params"]:
                rest = tuple((k, v) for k, v in r["params"].items() if k != kind.across)
                groups.setdefault((r["id"], rest), []).append((r["params"][kind.across], ds))
        for (claim_id, rest), pairs in groups.items():
            if len({v for v, _ in pairs}) < 2:
                continue  # one value is not a trend; the per-test figures already show it
            pairs.sort(key=lambda p: p[0])
            title = f"{claim_id} [{_params_title(dict(rest))}]" if rest else claim_id
            jobs.append(_Job(kind, pairs, title, "_".join([claim_id, *(f"{k}={v}" for k, v in rest)]), claim=claim_id))
    return jobs


def _portable(kind: FigureKind) -> bool:
    """Whether a worker process can get the kind's drawing function (by module and name): not one
    defined inside a function, nor one of the main script (workers do not run it, see below)."""
    if "<locals>" in kind.draw.__qualname__ or getattr(kind.draw, "__module__", None) in (None, "__main__"):
        return False
    try:
        pickle.dumps(kind)
    except Exception:
        return False
    return True


@contextlib.contextmanager
def _without_main_script():
    """Start spawned workers without the parent's main script.

    A spawned process normally runs the parent's __main__ again (as __mp_main__) so that functions
    defined there unpickle; a script that calls `write_report` without an `if __name__ == "__main__":`
    guard would then run again in every worker. The workers need nothing from it (kinds defined in
    __main__ are drawn in this process), so while they start __main__ names neither a file nor a module."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__spec__", "__file__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _load() -> float:
    """Runnable processes on the machine now (this one included; 0 where the system does not say).

    The processes running at this moment (Linux's /proc/loadavg), not only the one-minute average:
    at the end of a claims run that average still counts the run's own measurements, which would
    leave the figures to one process on an otherwise idle machine. The smaller of the two is taken,
    so a briefly quiet moment on a busy machine does not start workers either."""
    try:
        average = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0
    try:
        with open("/proc/loadavg") as f:
            running = float(f.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return average
    return min(average, running)


def worker_count(n_jobs: int) -> int:
    """How many processes draw, this one included: one per CPU that other work leaves idle (on a
    machine already busy, more processes only add their start-up), at most os.cpu_count(), at most one per job."""
    cpus = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        cpus = min(cpus, len(os.sched_getaffinity(0)))
    idle = cpus - max(0.0, _load() - 1.0)  # this process is one of the runnable ones
    return max(1, min(cpus, n_jobs, int(idle)))


def _draw_all(jobs: list[_Job]) -> list[tuple[bytes | None, str]]:
    """Each job's (PNG, error), in the jobs' order; in parallel where there is more than one CPU.

    Worker processes take the jobs from the front of the queue while this process, one CPU of
    the count, draws from its back (cancelling each job before a worker takes it), so one worker
    fewer has to start."""
    results: list[tuple[bytes | None, str] | None] = [None] * len(jobs)
    portable = [i for i, job in enumerate(jobs) if _portable(job.kind)]
    workers = worker_count(len(portable)) - 1  # this process draws too
    if workers >= 1 and len(portable) >= MIN_PARALLEL:
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                with _without_main_script():  # workers start as jobs are submitted
                    futures = {i: pool.submit(_draw, jobs[i].kind, jobs[i].data, jobs[i].title) for i in portable}
                for i in reversed(portable):
                    if not futures[i].cancel():
                        break  # a worker has this one, and every one before it
                    results[i] = _draw(jobs[i].kind, jobs[i].data, jobs[i].title)
                for i, future in futures.items():
                    if results[i] is None:
                        try:
                            results[i] = future.result()
                        except Exception:  # a worker that died, data that did not pickle: drawn below, here
                            pass
        except Exception:  # a pool that cannot start (no semaphores, a sandbox): everything is drawn here
            pass
    return [r if r is not None else _draw(job.kind, job.data, job.title) for r, job in zip(results, jobs)]


def render_figures(items: list[tuple[dict, object]]) -> FigureSet:
    """Draw every figure that applies to (record, dataset) pairs of claim tests.

    A figure that cannot be drawn becomes a warning, not an error: the report must still be written."""
    out = FigureSet()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        out.warnings.append("matplotlib is not installed, so the report has no figures: pip install 'matplotlib>=3.7'")
        return out
    jobs = _jobs(items)
    for job, (png, error) in zip(jobs, _draw_all(jobs)):
        if png is None:
            out.warnings.append(f"figure {job.kind.name} for {job.title} could not be drawn: {error}")
            continue
        fig = RenderedFigure(job.kind.name, f"figures/{_slug(job.stem)}.{job.kind.name}.png", job.title, job.kind.caption, png)
        if job.test is not None:
            out.by_test.setdefault(job.test, []).append(fig)
        else:
            out.by_claim.setdefault(job.claim, []).append(fig)
    return out
