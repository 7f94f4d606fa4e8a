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

import reference_wm  # noqa: E402

import lmc_claims.matching.weight as wm  # noqa: E402
from lmc_claims.data import load_dataset  # noqa: E402
from lmc_claims.permutation import PermutationSpec, apply_permutation  # noqa: E402
from lmc_claims.training import TrainConfig, make_model, train  # noqa: E402

SEED = 0  # matching seed (visiting order)


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
    data = load_dataset("mnist5k")
    cfgs = [TrainConfig(arch="mlp", dataset="mnist5k", width=512, seed=s, epochs=epochs) for s in (0, 1)]
    sds, secs = [], []
    for cfg in cfgs:
        t = time.perf_counter()
        sds.append(train(cfg, data, torch.device("cpu")))
        secs.append(time.perf_counter() - t)
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
        "train": {"seconds": secs, "samples_per_model": samples, "params": n_params},
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
def run_ours(spec, a, b, timer: LapTimer):
    wm.solve_lap_numpy = timer
    t = time.perf_counter()
    res = wm.weight_matching(spec, a, b, seed=SEED)
    secs = time.perf_counter() - t
    return secs, apply_permutation(spec, res.perms, b), {"sweeps": res.sweeps, "steps": len(res.objective)}


def run_reference(spec, a, b, timer: LapTimer):
    reference_wm.linear_sum_assignment = timer
    an = {k: a[k].numpy() for k in spec.axes_to_perm}
    bn = {k: b[k].numpy() for k in spec.axes_to_perm}
    orders = torch_orders(SEED, len(spec.perm_names))
    t = time.perf_counter()
    perms, sweeps = reference_wm.weight_matching(spec.axes_to_perm, an, bn, orders=orders)
    secs = time.perf_counter() - t
    perms = {p: torch.from_numpy(v) for p, v in perms.items()}
    return secs, apply_permutation(spec, perms, b), {"sweeps": sweeps, "steps": sweeps * len(spec.perm_names)}


def run_rebasin(model_a, model_b, x, timer: LapTimer):
    import rebasin.permutation_coordinate_descent as pcd_mod

    pcd_mod.linear_sum_assignment = timer
    mb = copy.deepcopy(model_b)
    t = time.perf_counter()
    pcd = pcd_mod.PermutationCoordinateDescent(model_a, mb, x)
    t_init = time.perf_counter() - t
    torch.manual_seed(SEED)
    timer.reset()
    t = time.perf_counter()
    pcd.calculate_permutations()
    secs = time.perf_counter() - t
    pcd.apply_permutations()
    n_perms = len(pcd.pinit.model_graph.permutation_to_info)
    return secs, {k: v.detach() for k, v in mb.state_dict().items()}, {"init_s": t_init, "perms": n_perms, "model": mb}


def bench_pair(label, models, spec_full, info, repeats: int):
    model_a, model_b = models
    learnable = {k for k, _ in model_a.named_parameters()}
    spec = restrict(spec_full, learnable)
    a = {k: v.detach() for k, v in model_a.state_dict().items()}
    b = {k: v.detach() for k, v in model_b.state_dict().items()}
    start_obj, start_l2 = quality(spec, a, b)
    rows = {name: {"times": [], "lap_s": [], "lap_calls": []} for name in ("ours", "reference", "rebasin")}
    timers = {name: LapTimer(fn) for name, fn in (
        ("ours", wm.solve_lap_numpy), ("reference", reference_wm.linear_sum_assignment),
        ("rebasin", __import__("rebasin.permutation_coordinate_descent", fromlist=["x"]).linear_sum_assignment))}
    originals = (wm.solve_lap_numpy, reference_wm.linear_sum_assignment)
    try:
        for r in range(repeats):
            for name in ("ours", "reference", "rebasin"):
                timer = timers[name]
                timer.reset()
                time.sleep(0.2)  # let the other library's idle threads go to sleep
                if name == "ours":
                    secs, bp, extra = run_ours(spec, a, b, timer)
                elif name == "reference":
                    secs, bp, extra = run_reference(spec, a, b, timer)
                else:
                    secs, bp, extra = run_rebasin(model_a, model_b, info["input"], timer)
                row = rows[name]
                row["times"].append(secs)
                row["lap_s"].append(timer.seconds)
                row["lap_calls"].append(timer.calls)
                if r == 0:
                    row["objective"], row["l2"] = quality(spec, a, bp)
                    row.update({k: v for k, v in extra.items() if k != "model"})
                    if name == "rebasin":  # does rebasin's permuted B compute the same function?
                        mb = extra["model"]
                        with torch.no_grad():
                            model_b.train(), mb.train()
                            diff = (model_b(info["input"]) - mb(info["input"])).abs().max().item()
                            model_b.eval()
                        row["function_diff"] = diff
                elif name == "rebasin":
                    row["init_s"] = min(row["init_s"], extra["init_s"])
    finally:
        wm.solve_lap_numpy, reference_wm.linear_sum_assignment = originals
    for row in rows.values():
        i = int(np.argmin(row["times"]))
        row["best_s"] = row["times"][i]
        row["lap_best_run_s"] = row["lap_s"][i]
        row["lap_share"] = row["lap_s"][i] / row["times"][i]
    return {"label": label, "desc": info["desc"], "n_params": sum(a[k].numel() for k in spec.axes_to_perm),
            "n_perms": len(spec.perm_names), "perm_sizes": sorted(spec.perm_sizes(a).values()),
            "start_objective": start_obj, "start_l2": start_l2, "rows": rows}


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


