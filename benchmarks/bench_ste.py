"""STE searches of one setting: one after another (as before `Lab.searches`) vs several at once.

    python benchmarks/bench_ste.py [--arch mlp --dataset mnist5k --width 512] [--pairs 2] [--steps 40]
                                   [--cache-dir DIR]

In one process, on the ci scale's models of the setting (trained, or loaded from the cache):

- reference: each pair's STE search (Ito et al.'s recipe, capped at --steps steps) in turn, with
  torch's default intra-op threads;
- the same searches one after another with one intra-op thread each (what every STE run now uses);
- the same searches through `Lab.searches` (several at once on a CPU, one thread each).

Each way runs on a fresh in-process lab over the same cache of models, so no search result is
reused; the searches themselves are never cached (a throw-away zoo directory for them). Prints the
wall times, the ratio against the reference, and whether the permutations of the three ways are
identical. Also prints where one STE step's time goes (projection = weight matching, the rest =
combination, forward, backward, optimiser step), from a profile of one search.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import os
import platform
import pstats
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from lmc_claims.lab import Lab
from lmc_claims.matching.ste import ste_matching
from lmc_claims.scales import get_scale
from lmc_claims.training import cpu_threads
from lmc_claims.zoo import Zoo, default_cache_dir


def setting_of(cache: Path, arch: str, dataset: str, width: int, steps: int):
    scale = get_scale("ci")
    scale = replace(scale, ste=replace(scale.ste, max_steps=steps))
    lab = Lab(scale, torch.device("cpu"), Zoo(cache))
    return lab, lab.setting(arch, dataset, width)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="mlp")
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--cache-dir", type=Path, default=None, help="where the ci models are (default: the user cache)")
    args = ap.parse_args()
    models = args.cache_dir or default_cache_dir()
    pairs = get_scale("ci").pairs[: args.pairs]
    wanted = [("ste", a, b) for a, b in pairs]
    _, s = setting_of(models, args.arch, args.dataset, args.width, args.steps)
    s.models(sorted({m for p in pairs for m in p}))  # trained or loaded before any timing
    # Warm-up outside the timings: torch imports its compiler stack on the first optimiser, and the
    # first forward and backward passes allocate.
    ste_matching(s.spec, s.template, s.model(pairs[0][0]), s.model(pairs[0][1]), s.data.x_train, s.data.y_train,
                 replace(s.ste_recipe("ste", *pairs[0]), max_steps=2))

    def fresh():
        # The models come from the shared cache; the searches go to a throw-away copy of it.
        tmp = Path(tempfile.mkdtemp(prefix="bench-ste-"))
        shutil.copytree(Path(models) / "model", tmp / "model", dirs_exist_ok=True)
        return tmp, setting_of(tmp, args.arch, args.dataset, args.width, args.steps)[1]

    def reference(s):
        out = []
        for a, b in pairs:
            recipe = s.ste_recipe("ste", a, b)
            out.append(ste_matching(s.spec, s.template, s.model(a), s.model(b), s.data.x_train, s.data.y_train, recipe).perms)
        return out

    def one_thread(s):
        with cpu_threads(s.device):
            return reference(s)

    def together(s):
        s.prefetch(wanted)
        return [s.match(*w) for w in wanted]

    times, perms = {}, {}
    for name, fn in (("reference: in turn, default threads", reference), ("in turn, one thread each", one_thread),
                     ("Lab.searches (several at once, one thread each)", together)):
        tmp, fs = fresh()
        t0 = time.perf_counter()
        perms[name] = fn(fs)
        times[name] = time.perf_counter() - t0
        shutil.rmtree(tmp, ignore_errors=True)

    ref = next(iter(times))
    print(f"# STE searches, {args.arch} w{args.width} on {args.dataset}: {len(pairs)} pairs x {args.steps} steps "
          f"(Ito et al.'s recipe, capped)\n")
    print(f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} intra-op threads by default); load average at the end "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; {datetime.date.today()}\n")
    print("| way | wall time | reference / this | permutations as the one-thread run's |")
    print("|---|---|---|---|")
    base = perms["in turn, one thread each"]
    for name, t in times.items():
        same = all(all(torch.equal(x[k].cpu(), y[k].cpu()) for k in x) for x, y in zip(perms[name], base))
        print(f"| {name} | {t:.2f} s | {times[ref] / t:.2f} | {'identical' if same else 'differ'} |")

    a, b = pairs[0]
    prof = cProfile.Profile()
    with cpu_threads(s.device):
        prof.enable()
        res = ste_matching(s.spec, s.template, s.model(a), s.model(b), s.data.x_train, s.data.y_train,
                           s.ste_recipe("ste", a, b))
        prof.disable()
    stats = pstats.Stats(prof).stats
    total = sum(v[3] for k, v in stats.items() if k[2] == "ste_matching")
    wm = sum(v[3] for k, v in stats.items() if k[2] == "weight_matching")
    print(f"\none search, one thread, {res.n_steps} steps: {1000 * total / max(1, res.n_steps):.1f} ms per step, of which "
          f"the projection (weight matching) {100 * wm / total:.0f}%")


if __name__ == "__main__":
    main()
