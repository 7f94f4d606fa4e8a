"""A warm run's measurements, the plain way (reference) vs the way the claims compute them.

    python benchmarks/bench_measure.py [--settings mlp:mnist5k:512,resnet20ln:digits:2,vit:mnist5k:2]
                                       [--cache-dir DIR] [--repeats 2]

In one process, on the ci scale's models and searches of each setting (trained, or loaded from the
cache), for the scale's model pairs:

- Ito et al.'s shrinking baseline (`ito2024.shrink_distance`): reference = the bisection with one whole
  25-point curve A -> B_t per step; now = `Line` (the paths share the naive line's points, a step
  stops at the first point above the target);
- Ito et al.'s alignment SVDs: reference = a fresh decomposition of every permuted variant of B; now =
  `permuted_svds` (B's SVDs with rows and columns moved);
- the curves of `shared.interpolation` (naive and WM, both splits): reference = one path after another
  with torch's default intra-op threads; now = `path_curves` (two at a time, one thread each).

Each timing is the best of --repeats runs; the ratio is reference / now (above 1: now is faster).
Prints whether the two ways give the same numbers: identical, or the largest difference.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from lmc_claims.lab import Lab
from lmc_claims.measurements import ito2024
from lmc_claims.measurements.shared import barrier_of, interpolation, path_curves, random_permutations
from lmc_claims.metrics import interpolation as interp
from lmc_claims.metrics.spectral import layer_svds, permuted_svds
from lmc_claims.permutation.apply import apply_permutation
from lmc_claims.scales import get_scale
from lmc_claims.zoo import Zoo, default_cache_dir


def best(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        interp.evaluation._ENDPOINTS.clear()  # no endpoint remembered from the run before
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def plain_shrink(s, pairs, target, split, steps=6):
    """The bisection as first written: a whole curve from A to B_t = A + t (B - A) per step."""
    x, y = s.eval_sets[split]
    out = []
    for pair, goal in zip(pairs, target.values):
        a, b = s.model(pair[0]), s.model(pair[1])
        lo, hi = 0.0, 1.0
        for _ in range(steps):
            t = (lo + hi) / 2
            bt = {k: (a[k] + t * (b[k] - a[k])) if a[k].is_floating_point() else a[k] for k in a}
            curve = interp.interpolation_curve(s.template, a, bt, x, y, interp.DEFAULT_LAMBDAS, bn_data=s.bn_data)
            lo, hi = (t, hi) if curve.loss_barrier <= goal else (lo, t)
        out.append(lo)
    return np.array(out)


def svds_fresh(s, pairs, n_random):
    out = []
    for pair in pairs:
        b = s.model(pair[1])
        variants = [apply_permutation(s.spec, p, b) for p in random_permutations(s, pair, n_random)]
        variants += [s.permuted(m, *pair) for m in ("wm", *ito2024.ste_searches(s))]
        out.append([layer_svds(s.spec, v) for v in variants])
    return out


def svds_moved(s, pairs, n_random):
    out = []
    for pair in pairs:
        b = s.model(pair[1])
        base = layer_svds(s.spec, b)
        perms = random_permutations(s, pair, n_random) + [s.match(m, *pair) for m in ("wm", *ito2024.ste_searches(s))]
        out.append([permuted_svds(s.spec, p, b, base) for p in perms])
    return out


def overlap_gap(one, other) -> float:
    """Largest difference in the top-half subspace overlap with the unpermuted B between two sets of SVDs
    (sign-free, so two valid SVDs of the same matrix agree)."""
    gap = 0.0
    for a_sets, b_sets in zip(one, other):
        for a_layers, b_layers in zip(a_sets, b_sets):
            for la, lb in zip(a_layers, b_layers):
                k = max(1, la.rank // 2)
                gap = max(gap, float(((la.u[:, :k].T @ lb.u[:, :k]).pow(2).sum() / k - 1).abs()),
                          float((la.s - lb.s).abs().max()) if la.rank else 0.0)
    return gap


def curves_plain(s, paths):
    return [{split: interp.interpolation_curve(s.template, a, b, x, y, interp.DEFAULT_LAMBDAS, bn_data=s.bn_data)
             for split, (x, y) in s.eval_sets.items()} for a, b in paths]


def curve_gap(one, other) -> float:
    return max(float(np.max(np.abs(p[k].loss - q[k].loss))) for p, q in zip(one, other) for k in p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", default="mlp:mnist5k:512,resnet20ln:digits:2,vit:mnist5k:2")
    ap.add_argument("--cache-dir", type=Path, default=None, help="where the ci models are (default: the user cache)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    scale = get_scale("ci")
    lab = Lab(scale, torch.device("cpu"), Zoo(args.cache_dir or default_cache_dir()))
    pairs = scale.pairs
    print(f"{datetime.date.today()} {platform.node()} {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f}, torch {torch.__version__}, {torch.get_num_threads()} intra-op threads; "
          f"pairs {pairs}, best of {args.repeats}")
    print("| setting | measurement | reference | now | reference / now | same numbers |")
    print("|---|---|---|---|---|---|")
    for item in args.settings.split(","):
        arch, dataset, width = item.split(":")
        s = lab.setting(arch, dataset, int(width))
        s.prefetch([(m, *p) for p in pairs for m in ("wm", *ito2024.ste_searches(s))])  # built or loaded, not timed
        naive_wm = interpolation(s, pairs)  # the curves the bisection's target and Line start from
        target = barrier_of(naive_wm, "wm", "train")
        rows = []
        t_ref, ref = best(lambda: plain_shrink(s, pairs, target, "train"), args.repeats)
        t_now, now = best(lambda: ito2024.shrink_distance(s, pairs, target, "train").values, args.repeats)
        rows.append(("shrink_distance (train)", t_ref, t_now, "identical" if np.array_equal(ref, now) else f"{ref} vs {now}"))
        t_ref, ref = best(lambda: svds_fresh(s, pairs, scale.n_random), args.repeats)
        t_now, now = best(lambda: svds_moved(s, pairs, scale.n_random), args.repeats)
        rows.append(("alignment SVDs", t_ref, t_now, f"overlap / singular values within {overlap_gap(ref, now):.1e}"))
        paths = [(s.model(a), s.permuted(m, a, b)) for a, b in pairs for m in ("naive", "wm")]
        with_default_threads = lambda: curves_plain(s, paths)  # noqa: E731
        t_ref, ref = best(with_default_threads, args.repeats)
        t_now, now = best(lambda: path_curves(s, paths), args.repeats)
        gap = curve_gap(ref, now)
        rows.append((f"{len(paths)} paths x 2 splits", t_ref, t_now, "identical" if gap == 0 else f"loss within {gap:.1e}"))
        for name, t_ref, t_now, same in rows:
            print(f"| {s.label} | {name} | {t_ref:.2f} s | {t_now:.2f} s | {t_ref / t_now:.2f} | {same} |", flush=True)


if __name__ == "__main__":
    main()
