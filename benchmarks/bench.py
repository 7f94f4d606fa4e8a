"""Speed benchmark of lmc-claims' hot paths, printed as a Markdown report.

    python benchmarks/bench.py [--quick] [--repeats N] [--json PATH]

In one process, on the same inputs:
  1. weight matching of two trained MLPs (784-512-512-512-10, mnist5k) and of two
     ResNet20 x4 models: this project's `weight_matching` vs the `rebasin` package
     (PyPI) vs a plain NumPy + SciPy implementation (benchmarks/reference_wm.py);
     wall time (best of N, runs interleaved), objective and L2 distance after matching;
  2. the share of each matching's time spent in the linear assignment solves;
  3. MLP training throughput (samples/s), and as a fraction of the float32 matmul rate
     measured in the same run (training FLOPs counted as 6 * params * samples);
  4. `pytest -m claims` with an empty cache and again with the warm cache (not --quick).

    python benchmarks/bench.py --interpolation [--repeats N]

runs only the interpolation-curve section instead: the per-point loop `interpolation_curve`
used to run (kept in this file) vs the library's, on the ci scale's MLP, LayerNorm ResNet20
and two-layer settings (random-init endpoints): times, ratio and the largest differences.

    python benchmarks/bench.py --vit [--repeats N] [--seeds K]

runs only the ViT section instead (part 5): weight matching of two trained `vit`s of the ci
scale against two trained 3 x 512 MLPs of the same scale (the reference, in the same process),
per matched parameter, with torch's default intra-op threads and with one.

All three matchers optimise the same objective, sum over the learnable parameters of
<W_A, pi(W_B)> (rebasin does not permute BatchNorm running statistics, so those are left
out for everyone), and the plain implementation and ours visit the permutations in the
same random order.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

try:
    import rebasin.permutation_coordinate_descent as pcd_mod  # noqa: E402  (the `bench` extra)
except ImportError:  # needed by parts 1-2 only
    pcd_mod = None
import reference_wm  # noqa: E402

import lmc_claims.matching.weight as wm  # noqa: E402
from lmc_claims.data import load_dataset  # noqa: E402
from lmc_claims.permutation import PermutationSpec, apply_permutation  # noqa: E402
import lmc_claims.training as training  # noqa: E402
import lmc_claims.cpu as cpu  # noqa: E402
from lmc_claims.cpu import cpu_workers  # noqa: E402
from lmc_claims.training import Recipe, TrainConfig, make_model, train, train_many  # noqa: E402



# ---------------------------------------------------------------- helpers
def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def matmul_rate(n: int = 2048, repeats: int = 7) -> float:
    """Best float32 FLOP/s of torch.matmul on n x n matrices."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, n, generator=g)
    y = torch.randn(n, n, generator=g)
    torch.matmul(x, y)
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        torch.matmul(x, y)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def restrict(spec: PermutationSpec, keep) -> PermutationSpec:
    return PermutationSpec.from_axes({k: v for k, v in spec.axes_to_perm.items() if k in keep})


def quality(spec: PermutationSpec, a: dict, b_perm: dict) -> tuple[float, float]:
    """(objective, L2 distance) over the spec's parameters, in float64."""
    obj = sum(float((a[k].double() * b_perm[k].double()).sum()) for k in spec.axes_to_perm)
    l2 = math.sqrt(sum(float(((a[k].double() - b_perm[k].double()) ** 2).sum()) for k in spec.axes_to_perm))
    return obj, l2


class LapTimer:
    """Wraps an assignment solver, adding up its calls and time."""

    def __init__(self, fn):
        self.fn, self.calls, self.seconds = fn, 0, 0.0

    def __call__(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t
            self.calls += 1

    def reset(self):
        self.calls, self.seconds = 0, 0.0


def torch_orders(seed: int, n: int):
    """The visiting orders weight_matching draws: one torch.randperm per sweep."""
    gen = torch.Generator().manual_seed(seed)
    cache: list[list[int]] = []

    def orders(sweep: int):
        while len(cache) <= sweep:
            cache.append(torch.randperm(n, generator=gen).tolist())
        return cache[sweep]

    return orders


# ---------------------------------------------------------------- model pairs
def mlp_pair(epochs: int):
    """Two trained MLPs, trained as a claims run trains them (`train_many`: at once on a CPU),
    then seed 0 again alone (`train`), for the single-model throughput and a bitwise check."""
    data = load_dataset("mnist5k")
    cfgs = [TrainConfig(arch="mlp", dataset="mnist5k", width=512, seed=s, recipe=Recipe(epochs=epochs)) for s in (0, 1)]
    train(TrainConfig(arch="mlp", dataset="mnist5k", width=512, seed=99, recipe=Recipe(epochs=1)), data, torch.device("cpu"))  # warm-up
    t = time.perf_counter()
    sds = train_many(cfgs, data, torch.device("cpu"))
    together_s = time.perf_counter() - t
    t = time.perf_counter()
    alone = train(cfgs[0], data, torch.device("cpu"))
    alone_s = time.perf_counter() - t
    same_bits = all(torch.equal(alone[k], sds[0][k]) for k in alone)
    from lmc_claims.models import ARCHITECTURES

    models = []
    for sd in sds:
        m = make_model(cfgs[0], data)
        m.load_state_dict(sd)
        models.append(m)
    spec = ARCHITECTURES["mlp"].spec(models[0])
    n_params = sum(p.numel() for p in models[0].parameters())
    samples = len(data.x_train) * epochs
    info = {
        "desc": f"MLP 784-512-512-512-10, trained {epochs} epochs on mnist5k (Adam, batch 128), seeds 0 and 1",
        "input": torch.randn(2, *data.input_shape, generator=torch.Generator().manual_seed(1)),
        "train": {"together_s": together_s, "n_together": len(cfgs), "workers": cpu_workers(),
                  "alone_s": alone_s, "same_bits": same_bits, "samples_per_model": samples, "params": n_params},
    }
    return models, spec, info


def resnet_pair():
    """ResNet20 x4 at random initialisation (seeds 0 and 1): the library's definition
    when it has one, else the benchmark's own."""
    source = None
    try:
        from lmc_claims.models import ARCHITECTURES

        arch = ARCHITECTURES.get("resnet20")
        if arch is not None and arch.spec is not None:
            models = []
            for s in (0, 1):
                torch.manual_seed(s)
                models.append(arch.factory((3, 32, 32), 10, 4))
            spec = arch.spec(models[0])
            source = "lmc_claims.models ARCHITECTURES['resnet20'] (BatchNorm)"
    except Exception as e:  # the library's registry is being extended concurrently
        print(f"(library resnet20 unavailable: {type(e).__name__}: {e}; using benchmarks/resnet20.py)", file=sys.stderr)
    if source is None:
        from resnet20 import ResNet20, resnet20_spec

        models = []
        for s in (0, 1):
            torch.manual_seed(s)
            models.append(ResNet20(3, 10, width=4))
        spec = resnet20_spec(models[0])
        source = "benchmarks/resnet20.py (BatchNorm)"
    for m in models:
        m.eval()
    info = {
        "desc": f"ResNet20 x4 (64/128/256 channels), RANDOM INIT (not trained), seeds 0 and 1; from {source}",
        "input": torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)),
    }
    return models, spec, info


