"""Convergence of Git Re-Basin's STE (Algorithm 2) on the default scale's MLP: where the step
budget of `scales.STE_GR_CI_STEPS` comes from.

Trains (or loads from the cache) the ci scale's first pair of 3 x 512 MLPs on mnist5k, runs the
published recipe (SGD 1e-2, momentum 0.9, batch 1000, fixed midpoint, best permutation) for the
paper's 250 epochs (1,000 steps on 4,000 examples), and prints, per block of steps, the best batch
loss so far, the units the projection reassigned and the fraction of units that differ from the
final best permutation. The budget is read off where the best loss stops improving by more than
1% of its total fall: a property of the search, not of any claim's verdict.

    python benchmarks/ste_convergence.py [--steps 1000] [--width 512] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from lmc_claims.lab import Lab
from lmc_claims.matching.ste import GIT_REBASIN_RECIPE, differing_fraction, ste_matching
from lmc_claims.scales import get_scale
from lmc_claims.zoo import Zoo, default_cache_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--cache-dir", type=Path, default=None)
    args = ap.parse_args()
    lab = Lab(get_scale("ci"), torch.device("cpu"), Zoo(args.cache_dir or default_cache_dir()))
    s = lab.setting("mlp", "mnist5k", args.width)
    a, b = s.model(0), s.model(1)
    recipe = replace(GIT_REBASIN_RECIPE, max_steps=args.steps, seed=0)
    t0 = time.perf_counter()
    res = ste_matching(s.spec, s.template, a, b, s.data.x_train, s.data.y_train, recipe)
    seconds = time.perf_counter() - t0
    best = np.minimum.accumulate(np.asarray(res.loss_curve))
    fall = best[0] - best[-1]
    print(f"{res.n_steps} steps in {seconds:.1f} s ({1000 * seconds / max(1, res.n_steps):.1f} ms/step); "
          f"best batch loss {best[0]:.4f} -> {best[-1]:.4f} (best step {res.best_step}); drift {res.drift:.4f}; "
          f"differs from WM (step 0) {differing_fraction(res.initial_perms, res.perms):.3f}")
    print("step   best loss   share of the fall left   units moved in block")
    block = max(1, res.n_steps // 20)
    for i in range(0, res.n_steps, block):
        j = min(res.n_steps, i + block) - 1
        left = (best[j] - best[-1]) / fall if fall > 0 else 0.0
        print(f"{j + 1:5d}   {best[j]:.4f}      {left:6.3f}                   {sum(res.moved_curve[i:j + 1])}")
    within = next((k + 1 for k in range(res.n_steps) if fall <= 0 or (best[k] - best[-1]) <= 0.01 * fall), res.n_steps)
    print(f"best loss within 1% of its total fall from step {within}")


if __name__ == "__main__":
    main()
