"""What a run will cost before it starts: the jobs of its plan (models, searches, merges), at the
first look and at most over every later look, with the expected hours from per-job costs that
`benchmarks/bench_job_costs.py` measures (`costs.py`). The costs were measured on a CPU, so the
estimate is CPU hours on that host, scaled by this host's speed where it is known; no GPU figure
is measured yet, and the estimate says so."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

from .build.jobs import MergeJob, TrainJob
from .costs import COSTS, MEASURED_ON, TRAIN_SIZES
from .names import TAG


@lru_cache(maxsize=None)
def _params(arch: str, dataset: str, width: int) -> int:
    from .datasets import INPUT_SHAPES
    from .models.registry import build_model

    return sum(p.numel() for p in build_model(arch, INPUT_SHAPES[dataset], 10, width).parameters())


def _train_rate(arch: str) -> float:
    family = arch.split(TAG, 1)[0]
    base = next((f for f in sorted(COSTS["train"], key=len, reverse=True) if family.startswith(f)), "mlp")
    return COSTS["train"][base]


def seconds(job) -> float:
    """The job's expected seconds on the host the costs were measured on."""
    if isinstance(job, TrainJob):
        c = job.config
        n = c.recipe.n_train or TRAIN_SIZES.get(c.dataset.split("-pca")[0], 50000)
        return c.recipe.epochs * n * _params(c.arch, c.dataset, c.width) * _train_rate(c.arch)
    ref = job.setting
    p = _params(ref.arch, ref.dataset, ref.width)
    if isinstance(job, MergeJob):
        return len(job.models) * 10 * p * COSTS["wm"]  # MergeMany: about ten rounds of WM per model
    if job.method == "wm":
        return p * COSTS["wm"]
    n = ref.run.recipe.n_train or TRAIN_SIZES.get(ref.dataset.split("-pca")[0], 50000)
    if job.method == "am":
        return (ref.run.n_eval_train or n) * p * _train_rate(ref.arch) / 3 + p * COSTS["wm"]
    steps = job.ste.n_steps(n)
    return steps * (job.ste.batch_size * p * _train_rate(ref.arch) + p * COSTS["wm"])


def summary(plan, lab) -> list[str]:
    """Lines: the jobs of each look by kind, and the expected hours (first look; every look)."""
    out, hours = [], []
    for k, (n, jobs) in enumerate(plan.jobs_by_look(lab), 1):
        kinds = Counter("models" if isinstance(j, TrainJob) else "merges" if isinstance(j, MergeJob)
                        else f"{j.method} searches" for j in jobs)
        hours.append(sum(seconds(j) for j in jobs) / 3600)
        what = ", ".join(f"{v} {name}" for name, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
        when = "first look" if k == 1 else "if every test stays undecided"
        out.append(f"look {k} ({n} samples, {when}): {len(jobs)} jobs ({what}); ~{_hours(hours[-1])} CPU")
    out.append(f"expected: ~{_hours(hours[0])} CPU for the first look, at most ~{_hours(sum(hours))} CPU with every "
               f"look, on {MEASURED_ON} (benchmarks/bench_job_costs.py); GPU hours: not measured yet (no device was "
               "lent; benchmarks/paper_gpu.sh measures them on the first one)")
    return out


def _hours(h: float) -> str:
    return f"{h:,.0f} h" if h >= 100 else f"{h:.1f} h" if h >= 1 else f"{h * 60:.0f} min" if h * 60 >= 1 else f"{h * 3600:.0f} s"