# ---------------------------------------------------------------- matchers
IMPLS = ("ours", "ours_1t", "reference", "rebasin")
LABELS = {"ours": "lmc_claims `weight_matching`", "ours_1t": "(same, one intra-op thread)",
          "reference": "plain NumPy+SciPy (reference_wm.py)", "rebasin": "rebasin `calculate_permutations`"}


def run_ours(spec, a, b, seed, timer: LapTimer, threads=None):
    wm.solve_lap_numpy = timer
    shipped, wm.SEARCH_THREADS = wm.SEARCH_THREADS, threads
    try:
        t = time.perf_counter()
        res = wm.weight_matching(spec, a, b, seed=seed)
        secs = time.perf_counter() - t
    finally:
        wm.SEARCH_THREADS = shipped
    return secs, apply_permutation(spec, res.perms, b), {"sweeps": res.sweeps, "steps": len(res.objective)}


def run_reference(spec, a, b, seed, timer: LapTimer, term_weights=None):
    reference_wm.linear_sum_assignment = timer
    an = {k: a[k].numpy() for k in spec.axes_to_perm}
    bn = {k: b[k].numpy() for k in spec.axes_to_perm}
    orders = torch_orders(seed, len(spec.perm_names))
    t = time.perf_counter()
    perms, sweeps = reference_wm.weight_matching(spec.axes_to_perm, an, bn, orders=orders, term_weights=term_weights)
    secs = time.perf_counter() - t
    perms = {p: torch.from_numpy(v) for p, v in perms.items()}
    return secs, apply_permutation(spec, perms, b), {"sweeps": sweeps, "steps": sweeps * len(spec.perm_names)}


def run_rebasin(model_a, model_b, x, seed, timer: LapTimer):
    """rebasin draws its visiting order from the global torch RNG: seeded with `seed`, it
    is the same sequence of orders as ours (torch.randperm on a generator seeded so)."""
    pcd_mod.linear_sum_assignment = timer
    mb = copy.deepcopy(model_b)
    t = time.perf_counter()
    pcd = pcd_mod.PermutationCoordinateDescent(model_a, mb, x)
    t_init = time.perf_counter() - t
    torch.manual_seed(seed)
    timer.reset()
    t = time.perf_counter()
    pcd.calculate_permutations()
    secs = time.perf_counter() - t
    pcd.apply_permutations()
    # rebasin's own view of the problem: which parameter axes (and how many times each)
    # enter each permutation's cost matrix.
    names = {id(p): k for k, p in mb.named_parameters()}
    groups = []
    for _, infos in pcd.pinit.model_graph.permutation_to_info:
        counts: dict = {}
        for info in infos:
            key = (names.get(id(info.parameter_b)), info.axis)
            counts[key] = counts.get(key, 0) + 1
        groups.append(counts)
    sweeps = None
    return secs, {k: v.detach() for k, v in mb.state_dict().items()}, {
        "init_s": t_init, "perms": len(groups), "groups": groups, "model": mb, "sweeps": sweeps}


