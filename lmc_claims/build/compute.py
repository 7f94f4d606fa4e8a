"""The computations behind the jobs, shared by this process and cluster workers, so that a model
trained or a search run on a worker is the local one, bit for bit.

A search's payload holds its permutations under `PERM`, an STE search's first projection under
`START`, and diagnostics under plain names; `search_parts` is the one place that decodes it.
"""

from __future__ import annotations

import time

import torch

from ..cpu import cpu_threads
from ..data import TensorData
from ..seeds import sub_seed
from ..training import train
from .jobs import MergeJob, SearchJob
from .setup import Setup

PERM = "perm/"  # prefix of the permutations in a search's payload; the rest is diagnostics
START = "start/"  # prefix of an STE search's first projection (weight matching of B onto A with its seed)


def train_payload(cfg, data: TensorData, device: torch.device) -> tuple[dict, str]:
    """(state dict on the CPU, the progress line saying what was trained)."""
    t0 = time.perf_counter()
    last = {}
    sd = train(cfg, data, device, progress=lambda c, epoch, loss: last.update(epoch=epoch, loss=loss))
    return sd, (f"trained {cfg.label()}: epoch {last['epoch']}/{cfg.recipe.epochs}, "
                f"loss {last['loss']:.4f}, {time.perf_counter() - t0:.1f} s")


def search_payload(setup: Setup, job: SearchJob, a: dict, b: dict, device: torch.device,
                   template=None) -> tuple[dict, str]:
    """(the search's cache payload, the progress line). `template`: the module to evaluate with
    (default the setup's; a copy for searches running beside others in threads)."""
    from ..matching.activation import activation_matching
    from ..matching.ste import ste_matching
    from ..matching.weight import weight_matching

    t0 = time.perf_counter()
    seed_a, seed_b = job.a.config.seed, job.b.config.seed
    extra = {}
    template = setup.template if template is None else template
    if job.method == "wm":
        res = weight_matching(setup.spec, a, b, seed=sub_seed("wm", seed_a, seed_b))
    elif job.method == "am":
        res = activation_matching(setup.spec, template, a, b, setup.eval_sets["train"][0])
    else:
        # One intra-op thread, like training: an STE run is then the same whether it runs alone, beside
        # others or on a single-threaded cluster worker.
        with cpu_threads(device):
            res = ste_matching(setup.spec, template, a, b, setup.data.x_train, setup.data.y_train, job.ste)
        extra = {"loss_curve": torch.tensor(res.loss_curve, dtype=torch.float64),
                 "drift_curve": torch.tensor(res.drift_curve, dtype=torch.float64),
                 "drift": torch.tensor(res.drift, dtype=torch.float64),
                 "best_step": torch.tensor(res.best_step), "n_steps": torch.tensor(res.n_steps),
                 **{START + p: v.cpu() for p, v in res.initial_perms.items()}}
    done = f", drift {res.drift:.3g}, {res.n_steps} steps" if job.method.startswith("ste") else ""
    line = f"{job.method} matching {setup.ref.label} seeds {seed_b}->{seed_a}: {time.perf_counter() - t0:.1f} s{done}"
    return {**{PERM + p: v.cpu() for p, v in res.perms.items()}, **extra}, line


def search_parts(payload: dict, device) -> tuple[dict, dict, dict]:
    """(permutations on the device, diagnostics, an STE search's first projection) of a payload."""
    perms = {k[len(PERM):]: v.to(device) for k, v in payload.items() if k.startswith(PERM)}
    start = {k[len(START):]: v for k, v in payload.items() if k.startswith(START)}
    diagnostics = {k: v for k, v in payload.items() if not k.startswith((PERM, START))}
    return perms, diagnostics, start


def merge_payload(setup: Setup, job: MergeJob, models: list[dict]) -> tuple[dict, str]:
    """(every model's MergeMany permutation under "<index>/<perm>", the progress line)."""
    from ..matching.merge import merge_many

    t0 = time.perf_counter()
    perms = merge_many(setup.spec, models, seed=job.seed)
    return ({f"{i}/{p}": v.cpu() for i, ps in enumerate(perms) for p, v in ps.items()},
            f"{job.label}: {time.perf_counter() - t0:.1f} s")


def merge_perms(payload: dict, n: int, device) -> list[dict]:
    """The per-model permutations of a MergeMany payload."""
    out = [{} for _ in range(n)]
    for k, v in payload.items():
        i, p = k.split("/", 1)
        out[int(i)][p] = v.to(device)
    return out
