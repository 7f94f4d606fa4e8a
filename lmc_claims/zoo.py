"""Content-addressed cache of trained models and permutation searches.

Key = sha256 of canonical JSON of (kind, full config, ZOO_VERSION, package version,
torch version, device kind). An entry is a directory holding `payload.pt`,
`meta.json` (with the payload's sha256) and `COMPLETE`, written last. Entries are
built in a temporary directory beside the target and renamed into place; a file lock
per key makes concurrent pytest-xdist workers build each entry once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import torch
from filelock import FileLock

from .version import __version__
from .errors import ensure_writable_dir

# Bump by hand whenever training or matching code changes its results or payloads (4: seeds.sub_seed;
# 5: STE payloads hold their first projection, and STE runs with one intra-op thread).
ZOO_VERSION = 5

Payload = dict[str, torch.Tensor]


class CorruptEntryWarning(UserWarning):
    pass


def default_cache_dir() -> Path:
    """Outside the source tree and kept between runs: $LMC_CLAIMS_CACHE, else the user cache."""
    if os.environ.get("LMC_CLAIMS_CACHE"):
        return Path(os.environ["LMC_CLAIMS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lmc-claims"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Zoo:
    def __init__(self, root: Path | str):
        self.root = Path(root)
        ensure_writable_dir(self.root, "model cache directory",
                            "pass a writable directory with --claims-cache-dir or set LMC_CLAIMS_CACHE.")

    def key(self, kind: str, config: dict, device_kind: str) -> str:
        ident = {
            "kind": kind,
            "config": config,
            "zoo_version": ZOO_VERSION,
            "package_version": __version__,
            "torch": torch.__version__,
            "device_kind": device_kind,
        }
        blob = json.dumps(ident, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def entry_dir(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def fetch(self, kind: str, config: dict, device_kind: str, build: Callable[[], Payload]) -> tuple[Payload, bool]:
        """The cached payload for this config, building it once if absent. Returns (payload, built)."""
        key = self.key(kind, config, device_kind)
        entry = self.entry_dir(kind, key)
        entry.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(entry) + ".lock"):
            payload = self._load(entry)
            if payload is not None:
                return payload, False
            payload = build()
            self._store(entry, payload, {"kind": kind, "config": config, "device_kind": device_kind, "key": key})
            return payload, True

    def _load(self, entry: Path) -> Payload | None:
        if not entry.exists():
            return None
        problem = None
        if not (entry / "COMPLETE").exists():
            problem = "incomplete (interrupted while being written)"
        else:
            try:
                meta = json.loads((entry / "meta.json").read_text())
                if meta.get("zoo_version") != ZOO_VERSION:
                    problem = f"written by an incompatible version (zoo format {meta.get('zoo_version')})"
                elif _sha256(entry / "payload.pt") != meta["sha256"]:
                    problem = "its weights file does not match its checksum"
                else:
                    # weights_only=True: the payload is never executed, whatever it holds.
                    return torch.load(entry / "payload.pt", map_location="cpu", weights_only=True)
            # Not just (OSError, ValueError, KeyError, RuntimeError): a payload whose checksum matches
            # can still be zero-filled or foreign, and the weights-only unpickler then fails in whatever
            # way the bytes trip it (UnpicklingError, EOFError, IndexError, TypeError, AttributeError,
            # AssertionError, struct.error all occur on damaged files). Any of them means corrupt.
            except Exception as e:
                problem = f"unreadable ({type(e).__name__}: {e})"
        warnings.warn(f"Cache entry {entry} is {problem}; rebuilding it.", CorruptEntryWarning, stacklevel=3)
        shutil.rmtree(entry, ignore_errors=True)
        return None

    def _store(self, entry: Path, payload: Payload, meta: dict) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
        try:
            torch.save(payload, tmp / "payload.pt")
            meta = dict(meta, sha256=_sha256(tmp / "payload.pt"), zoo_version=ZOO_VERSION,
                        package_version=__version__, torch=torch.__version__, created=time.time())
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
            (tmp / "COMPLETE").write_text(meta["sha256"])
            for f in tmp.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            os.replace(tmp, entry)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._log_build(meta)

    def _log_build(self, meta: dict) -> None:
        """One line per entry built: lets anyone check that concurrent workers built each entry once."""
        line = json.dumps({"kind": meta["kind"], "key": meta["key"], "pid": os.getpid(), "created": meta["created"]})
        fd = os.open(self.root / "builds.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, (line + "\n").encode())  # a single small O_APPEND write is atomic
        finally:
            os.close(fd)

    def builds(self) -> list[dict]:
        path = self.root / "builds.log"
        return [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []
