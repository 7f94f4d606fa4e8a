"""The one atomic file write: a temporary file beside the target, then a rename.

Readers never see half a file, and a crash or Ctrl-C leaves at most a hidden `.NAME-*.tmp`
that is removed on the way out. Used for netCDF measurements, report files and JSON alike.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import LmcClaimsError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], None], fix: str) -> Path:
    """Call `write(tmp)` on a temporary path in `path`'s directory, then rename it to `path`.

    `fix` is the advice shown when the directory cannot be written."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise LmcClaimsError(f"Cannot write {path.name} into {path.parent} ({e.strerror or e}).", fix) from None
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_bytes(path: Path, data: bytes | str, fix: str) -> Path:
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return atomic_write(path, lambda tmp: tmp.write_bytes(payload), fix)
