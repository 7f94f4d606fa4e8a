"""Device selection: CUDA when present, CPU otherwise."""

import torch

from .errors import LmcClaimsError, unknown_name
from .names import DEVICE_CHOICES


def resolve_device(name: str = "auto") -> torch.device:
    if name not in DEVICE_CHOICES:
        raise unknown_name("device", name, DEVICE_CHOICES)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise LmcClaimsError(
            "CUDA was requested (--claims-device cuda) but torch sees no CUDA device.",
            "run with --claims-device auto or cpu, or install a CUDA build of torch on a GPU machine.",
        )
    return torch.device(name)
