"""Small synthetic datasets written in the real file formats of the data root (IDX for MNIST and
Fashion-MNIST, CIFAR-10's python batches), each folder listing its files with size and md5
(`data.FILES_LIST`), so that the loaders check and read them as they do the real ones: what a dry
run of the paper scale trains on (tests/test_paper_dry_run.py, benchmarks/paper_gpu.sh --dry)."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np

from ..data import FILES_LIST


def _idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def _listing(folder: Path, files: list[Path]) -> None:
    entries = {str(f.relative_to(folder)): {"size": f.stat().st_size, "md5": hashlib.md5(f.read_bytes()).hexdigest()}
               for f in files}
    (folder / FILES_LIST).write_text(json.dumps(entries, indent=1, sort_keys=True))


def write_synthetic_root(root: Path, n_train: int = 128, n_test: int = 128, seed: int = 0) -> Path:
    """MNIST, Fashion-MNIST and CIFAR-10 of n_train / n_test random images each under `root`."""
    rng = np.random.default_rng(seed)
    for folder in ("MNIST", "FashionMNIST"):
        raw = Path(root) / folder / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        files = []
        for prefix, n in (("train", n_train), ("t10k", n_test)):
            labels = np.arange(n) % 10
            images = (rng.random((n, 28, 28)) * 64 + labels[:, None, None] * 19).astype(np.uint8)  # learnable
            for kind, array in (("images-idx3", images), ("labels-idx1", labels.astype(np.uint8))):
                path = raw / f"{prefix}-{kind}-ubyte"
                _idx(path, array)
                files.append(path)
        _listing(Path(root) / folder, files)
    cifar = Path(root) / "cifar-10-batches-py"
    cifar.mkdir(parents=True, exist_ok=True)
    files = []
    per_batch = max(1, n_train // 5)
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        labels = (np.arange(n) % 10).tolist()
        data = (rng.random((n, 3072)) * 64 + np.asarray(labels)[:, None] * 19).astype(np.uint8)
        path = cifar / name
        path.write_bytes(pickle.dumps({b"data": data, b"labels": labels, b"batch_label": name.encode()}))
        files.append(path)
    meta = cifar / "batches.meta"
    meta.write_bytes(pickle.dumps({b"label_names": [f"class{i}".encode() for i in range(10)]}))
    _listing(cifar, files + [meta])
    return Path(root)
