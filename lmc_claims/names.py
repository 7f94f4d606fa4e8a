"""The vocabulary a run is configured with, as plain values (no torch), so that options are
checked while pytest parses them without importing the heavy layers.

One meaning per name: a *method* is a permutation search (`METHODS`); a *path* is a variant of a
measurement's interpolation path ("naive", "random", or a method); an *executor* is where build
jobs run; a *device* is where tensors live.
"""

# Permutation searches: weight matching, activation matching, and the straight-through estimator
# under Ito et al.'s recipe ("ste", the one their claims are judged with) and under Git Re-Basin's
# Algorithm 2 ("ste-gr", supporting data).
METHODS = ("wm", "am", "ste", "ste-gr")
STE_METHODS = ("ste", "ste-gr")
# Where build jobs (training, searches, merges) run: this process, or a Dask cluster.
EXECUTORS = ("local", "dask")
DEVICE_CHOICES = ("auto", "cpu", "cuda")
# "NAME@TAG" names architecture NAME trained with other settings (a scale's run label, e.g. mlp-d1@lr0.01).
TAG = "@"


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown matching method {method!r}; expected one of {METHODS}")
