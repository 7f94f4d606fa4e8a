"""How long deriving a permutation spec takes, against tracing the same model alone.

    python benchmarks/bench_derive.py [--repeats 3] [--models resnet50,vit_b_16,...]

For each torchvision model (built with num_classes=10, random weights, nothing downloaded; the
configurations and input sizes of tests/test_torchvision_specs.py, where `vit` is torchvision's
VisionTransformer in a small configuration) and the built-in `vit` at width 4 (`lmc-vit`), in one
process:

- reference: `torch.fx.symbolic_trace` of the model plus one `ShapeProp` pass on the example
  input, the floor any graph-based derivation pays;
- `derive_spec(model, example)`: both modes traced, every rule applied, the spec checked.

Prints the best of --repeats runs of each (interleaved), the ratio, derive_spec's first call (the
process's first derivation also imports and warms up), and the permutations found.
Issue 13's target: resnet50's spec in under 2 s.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch.fx.passes.shape_prop import ShapeProp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from lmc_claims.permutation.derive import derive_spec  # noqa: E402

DEFAULT = ("resnet18", "resnet50", "vgg11_bn", "densenet121", "mobilenet_v2", "efficientnet_b0", "convnext_tiny",
           "vit", "lmc-vit")


def build(name: str):
    if name == "lmc-vit":
        from lmc_claims.models.vit import ViT

        return ViT((1, 28, 28), 10, width=4), torch.randn(2, 1, 28, 28)
    from test_torchvision_specs import MODELS  # the configurations the exactness tests use

    factory, side, _ = MODELS[name]
    return factory(), torch.randn(2, 3, side, side)


def trace_only(model, x) -> None:
    gm = torch.fx.symbolic_trace(model)
    ShapeProp(gm).propagate(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default=",".join(DEFAULT))
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"# Deriving permutation specs ({datetime.date.today()}; {platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} at the start)\n")
    print("| model | parameters | trace + ShapeProp (reference) | derive_spec | derive / reference | derive_spec, first call |"
          " permutations |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        model, x = build(name)
        model.eval()
        best = {"trace": float("inf"), "derive": float("inf")}
        first = None
        spec = None
        for _ in range(args.repeats):
            for what in ("trace", "derive"):
                t0 = time.perf_counter()
                if what == "trace":
                    try:
                        trace_only(model, x)
                    except Exception:  # not fx-traceable: derive_spec falls back to torch.export
                        best["trace"] = float("nan")
                        continue
                else:
                    spec = derive_spec(model, x)
                    first = time.perf_counter() - t0 if first is None else first
                best[what] = min(best[what], time.perf_counter() - t0)
        n = sum(p.numel() for p in model.parameters())
        ratio = best["derive"] / best["trace"] if best["trace"] == best["trace"] else float("nan")
        print(f"| {name} | {n:,} | {best['trace']:.3f} s | {best['derive']:.3f} s | {ratio:.1f} | {first:.3f} s | {len(spec.perm_names)} |")


if __name__ == "__main__":
    main()
