"""Dataset names and input shapes, without loading anything (no torch): what options and
architectures are checked against at start-up. `data.py` loads them.
"""

from __future__ import annotations

import math
import re

from .errors import LmcClaimsError, unknown_name

# Every dataset `data.load_dataset` knows: embedded in packages, then read from the data root.
NAMES = ("mnist5k", "digits", "mnist1d", "mnist", "fashion_mnist", "cifar10")

# "<base>-pca<k>": a registered dataset projected onto its top k principal components, so the
# input dimension (and with it the dimension of the first layer's neuron weights) can be
# varied on the same images (Ferbach et al. 2024 relate LMC to that dimension).
_PCA_NAME = re.compile(r"^(?P<base>.+)-pca(?P<k>[1-9][0-9]*)$")


def pca_parts(name: str) -> tuple[str, int] | None:
    """(base, k) for a "<base>-pca<k>" name over a registered base dataset, else None."""
    m = _PCA_NAME.match(name)
    if m is None or m["base"] not in NAMES:
        return None
    return m["base"], int(m["k"])


class _InputShapes(dict):
    """Input shapes by dataset name; "<base>-pca<k>" names resolve to (k,)."""

    def __missing__(self, name: str) -> tuple[int, ...]:
        parts = pca_parts(name)
        if parts is None:
            raise KeyError(name)
        return (parts[1],)


# Input shapes without loading the data (used to check a user's architecture at start-up).
INPUT_SHAPES = _InputShapes({"mnist5k": (1, 28, 28), "digits": (1, 8, 8), "mnist1d": (40,), "mnist": (1, 28, 28),
                             "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32)})


def check_dataset_name(name: str) -> None:
    if name in NAMES:
        return
    parts = pca_parts(name)
    if parts is None:
        raise unknown_name("dataset", name, NAMES)
    base, k = parts
    features = math.prod(INPUT_SHAPES[base])
    if k > features:
        raise LmcClaimsError(f"Dataset {name!r} asks for {k} principal components of {base!r}, which has "
                             f"only {features} input features.", f"use {base}-pcaK with K <= {features}.")