def bench_pair(label, models, spec_full, info, repeats: int, seeds: list[int]):
    model_a, model_b = models
    learnable = {k for k, _ in model_a.named_parameters()}
    spec = restrict(spec_full, learnable)
    a = {k: v.detach() for k, v in model_a.state_dict().items()}
    b = {k: v.detach() for k, v in model_b.state_dict().items()}
    start_obj, start_l2 = quality(spec, a, b)
    originals = (wm.solve_lap_numpy, reference_wm.linear_sum_assignment, pcd_mod.linear_sum_assignment)
    timers = {name: LapTimer(fn) for name, fn in zip(IMPLS, originals[:1] + originals)}
    # runs[name][seed] = list of (seconds, lap seconds, lap calls) over repeats
    runs = {name: {s: [] for s in seeds} for name in IMPLS}
    quality_rows = {name: {} for name in IMPLS}
    extras = {name: {} for name in IMPLS}
    try:
        for r in range(repeats):
            for seed in seeds:
                for name in IMPLS:
                    timer = timers[name]
                    timer.reset()
                    time.sleep(0.2)  # let the other library's idle threads go to sleep
                    if name == "ours":
                        secs, bp, extra = run_ours(spec, a, b, seed, timer)
                    elif name == "ours_1t":
                        secs, bp, extra = run_ours(spec, a, b, seed, timer, threads=1)
                    elif name == "reference":
                        secs, bp, extra = run_reference(spec, a, b, seed, timer)
                    else:
                        secs, bp, extra = run_rebasin(model_a, model_b, info["input"], seed, timer)
                    runs[name][seed].append((secs, timer.seconds, timer.calls))
                    if r == 0:
                        quality_rows[name][seed] = quality(spec, a, bp)
                        extras[name][seed] = extra
    finally:
        wm.solve_lap_numpy, reference_wm.linear_sum_assignment, pcd_mod.linear_sum_assignment = originals
    rows = {}
    for name in IMPLS:
        best = [min(runs[name][s]) for s in seeds]  # per seed, the fastest repeat
        total = sum(x[0] for x in best)
        objs = [quality_rows[name][s][0] for s in seeds]
        l2s = [quality_rows[name][s][1] for s in seeds]
        sweeps = [extras[name][s].get("sweeps") for s in seeds]
        rows[name] = {
            "total_s": total, "per_seed_s": [x[0] for x in best],
            "lap_s": sum(x[1] for x in best), "lap_calls": sum(x[2] for x in best),
            "lap_share": sum(x[1] for x in best) / total,
            "objectives": objs, "l2s": l2s, "sweeps": sweeps,
            "objective_mean": float(np.mean(objs)), "l2_mean": float(np.mean(l2s)),
        }
    rb = extras["rebasin"][seeds[0]]
    rows["rebasin"]["init_s"] = min(extras["rebasin"][s]["init_s"] for s in seeds)
    rows["rebasin"]["perms"] = rb["perms"]
    rows["ours"]["steps"] = [extras["ours"][s]["steps"] for s in seeds]
    # Does rebasin's permuted B compute the same function as B (BatchNorm in train mode)?
    with torch.no_grad():
        mb = rb["model"]
        model_b.train(), mb.train()
        rows["rebasin"]["function_diff"] = (model_b(info["input"]) - mb(info["input"])).abs().max().item()
        model_b.eval()
    # rebasin's cost matrices count parameters several times; when its permutation groups
    # are ours, rerun the plain algorithm with those multiplicities (untimed diagnostic).
    ours_groups = {frozenset(spec.perm_to_axes[p]) for p in spec.perm_names}
    rb_groups = rb["groups"]
    diag = None
    if {frozenset(g) for g in rb_groups} == ours_groups:
        weights = {key: float(c) for g in rb_groups for key, c in g.items()}
        mults = sorted({int(c) for c in weights.values()})
        objs = [quality(spec, a, run_reference(spec, a, b, s, LapTimer(originals[1]), term_weights=weights)[1])[0]
                for s in seeds]
        diag = {"multiplicities": mults, "objectives": objs, "objective_mean": float(np.mean(objs)),
                "example": {f"{k[0]}[axis {k[1]}]": c for k, c in list(rb_groups[0].items())[:4]}}
    return {"label": label, "desc": info["desc"], "n_params": sum(a[k].numel() for k in spec.axes_to_perm),
            "n_perms": len(spec.perm_names), "perm_sizes": sorted(spec.perm_sizes(a).values()), "seeds": seeds,
            "start_objective": start_obj, "start_l2": start_l2, "rows": rows, "rebasin_weighting": diag,
            "same_groups": diag is not None}


# ---------------------------------------------------------------- claims run
def claims_run(timeout_s: int) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory(prefix="lmc-bench-cache-") as cache, \
            tempfile.TemporaryDirectory(prefix="lmc-bench-report-") as report:
        cmd = [str(Path(sys.executable).with_name("pytest")), "-m", "claims", f"--claims-cache-dir={cache}",
               f"--claims-report-dir={report}", "-q", "-p", "no:cacheprovider"]
        for label in ("cold (empty cache)", "warm (cache from the cold run)"):
            t = time.perf_counter()
            try:
                proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
                rc, text = proc.returncode, proc.stdout + proc.stderr
            except subprocess.TimeoutExpired as e:
                rc, text = "timeout", (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            secs = time.perf_counter() - t
            summary = [ln for ln in text.strip().splitlines() if re.search(r"\b(passed|failed|error|skipped)\b", ln)]
            out.append({"run": label, "seconds": secs, "rc": rc, "summary": summary[-1] if summary else text[-300:],
                        "command": " ".join(cmd[:1] + ["-m", "claims", "--claims-cache-dir=<tmpdir>",
                                                       "--claims-report-dir=<tmpdir2>", "-q", "-p", "no:cacheprovider"])})
            print(f"claims {label}: {secs:.0f} s, rc {rc}", file=sys.stderr, flush=True)
    return out


# ---------------------------------------------------------------- interpolation curves
# The per-point loop `interpolation_curve` ran before it evaluated several points per pass
# (kept here, with the `lerp` and `evaluate` it called, as the reference).
def _old_lerp(a, b, lam):
    return {k: torch.lerp(a[k], b[k], lam) if a[k].is_floating_point() else a[k] for k in a}


@torch.no_grad()
def _old_evaluate(model, params, x, y, batch=2048):
    from torch.func import functional_call

    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), batch):
        out = functional_call(model, params, (x[i : i + batch],))
        loss += torch.nn.functional.cross_entropy(out, y[i : i + batch], reduction="sum").item()
        correct += (out.argmax(1) == y[i : i + batch]).sum().item()
    return loss / len(x), correct / len(x)


