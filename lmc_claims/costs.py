"""Per-job costs for `lmc-claims plan`'s estimate (estimate.py), measured by
`python benchmarks/bench_job_costs.py` (benchmarks/RESULTS.md, "Per-job costs"): seconds of training
per (parameter x example x epoch) for each built-in family, and seconds of weight matching per
parameter. Measured on a CPU; no GPU figure exists yet."""

MEASURED_ON = "the 2-core CPU reference host (host_speed 1.57 s), measured under load 6: an upper bound"
COSTS = {
    "train": {"mlp": 3.0e-9, "resnet20": 1.2e-7, "resnet20ln": 1.4e-7, "vgg11": 1.0e-8, "vit": 1.0e-7},
    "wm": 1.0e-6,
}
# Training examples of each dataset (the estimate needs them without reading the data).
TRAIN_SIZES = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000, "mnist5k": 4000, "digits": 1437,
               "mnist1d": 4000}
