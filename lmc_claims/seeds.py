"""The one way sub-seeds are derived: from a purpose and integers, the same in every process.

Python's hash() of strings changes between processes, and arithmetic schemes (a * 1000 + b)
collide; numpy's SeedSequence mixes its entropy properly. The purpose string is turned into
integers byte by byte, so it is stable too.
"""

from __future__ import annotations

import numpy as np
import torch


def sub_seed(purpose: str, *parts: int) -> int:
    """A 63-bit seed for `purpose` (e.g. "wm", "train-order") and integer parts (seeds, indices)."""
    entropy = [*purpose.encode("utf-8"), 0, *(int(p) for p in parts)]
    return int(np.random.SeedSequence(entropy).generate_state(2, np.uint64)[0] >> np.uint64(1))


def generator(purpose: str, *parts: int) -> torch.Generator:
    """A CPU torch.Generator seeded with `sub_seed(purpose, *parts)`."""
    return torch.Generator().manual_seed(sub_seed(purpose, *parts))