def old_interpolation_curve(model, a, b, x, y, lambdas):
    pts = [_old_evaluate(model, _old_lerp(a, b, float(lam)), x, y) for lam in lambdas]
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


# (arch, dataset, width, description): the ci scale's settings, eval sets as `Lab` builds them
INTERP_CASES = (
    ("mlp", "mnist5k", 512, "MLP 784-512-512-512-10 on mnist5k"),
    ("resnet20ln", "digits", 1, "LayerNorm ResNet20 x1 on digits (8x8)"),
    ("mlp-d1", "mnist5k", 512, "two-layer net 784-512-10 on mnist5k (the ferbach2024 family)"),
)


def proc_cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu_model()


def interpolation_bench(repeats: int) -> dict:
    """Old per-point loop vs `interpolation_curve` (as shipped, and with one point per forward
    pass on the CPU) on the train and test eval sets of each case, random-init endpoints (seeds 0
    and 1), 25 points; runs interleaved, best of `repeats`, with torch's default intra-op threads
    and with one."""
    import lmc_claims.metrics.interpolation as interp
    from lmc_claims.metrics.interpolation import DEFAULT_LAMBDAS, interpolation_curve
    from lmc_claims.scales import get_scale

    shipped = (interp.engine.CPU_CHUNK_BYTES, interp.engine.BATCH_CONV_ON_CPU)
    paths: list = []
    plain_run = interp.engine._run

    def spy(model_, a_, b_, batches, lams, stem, chunk):
        paths.append((stem is not None, chunk))
        return plain_run(model_, a_, b_, batches, lams, stem, chunk)

    def new(model, a, b, x, y, lambdas):
        c = interpolation_curve(model, a, b, x, y, lambdas)
        return c.loss, c.accuracy

    def single(model, a, b, x, y, lambdas):
        interp.engine.CPU_CHUNK_BYTES = 0
        try:
            return new(model, a, b, x, y, lambdas)
        finally:
            interp.engine.CPU_CHUNK_BYTES, interp.engine.BATCH_CONV_ON_CPU = shipped

    impls = {"old": old_interpolation_curve, "new": new, "single": single}
    scale = get_scale("ci")
    default_threads = torch.get_num_threads()
    out = {"threads": default_threads, "chunk_bytes": interp.engine.CPU_CHUNK_BYTES, "conv": interp.engine.BATCH_CONV_ON_CPU,
           "cases": []}
    for arch, dataset, width, desc in INTERP_CASES:
        run = scale.run(arch, dataset)
        data = load_dataset(dataset).subset(run.recipe.n_train, run.n_test)
        n = run.n_eval_train
        sets = {"train": (data.x_train[:n], data.y_train[:n]), "test": (data.x_test, data.y_test)}
        model, ends = None, []
        for seed in (0, 1):
            model = make_model(TrainConfig(arch=arch, dataset=dataset, width=width, seed=seed, recipe=run.recipe), data)
            ends.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        a, b = ends
        curves, path = {}, {}
        interp.engine._run = spy
        try:
            for k, fn in impls.items():  # also the warm-up
                paths.clear()
                curves[k] = {s: fn(model, a, b, x, y, DEFAULT_LAMBDAS) for s, (x, y) in sets.items()}
                path[k] = (paths[0][0], sorted({c for _, c in paths})) if paths else None
        finally:
            interp.engine._run = plain_run
        old = curves["old"]
        diffs = {}
        for k in ("new", "single"):
            c = curves[k]
            diffs[k] = {
                "loss": max(float(np.abs(c[s][0] - old[s][0]).max()) for s in sets),
                "rel_loss": max(float((np.abs(c[s][0] - old[s][0]) / np.abs(old[s][0])).max()) for s in sets),
                "acc": max(float(np.abs(c[s][1] - old[s][1]).max()) for s in sets),
                "ends_exact": all(c[s][0][i] == old[s][0][i] and c[s][1][i] == old[s][1][i] for s in sets for i in (0, -1)),
            }
        timings = {}
        for threads in sorted({default_threads, 1}, reverse=True):
            torch.set_num_threads(threads)
            best = {k: [math.inf, math.inf] for k in impls}  # wall, process CPU
            try:
                for _ in range(repeats):
                    for k, fn in impls.items():
                        t, c = time.perf_counter(), time.process_time()
                        for x, y in sets.values():
                            fn(model, a, b, x, y, DEFAULT_LAMBDAS)
                        best[k] = [min(best[k][0], time.perf_counter() - t), min(best[k][1], time.process_time() - c)]
            finally:
                torch.set_num_threads(default_threads)
            timings[threads] = best
            print(f"interpolation {arch}: {threads} thread(s): " + ", ".join(f"{k} {v[0]:.2f} s" for k, v in best.items()),
                  file=sys.stderr, flush=True)
        out["cases"].append({
            "arch": arch, "dataset": dataset, "width": width, "desc": desc,
            "n_train": len(sets["train"][1]), "n_test": len(sets["test"][1]),
            "params": sum(t.numel() for t in a.values() if t.is_floating_point()),
            "paths": path, "timings": timings, "diffs": diffs,
        })
    return out


# ---------------------------------------------------------------- 5. ViT weight matching
VIT_CASES = (("mlp", 512, "MLP 784-512-512-512-10 (reference)"), ("vit", None, "ViT"))


