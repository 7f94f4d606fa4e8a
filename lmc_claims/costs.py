"""Per-job costs for `lmc-claims plan`'s estimate (estimate.py), measured by
`python benchmarks/bench_job_costs.py` on 2026-12-07 (benchmarks/RESULTS.md, "Per-job costs"):
seconds of training per (parameter x example x epoch) for each built-in family, at a small width
on random inputs of its dataset's shape, one intra-op thread, batch 128; and seconds of weight
matching per parameter (the 3 x 512 MLP). Measured on a CPU; no GPU figure exists yet."""

# The host and its load when measured: the estimate is an upper bound of this host's time.
MEASURED_ON = "a 2-core CPU host (host_speed 1.57 s), measured at load 4.8-5.4"
COSTS = {
    "train": {"mlp": 9.3e-10, "resnet20": 9.3e-08, "resnet20ln": 7.9e-08, "vgg11": 8.1e-09, "vit": 4.3e-08},
    "wm": 1.03e-06,
}
# Training examples of each dataset (the estimate needs them without reading the data).
TRAIN_SIZES = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000, "mnist5k": 4000, "digits": 1437,
               "mnist1d": 4000}
