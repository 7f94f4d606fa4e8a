"""A claims run's options as pytest parsed them, checked up front so that a typo fails at start-up,
not mid-run: the scale, architectures, datasets, claims, device, directories and executor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from .errors import ensure_writable_dir


def claims_selected(config: pytest.Config) -> bool:
    """Whether the run selects the claim tests (`-m claims`)."""
    expr = config.option.markexpr or ""
    return bool(re.search(r"\bclaims\b", expr)) and not re.search(r"\bnot\s+claims\b", expr)


def split_list(value: str | None) -> list[str] | None:
    return [x.strip() for x in value.split(",") if x.strip()] if value else None


@dataclass
class Options:
    scale_name: str
    archs: list[str] | None
    claim_ids: list[str] | None
    device_name: str
    cache_dir: Path | None
    report_dir: Path
    datasets: list[str] | None
    data_root: str | None
    quiet: bool
    is_worker: bool
    device_label: str = ""
    _validated: bool = False
    seed_start: int = 0  # --claims-seeds: the first model seed (another start: a fresh sample)
    executor: str = "local"  # where models and matchings are built: "local" or "dask" (build/)
    scheduler: str | None = None  # the Dask scheduler's address (None: $LMC_CLAIMS_SCHEDULER, else a LocalCluster)
    shared_cache: bool = False  # Dask workers write the cache themselves

    @classmethod
    def from_config(cls, config: pytest.Config) -> "Options":
        opt = config.option
        return cls(
            scale_name=opt.claims_scale,
            archs=split_list(opt.claims_arch),
            claim_ids=split_list(opt.claims_id),
            datasets=split_list(opt.claims_dataset),
            data_root=opt.claims_data_root,
            device_name=opt.claims_device,
            cache_dir=Path(opt.claims_cache_dir).expanduser() if opt.claims_cache_dir else None,
            report_dir=(Path(config.invocation_params.dir) / opt.claims_report_dir).resolve(),
            quiet=config.get_verbosity() < 0,
            is_worker=hasattr(config, "workerinput"),
            executor=getattr(opt, "claims_executor", "local"),
            scheduler=getattr(opt, "claims_scheduler", None),
            shared_cache=getattr(opt, "claims_shared_cache", False),
            seed_start=getattr(opt, "claims_seeds", 0) or 0,
        )

    @property
    def customised(self) -> bool:
        """Whether any claims option differs from its default (then it is validated even without -m claims)."""
        return (self.scale_name != "ci" or self.device_name != "auto" or bool(self.seed_start or self.archs or self.datasets
                                                                                  or self.claim_ids))

    def validate(self, selected: bool) -> None:
        """Check every name and directory up front, so that a typo fails at start-up, not mid-run."""
        from .catalogue import get_claim
        from .data import set_data_root
        from .device import resolve_device

        for claim_id in self.claim_ids or ():
            get_claim(claim_id)
        if self.data_root:
            set_data_root(self.data_root)
        self.scale()  # validates architecture and dataset names
        self.device_label = str(resolve_device(self.device_name))
        if selected and not self.is_worker:
            ensure_writable_dir(self.report_dir, "report directory", "pass a writable directory with --claims-report-dir.")

    def scale(self):
        """The scale, restricted to / extended with --claims-arch and --claims-dataset (validated)."""
        from .data import INPUT_SHAPES, check_dataset_name
        from .models import ARCHITECTURES
        from .models.registry import get_architecture, validate
        from .scales import get_scale

        scale = get_scale(self.scale_name)
        for a in self.archs or ():
            get_architecture(a)
        for d in self.datasets or ():
            check_dataset_name(d)
        scale = scale.select(self.archs, self.datasets)
        if self.seed_start:
            from dataclasses import replace

            scale = replace(scale, seed_start=self.seed_start)
        if not self._validated:
            for r in scale.runs:
                if r.arch not in ARCHITECTURES:
                    validate(r.arch, INPUT_SHAPES[r.dataset])
            self._validated = True
        return scale