def trained_pair(arch: str, width: int | None, scale_name: str = "ci"):
    """Two models of the scale's run of `arch` on mnist5k (seeds 0 and 1), trained as a claims run
    trains them (`train_many`; then seed 0 alone again, timed), their spec as the claims run gets
    it, and their test accuracy."""
    from lmc_claims.metrics.interpolation import evaluate
    from lmc_claims.models.registry import permutation_spec
    from lmc_claims.scales import get_scale

    run = get_scale(scale_name).run(arch, "mnist5k")
    width = width or run.widths[0]
    data = load_dataset(run.dataset).subset(run.recipe.n_train, run.n_test)
    cfgs = [TrainConfig(arch=arch, dataset=run.dataset, width=width, seed=s, recipe=run.recipe) for s in (0, 1)]
    t = time.perf_counter()
    sds = train_many(cfgs, data, torch.device("cpu"))
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    train(cfgs[0], data, torch.device("cpu"))
    alone_s = time.perf_counter() - t
    model = make_model(cfgs[0], data)
    spec = permutation_spec(arch, model, data.x_train[:2])
    accs = [evaluate(model, sd, data.x_test, data.y_test)[1] for sd in sds]
    return sds, spec, {"arch": arch, "width": width, "recipe": run.recipe, "train_s": train_s, "alone_s": alone_s, "test_acc": accs,
                       "params": sum(p.numel() for p in model.parameters())}


def vit_bench(repeats: int, seeds: list[int]) -> dict:
    """Weight matching of each case's trained pair, interleaved, best of `repeats` per seed; with
    torch's default threads (`SEARCH_THREADS` as shipped) and with one."""
    cases = []
    for arch, width, desc in VIT_CASES:
        print(f"training two {arch} models of the ci scale ...", file=sys.stderr, flush=True)
        sds, spec, info = trained_pair(arch, width)
        matched = sum(sds[0][k].numel() for k in spec.axes_to_perm)
        cases.append({"desc": desc, "a": sds[0], "b": sds[1], "spec": spec, "matched": matched,
                      "n_perms": len(spec.perm_names), "perm_sizes": sorted(spec.perm_sizes(sds[0]).values()),
                      "composite": len(spec.composite_axes), **info})
    best = {(c["arch"], th): {s: math.inf for s in seeds} for c in cases for th in (None, 1)}
    laps = {key: {} for key in best}
    sweeps = {key: {} for key in best}
    for c in cases:  # warm-up (first calls allocate and spin up threads), untimed
        run_ours(c["spec"], c["a"], c["b"], seeds[0], LapTimer(wm.solve_lap_numpy))
    for _ in range(repeats):
        for seed in seeds:
            for c in cases:
                for threads in (None, 1):
                    timer = LapTimer(wm.solve_lap_numpy)
                    time.sleep(0.2)
                    secs, _, extra = run_ours(c["spec"], c["a"], c["b"], seed, timer, threads=threads)
                    key = (c["arch"], threads)
                    if secs < best[key][seed]:
                        best[key][seed], laps[key][seed], sweeps[key][seed] = secs, timer.seconds, extra["sweeps"]
    for c in cases:
        c["timings"] = {("default" if th is None else "1"): {
            "total_s": sum(best[(c["arch"], th)].values()), "lap_s": sum(laps[(c["arch"], th)].values()),
            "sweeps": [sweeps[(c["arch"], th)][s] for s in seeds]} for th in (None, 1)}
        for k in ("a", "b", "spec"):
            del c[k]
    return {"cases": cases, "seeds": seeds, "repeats": repeats, "search_threads": wm.SEARCH_THREADS or cpu_workers()}