# ---------------------------------------------------------------- report
def fmt_s(x: float) -> str:
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def report(res: dict) -> str:
    L = []
    env = res["env"]
    L.append(f"## Benchmark ({'quick' if res['quick'] else 'full'}) — {env['date']}\n")
    L.append(f"- command: `{env['command']}`")
    L.append(f"- machine: {env['cpu']}, {env['cores']} cores, no GPU; torch {env['torch']} "
             f"({env['threads']} threads), numpy {env['numpy']}, scipy {env['scipy']}, rebasin {env['rebasin']}")
    L.append(f"- load average at start: {env['load']}; timings are best of {res['repeats']} interleaved runs\n")
    L.append("### 1-2. Weight matching\n")
    for pair in res["pairs"]:
        rows = pair["rows"]
        ours = rows["ours"]["best_s"]
        L.append(f"**{pair['label']}**: {pair['desc']}. {pair['n_perms']} permutations (sizes "
                 f"{min(pair['perm_sizes'])}-{max(pair['perm_sizes'])}), {pair['n_params']:,} matched parameters; "
                 f"before matching: objective {pair['start_objective']:.6f}, L2 {pair['start_l2']:.6f}.\n")
        L.append("| implementation | time (best) | ours is x faster | objective | L2 after | sweeps | LAP solves | LAP time | LAP share |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for name in ("ours", "reference", "rebasin"):
            r = rows[name]
            i = int(np.argmin(r["times"]))
            label = {"ours": "lmc_claims (ours)", "reference": "plain NumPy+SciPy (reference_wm.py)",
                     "rebasin": f"rebasin {env['rebasin']} (calculate_permutations)"}[name]
            sweeps = r.get("sweeps", "-")
            L.append(f"| {label} | {fmt_s(r['best_s'])} | {r['best_s'] / ours:.2f} | {r['objective']:.9f} | "
                     f"{r['l2']:.6f} | {sweeps} | {r['lap_calls'][i]} | {fmt_s(r['lap_best_run_s'])} | {100 * r['lap_share']:.0f}% |")
        rb = rows["rebasin"]
        L.append("")
        L.append(f"rebasin also spends {fmt_s(rb['init_s'])} tracing the model before matching (not counted); it found "
                 f"{rb['perms']} permutations; its permuted B computes the same function as B (max |diff| "
                 f"{rb['function_diff']:.1e}, train mode). Ours steps (incl. skipped ones): {rows['ours']['steps']}.\n")
        d_ref = rows["ours"]["objective"] - rows["reference"]["objective"]
        d_rb = rows["ours"]["objective"] - rows["rebasin"]["objective"]
        L.append(f"objective ours - reference = {d_ref:+.3e}, ours - rebasin = {d_rb:+.3e}\n")
    t = res["training"]
    L.append("### 3. MLP training throughput\n")
    L.append(f"- float32 torch.matmul rate ({t['matmul_n']}x{t['matmul_n']}, best of 7): "
             f"{t['matmul_flops'] / 1e9:.1f} GFLOP/s (before training {t['matmul_before'] / 1e9:.1f}, after {t['matmul_after'] / 1e9:.1f})")
    L.append(f"- training ({t['desc']}): {t['params']:,} params, {t['samples']} samples per model, "
             f"{', '.join(f'{s:.1f} s' for s in t['seconds'])} per model")
    L.append(f"- best throughput {t['samples_per_s']:.0f} samples/s = {t['flops'] / 1e9:.1f} GFLOP/s "
             f"(6 x params x samples) = **{100 * t['fraction']:.0f}% of the matmul rate**\n")
    if res.get("claims"):
        L.append("### 4. Default claims run\n")
        L.append(f"`{res['claims'][0]['command']}` in {ROOT.name}/\n")
        L.append("| run | wall time | exit code | summary |")
        L.append("|---|---|---|---|")
        for c in res["claims"]:
            L.append(f"| {c['run']} | {c['seconds']:.0f} s ({c['seconds'] / 60:.1f} min) | {c['rc']} | {c['summary']} |")
        L.append("")
    L.append("### Targets\n")
    for line in res["targets"]:
        L.append(f"- {line}")
    return "\n".join(L) + "\n"


def targets(res: dict) -> list[str]:
    out = []
    for pair in res["pairs"]:
        rows = pair["rows"]
        ours = rows["ours"]
        for other, need in (("rebasin", 3.0), ("reference", 2.0)):
            ratio = rows[other]["best_s"] / ours["best_s"]
            ok_speed = ratio >= need
            # "at least as good": equal up to float64 rounding of the objective's sum
            ok_obj = ours["objective"] >= rows[other]["objective"] - 1e-9 * abs(rows[other]["objective"])
            out.append(f"{pair['label']}: {ratio:.2f}x faster than {other} (target {need:.0f}x): "
                       f"{'MET' if ok_speed else 'MISSED'}; objective at least as good: {'yes' if ok_obj else 'NO'}")
    t = res["training"]
    out.append(f"MLP training at {100 * t['fraction']:.0f}% of the matmul rate (target 50%): "
               f"{'MET' if t['fraction'] >= 0.5 else 'MISSED'}")
    for c, limit in zip(res.get("claims") or [], (15 * 60, 2 * 60)):
        out.append(f"claims {c['run']}: {c['seconds'] / 60:.1f} min (target {limit // 60} min): "
                   f"{'MET' if c['seconds'] <= limit and c['rc'] == 0 else 'MISSED'}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 training epochs, 1 repeat, no claims run")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per matcher (default 5; quick 1)")
    ap.add_argument("--epochs", type=int, default=None, help="MLP training epochs (default 10; quick 2)")
    ap.add_argument("--claims-timeout", type=int, default=3600, help="seconds allowed per claims run")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    args = ap.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 5)
    epochs = args.epochs or (2 if args.quick else 10)
    import rebasin  # noqa: F401  (fail early when the bench extra is missing)
    from importlib.metadata import version

    res: dict = {"quick": args.quick, "repeats": repeats}
    res["env"] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/bench.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
        "cpu": cpu_model(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "numpy": np.__version__, "scipy": scipy.__version__, "rebasin": version("rebasin"),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    log("matmul rate ...")
    before = matmul_rate()
    log(f"training two MLPs ({epochs} epochs) ...")
    models, spec, info = mlp_pair(epochs)
    after = matmul_rate()
    tr = info.pop("train")
    flops_per_model = 6 * tr["params"] * tr["samples_per_model"]
    best = min(tr["seconds"])
    res["training"] = {
        "desc": f"lmc_claims.training.train, MLP 784-512-512-512-10, mnist5k, {epochs} epochs, batch 128, Adam, CPU",
        "params": tr["params"], "samples": tr["samples_per_model"], "seconds": tr["seconds"],
        "samples_per_s": tr["samples_per_model"] / best, "flops": flops_per_model / best,
        "matmul_n": 2048, "matmul_before": before, "matmul_after": after, "matmul_flops": max(before, after),
    }
    res["training"]["fraction"] = res["training"]["flops"] / res["training"]["matmul_flops"]

    res["pairs"] = []
    log("matching the MLP pair ...")
    res["pairs"].append(bench_pair("MLP", models, spec, info, repeats))
    log("matching the ResNet20 x4 pair ...")
    models, spec, info = resnet_pair()
    res["pairs"].append(bench_pair("ResNet20 x4", models, spec, info, repeats))

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
