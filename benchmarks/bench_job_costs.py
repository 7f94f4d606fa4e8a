"""Per-job costs behind `lmc-claims plan`'s estimate: seconds of training per (parameter x example
x epoch) for each built-in family, and seconds of weight matching per parameter, on this machine.

    python benchmarks/bench_job_costs.py        # prints the COSTS dict for lmc_claims/costs.py

Run it idle, beside `python ../shared/tools/host_speed.py`, and record both in RESULTS.md. Each
family is timed on random inputs of its dataset's shape at a small width, after one warm-up epoch,
with the project's training code (one intra-op thread per model, as the claims run trains).
"""

import json
import time

import torch

from lmc_claims.cpu import cpu_threads
from lmc_claims.data import TensorData
from lmc_claims.matching.weight import weight_matching
from lmc_claims.models.registry import build_model, permutation_spec
from lmc_claims.recipes import Recipe, TrainConfig
from lmc_claims.training import train

CASES = {"mlp": ((1, 28, 28), 128), "resnet20": ((3, 32, 32), 1), "resnet20ln": ((3, 32, 32), 1),
         "vgg11": ((3, 32, 32), 1), "vit": ((3, 32, 32), 2)}
N = 512


def params_of(model) -> int:
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    costs = {"train": {}, "wm": None}
    for family, (shape, width) in CASES.items():
        x, y = torch.randn(N, *shape), torch.randint(0, 10, (N,))
        data = TensorData("bench", x, y, x[:64], y[:64], 10)
        cfg = TrainConfig(arch=family, dataset="bench", width=width, seed=0, recipe=Recipe(epochs=1, batch_size=128))
        train(cfg, data, torch.device("cpu"))  # warm-up
        t0 = time.perf_counter()
        train(cfg, data, torch.device("cpu"))
        seconds = time.perf_counter() - t0
        n_params = params_of(build_model(family, shape, 10, width))
        costs["train"][family] = seconds / (n_params * N)
    model = build_model("mlp", (1, 28, 28), 10, 512)
    spec = permutation_spec("mlp", model, torch.zeros(2, 1, 28, 28))
    a = {k: v.detach() for k, v in model.state_dict().items()}
    b = {k: v.detach() for k, v in build_model("mlp", (1, 28, 28), 10, 512).state_dict().items()}
    with cpu_threads("cpu"):
        t0 = time.perf_counter()
        weight_matching(spec, a, b, seed=0)
        costs["wm"] = (time.perf_counter() - t0) / params_of(model)
    print(json.dumps(costs, indent=1))


if __name__ == "__main__":
    main()