def report_vit(res: dict, env: dict) -> str:
    ref = res["cases"][0]
    L = [f"### 5. Weight matching of two trained ViTs vs two MLPs (ci scale), {env['date']}\n",
         f"- command: `{env['command']}` (in the repository root)",
         f"- machine: {env['cpu_proc']} (`/proc/cpuinfo`), `nproc` {env['nproc']}, torch {env['torch']}; load average "
         f"at start {env['load']}, at the end {env['load_end']} (`os.getloadavg`; the machine is shared)",
         f"- each pair: seeds 0 and 1 of the ci scale's run, trained as a claims run trains them; weight matching of B "
         f"onto A with matching seeds {res['seeds']}, interleaved, best of {res['repeats']} per seed, summed over seeds; "
         f"default threads = `SEARCH_THREADS` as shipped ({res['search_threads']} here). Per parameter: the time over "
         f"the parameters the spec permutes\n",
         "| model | params | matched params | permutations (sizes) | composite axes | training: 2 at once / 1 alone | test acc | "
         "threads | WM time | sweeps | LAP share | ns per matched param | **x the MLP's, per param** |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in res["cases"]:
        sizes = f"{c['n_perms']} ({min(c['perm_sizes'])}-{max(c['perm_sizes'])})"
        for th, t in c["timings"].items():
            per = t["total_s"] / c["matched"]
            ref_per = ref["timings"][th]["total_s"] / ref["matched"]
            L.append(f"| {c['desc']} ({c['arch']}, width {c['width']}) | {c['params']:,} | {c['matched']:,} | {sizes} | "
                     f"{c['composite']} | {c['train_s']:.1f} s / {c['alone_s']:.1f} s | {', '.join(f'{a:.3f}' for a in c['test_acc'])} | {th} | "
                     f"{fmt_s(t['total_s'])} | {'/'.join(map(str, t['sweeps']))} | {100 * t['lap_s'] / t['total_s']:.0f}% | "
                     f"{1e9 * per:.1f} | **{per / ref_per:.2f}** |")
    return "\n".join(L) + "\n"


def _path(p) -> str:
    if p is None:
        return "-"
    stem, chunks = p
    return ("stem + " if stem else "") + (f"vmap, {'/'.join(map(str, chunks))} points per pass"
                                          if max(chunks) > 1 else "one point per pass")


def report_interpolation(res: dict, env: dict, repeats: int) -> str:
    L = [f"### Interpolation curves, {env['date']}\n",
         f"- command: `{env['command']}` (in the repository root)",
         f"- machine: {env['cpu_proc']} (`/proc/cpuinfo`), `nproc` {env['nproc']}, torch {env['torch']} "
         f"({res['threads']} intra-op threads by default); load average at start {env['load']}, at the end "
         f"{env['load_end']} (the machine is shared)",
         f"- each case: train and test eval sets of the ci scale's setting, random-init endpoints (seeds 0 and 1), "
         f"25 points. old: the per-point loop (kept in bench.py); new: `interpolation_curve` as shipped "
         f"(`CPU_CHUNK_BYTES` = {res['chunk_bytes'] / 2**20:g} MiB, `BATCH_CONV_ON_CPU` = {res['conv']}); "
         f"single: the same with one point per pass (`CPU_CHUNK_BYTES` = 0). Interleaved, best of {repeats}; "
         f"ratios of wall time (process CPU time in brackets)\n",
         "| model | eval examples (train + test) | threads | old | new: path | new | **old / new** | single: path | "
         "single | old / single | max abs diff loss (rel), new / single | max abs diff accuracy | endpoints bitwise |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in res["cases"]:
        d = c["diffs"]
        for threads, t in c["timings"].items():
            (ow, oc), (nw, nc), (bw, bc) = t["old"], t["new"], t["single"]
            L.append(f"| {c['desc']} ({c['params']:,} params) | {c['n_train']} + {c['n_test']} | {threads} | "
                     f"{fmt_s(ow)} | {_path(c['paths']['new'])} | {fmt_s(nw)} | **{ow / nw:.2f}** ({oc / nc:.2f}) | "
                     f"{_path(c['paths']['single'])} | {fmt_s(bw)} | {ow / bw:.2f} ({oc / bc:.2f}) | "
                     f"{d['new']['loss']:.1e} ({d['new']['rel_loss']:.1e}) / {d['single']['loss']:.1e} "
                     f"({d['single']['rel_loss']:.1e}) | {d['new']['acc']:.1e} / {d['single']['acc']:.1e} | "
                     f"{'yes' if d['new']['ends_exact'] and d['single']['ends_exact'] else 'NO'} |")
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------- report
def fmt_s(x: float) -> str:
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def report(res: dict) -> str:
    L = []
    env = res["env"]
    L.append(f"## Benchmark ({'quick' if res['quick'] else 'full'}), {env['date']}\n")
    L.append(f"- command: `{env['command']}` (in the repository root)")
    L.append(f"- machine: {env['cpu']}, {env['cores']} cores, no GPU; torch {env['torch']} "
             f"({env['threads']} threads), numpy {env['numpy']}, scipy {env['scipy']}, rebasin {env['rebasin']}")
    L.append(f"- load average at start: {env['load']} (the machine is shared); every matcher runs each seed "
             f"{res['repeats']}x, interleaved with the others; a time is the sum over seeds of each seed's fastest run\n")
    L.append("### 1-2. Weight matching\n")
    for pair in res["pairs"]:
        rows = pair["rows"]
        ours = rows["ours"]["total_s"]
        k = len(pair["seeds"])
        L.append(f"**{pair['label']}**: {pair['desc']}. {pair['n_perms']} permutations (sizes "
                 f"{min(pair['perm_sizes'])}-{max(pair['perm_sizes'])}), {pair['n_params']:,} matched parameters; "
                 f"identity: objective {pair['start_objective']:.6f}, L2 {pair['start_l2']:.6f}. "
                 f"Matching seeds (visiting orders) {pair['seeds']}.\n")
        L.append(f"| implementation | time, {k} seed(s) | ours is x faster | mean objective | objective per seed | "
                 "mean L2 after | sweeps | LAP solves | LAP time | LAP share |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for name in IMPLS:
            r = rows[name]
            label = LABELS[name]
            sweeps = "/".join("-" if x is None else str(x) for x in r["sweeps"])
            per_seed = ", ".join(f"{o:.6f}" for o in r["objectives"])
            L.append(f"| {label} | {fmt_s(r['total_s'])} | {r['total_s'] / ours:.2f} | {r['objective_mean']:.6f} | "
                     f"{per_seed} | {r['l2_mean']:.6f} | {sweeps} | {r['lap_calls']} | {fmt_s(r['lap_s'])} | "
                     f"{100 * r['lap_share']:.0f}% |")
        rb = rows["rebasin"]
        L.append("")
        same = all(abs(x - y) <= 1e-9 * abs(y) for x, y in zip(rows["ours"]["objectives"], rows["reference"]["objectives"]))
        L.append(f"- ours vs the plain reference (same visiting orders): objectives "
                 f"{'identical on every seed' if same else 'DIFFER'}; ours ran "
                 f"{'/'.join(map(str, rows['ours']['steps']))} steps, of which {rows['ours']['lap_calls']} (over all seeds) "
                 f"needed an assignment solve (the others were skipped as unchanged or certified optimal).")
        one = rows["ours_1t"]["total_s"]
        L.append(f"- ours runs its search with as many intra-op torch threads as the process has cores to itself "
                 f"(`SEARCH_THREADS` = None: {env['search_threads']} here); with one thread the same search took "
                 f"{fmt_s(one)} ({one / ours:.2f}x ours) in this run.")
        L.append(f"- the floor: the assignment solves are {100 * rows['ours']['lap_share']:.0f}% of ours "
                 f"({fmt_s(rows['ours']['lap_s'])} of {fmt_s(ours)}); everything else is "
                 f"{fmt_s(ours - rows['ours']['lap_s'])}.")
        L.append(f"- rebasin spends another {fmt_s(rb['init_s'])} tracing the model first (not counted above); it finds "
                 f"{rb['perms']} permutations ({'the same groups as ours' if pair['same_groups'] else 'not the same groups as ours'}); "
                 f"its permuted B computes B's function (max |diff| {rb['function_diff']:.1e}, train mode).")
        diag = pair.get("rebasin_weighting")
        if diag:
            L.append(f"- rebasin's cost matrices count parameter terms {'/'.join(map(str, diag['multiplicities']))} times "
                     f"(e.g. {diag['example']}), i.e. it runs a re-weighted coordinate descent. The plain reference with "
                     f"those multiplicities (untimed) reaches mean objective {diag['objective_mean']:.6f} "
                     f"(per seed {', '.join(f'{o:.6f}' for o in diag['objectives'])}).")
        L.append("")
    t = res["training"]
    L.append("### 3. MLP training throughput\n")
    rate = lambda d: ", ".join(f"{th} thread(s) {v / 1e9:.1f}" for th, v in sorted(d.items(), reverse=True))  # noqa: E731
    L.append(f"- float32 torch.matmul rate ({t['matmul_n']}x{t['matmul_n']}, best of 7), GFLOP/s: before training "
             f"{rate(t['matmul_before'])}; after {rate(t['matmul_after'])}; the machine's rate is taken as the best, "
             f"**{t['matmul_flops'] / 1e9:.1f} GFLOP/s**")
    L.append(f"- training as a claims run does it (`train_many`, {t['n_together']} models at once, "
             f"{t['workers']} worker(s), `cpu.TRAIN_THREADS` = {t['train_threads']} intra-op thread each; {t['desc']}): "
             f"{t['params']:,} params, {t['samples']} samples per model, {t['together_s']:.2f} s for both: "
             f"{t['samples_per_s']:.0f} samples/s = {t['flops'] / 1e9:.1f} GFLOP/s (6 x params x samples) = "
             f"**{100 * t['fraction']:.0f}% of the matmul rate**")
    L.append(f"- one model alone (`train`, seed 0): {t['alone_s']:.2f} s = {t['alone_flops'] / 1e9:.1f} GFLOP/s = "
             f"{100 * t['alone_fraction']:.0f}% of the matmul rate; its weights are bitwise those of the same model "
             f"trained beside the other: {'yes' if t['same_bits'] else 'NO'}")
    L.append(f"- diagnostic, seed 0 alone with torch's default {t['threads']} threads: {t['default_threads_s']:.2f} s = "
             f"{t['default_threads_flops'] / 1e9:.1f} GFLOP/s = {100 * t['default_threads_fraction']:.0f}% of the "
             f"matmul rate\n")
    if res.get("claims"):
        L.append(report_claims(res["claims"]))
    L.append("### Targets\n")
    for line in res["targets"]:
        L.append(f"- {line}")
    return "\n".join(L) + "\n"


def report_claims(claims: list[dict]) -> str:
    L = ["### 4. Default claims run\n", f"`{claims[0]['command']}` (in the repository root)\n",
         "| run | wall time | exit code | summary |", "|---|---|---|---|"]
    for c in claims:
        L.append(f"| {c['run']} | {c['seconds']:.0f} s ({c['seconds'] / 60:.1f} min) | {c['rc']} | {c['summary']} |")
    return "\n".join(L) + "\n"


def targets(res: dict) -> list[str]:
    out = []
    for pair in res["pairs"]:
        rows = pair["rows"]
        ours = rows["ours"]
        for other, need in (("rebasin", 3.0), ("reference", 2.0)):
            ratio = rows[other]["total_s"] / ours["total_s"]
            # "at least as good": mean over seeds, equal up to float64 rounding of the sums
            mine, theirs = ours["objective_mean"], rows[other]["objective_mean"]
            ok_obj = mine >= theirs - 1e-9 * abs(theirs)
            wins = sum(x >= y - 1e-9 * abs(y) for x, y in zip(ours["objectives"], rows[other]["objectives"]))
            out.append(f"{pair['label']}: {ratio:.2f}x faster than {other} (target {need:.0f}x): "
                       f"{'MET' if ratio >= need else 'MISSED'}; objective at least as good: "
                       f"{'yes' if ok_obj else 'NO'} (mean {mine:.6f} vs {theirs:.6f}; "
                       f"at least as good on {wins}/{len(pair['seeds'])} seeds)")
    t = res.get("training")
    if t:
        out.append(f"MLP training at {100 * t['fraction']:.0f}% of the matmul rate (target 50%): "
                   f"{'MET' if t['fraction'] >= 0.5 else 'MISSED'}")
    for c, limit in zip(res.get("claims") or [], (15 * 60, 2 * 60)):
        finished = c["rc"] in (0, 1)  # 1: some claims' verdicts failed, the run itself completed
        verdict = ("MET" if c["seconds"] <= limit else "MISSED") if finished else "NOT MEASURED (run did not finish)"
        note = "" if c["rc"] == 0 else f" (exit code {c['rc']})"
        out.append(f"claims {c['run']}: {c['seconds'] / 60:.1f} min (target {limit // 60} min): {verdict}{note}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 training epochs, 1 seed, 1 repeat, no claims run")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per matcher and seed (default 3; quick 1)")
    ap.add_argument("--seeds", type=int, default=None, help="matching seeds (visiting orders) (default 5; quick 1)")
    ap.add_argument("--epochs", type=int, default=None, help="MLP training epochs (default 10; quick 2)")
    ap.add_argument("--claims-timeout", type=int, default=3600, help="seconds allowed per claims run")
    ap.add_argument("--claims-only", action="store_true", help="run only part 4, the claims runs")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    ap.add_argument("--interpolation", action="store_true",
                    help="run only the interpolation-curve section: the old per-point loop vs interpolation_curve")
    ap.add_argument("--vit", action="store_true",
                    help="run only part 5: weight matching of two trained ViTs vs two MLPs of the ci scale, per parameter")
    args = ap.parse_args(argv)
    if pcd_mod is None and not (args.interpolation or args.claims_only or args.vit):
        ap.error("parts 1-2 compare with rebasin: install the bench extra (pip install -e \".[bench]\")")
    repeats = args.repeats or (1 if args.quick else 3)
    seeds = list(range(args.seeds or (1 if args.quick else 5)))
    epochs = args.epochs or (2 if args.quick else 10)
    from importlib.metadata import version

    res: dict = {"quick": args.quick, "repeats": repeats, "seeds": seeds}
    res["env"] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/bench.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
        "cpu": cpu_model(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
        "rebasin": version("rebasin") if pcd_mod is not None else "not installed",
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "search_threads": wm.SEARCH_THREADS or cpu_workers(),
    }
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    default_threads = torch.get_num_threads()

    def rates():
        """float32 matmul FLOP/s with torch's default threads and with one thread."""
        out = {default_threads: matmul_rate()}
        torch.set_num_threads(1)
        try:
            out[1] = matmul_rate()
        finally:
            torch.set_num_threads(default_threads)
        return out

    if args.interpolation:
        res["env"].update(cpu_proc=proc_cpu_model(), nproc=len(os.sched_getaffinity(0)))
        res["interpolation"] = interpolation_bench(repeats)
        res["env"]["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(report_interpolation(res["interpolation"], res["env"], repeats))
        if args.json:
            args.json.write_text(json.dumps(res, indent=1, default=str))
        return 0

    if args.vit:
        res["env"].update(cpu_proc=proc_cpu_model(), nproc=len(os.sched_getaffinity(0)))
        res["vit"] = vit_bench(repeats, seeds)
        res["env"]["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(report_vit(res["vit"], res["env"]))
        if args.json:
            args.json.write_text(json.dumps(res, indent=1, default=str))
        return 0

    if args.claims_only:
        res["claims"] = claims_run(args.claims_timeout)
        print(report_claims(res["claims"]))
        for line in targets({"pairs": [], "claims": res["claims"]}):
            print(f"- {line}")
        if args.json:
            args.json.write_text(json.dumps(res, indent=1, default=str))
        return 0

    log("matmul rate ...")
    before = rates()
    log(f"training two MLPs ({epochs} epochs) ...")
    models, spec, info = mlp_pair(epochs)
    tr = info.pop("train")
    # Diagnostic: the same training (seed 0) alone with torch's default threads instead of
    # cpu.TRAIN_THREADS.
    log("training seed 0 again with torch's default threads (diagnostic) ...")
    data = load_dataset("mnist5k")
    shipped, cpu.TRAIN_THREADS = cpu.TRAIN_THREADS, None
    try:
        t = time.perf_counter()
        train(TrainConfig(arch="mlp", dataset="mnist5k", width=512, seed=0, recipe=Recipe(epochs=epochs)), data, torch.device("cpu"))
        default_threads_s = time.perf_counter() - t
    finally:
        cpu.TRAIN_THREADS = shipped
    after = rates()
    flops_per_model = 6 * tr["params"] * tr["samples_per_model"]
    matmul_flops = max(list(before.values()) + list(after.values()))
    res["training"] = {
        "desc": f"MLP 784-512-512-512-10, mnist5k, {epochs} epochs, batch 128, Adam, CPU",
        "params": tr["params"], "samples": tr["samples_per_model"],
        "n_together": tr["n_together"], "workers": tr["workers"], "together_s": tr["together_s"],
        "flops": tr["n_together"] * flops_per_model / tr["together_s"],
        "samples_per_s": tr["n_together"] * tr["samples_per_model"] / tr["together_s"],
        "alone_s": tr["alone_s"], "alone_flops": flops_per_model / tr["alone_s"], "same_bits": tr["same_bits"],
        "matmul_n": 2048, "matmul_before": before, "matmul_after": after, "matmul_flops": matmul_flops,
        "threads": default_threads, "train_threads": cpu.TRAIN_THREADS,
        "default_threads_s": default_threads_s, "default_threads_flops": flops_per_model / default_threads_s,
    }
    for k in ("", "alone_", "default_threads_"):
        res["training"][f"{k}fraction"] = res["training"][f"{k}flops"] / matmul_flops

    res["pairs"] = []
    log("matching the MLP pair ...")
    res["pairs"].append(bench_pair("MLP", models, spec, info, repeats, seeds))
    log("matching the ResNet20 x4 pair ...")
    models, spec, info = resnet_pair()
    res["pairs"].append(bench_pair("ResNet20 x4", models, spec, info, repeats, seeds))

    if not args.quick:
        log("claims run, cold then warm ...")
        res["claims"] = claims_run(args.claims_timeout)
    res["targets"] = targets(res)
    print(report(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
