"""Progress lines of long work: one per model trained or permutation searched; quiet under -q."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Progress:
    quiet: bool = False
    write: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            with self._lock:  # models trained at once report from their own threads
                self.write(f"[lmc-claims] {msg}")
