"""User-facing errors: each one says what went wrong and how to fix it."""

import os
from pathlib import Path


class LmcClaimsError(Exception):
    """An error caused by input the user can fix; printed without a traceback."""

    def __init__(self, problem: str, fix: str):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}\nHow to fix: {fix}")


def unknown_name(kind: str, name: str, known) -> LmcClaimsError:
    known = sorted(known)
    return LmcClaimsError(
        f"Unknown {kind} {name!r}.",
        f"use one of: {', '.join(known)} (`lmc-claims list` shows them all).",
    )


def ensure_writable_dir(path: Path, what: str, fix: str) -> None:
    """Create `path` and prove it can be written, or raise an error naming the fix."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".lmc-claims-write-probe-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise LmcClaimsError(f"The {what} {path} cannot be written ({e.strerror or e}).", fix) from None
