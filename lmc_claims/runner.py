"""Run wiring: the executor a run asked for, the LocalCluster pytest-xdist workers share, and the
prebuild of everything the collected claim tests need before the first one runs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

import pytest

from .options import Options
from .params import claim_ids_of, node_params

if TYPE_CHECKING:
    from .plan import Plan


def make_executor(options: Options, device, zoo, progress):
    """The run's executor: local (default) or a Dask client (build/dask_cluster.py)."""
    from .build.choose import make_executor as make

    return make(options.executor, device, scheduler=options.scheduler, progress=progress,
                shared_cache_root=zoo.root.resolve() if options.shared_cache else None)


def plan_of_items(scale, items: Sequence[pytest.Item]) -> "Plan":
    """The plan of the collected claim tests (skipped ones left out): each test's setting(s) from
    its parameters, what it needs from its claim's declaration."""
    from .catalogue import get_claim
    from .designs import two_layer_settings
    from .judging import TWO_LAYER
    from .plan import Plan

    plan = Plan({}, scale)
    for item in items:
        if "claims" not in item.keywords or item.get_closest_marker("skip") is not None:
            continue
        params = node_params(item)
        for claim_id in claim_ids_of(item):
            claim = get_claim(claim_id)
            if "variation" in params:
                keys = two_layer_settings(scale, params["variation"])
            elif claim.needs.family == TWO_LAYER:
                keys = two_layer_settings(scale, None)
            elif "width" in params:
                keys = [(params["arch"], params["dataset"], params["width"])]
            elif "arch" in params:
                keys = [(params["arch"], params["dataset"], w) for w in scale.run(params["arch"], params["dataset"]).widths]
            else:  # a claim test parametrised in a way this plan does not know: nothing up front
                continue
            plan.add_claim(claim, keys)
    return plan


def prebuild(lab, items: list[pytest.Item]) -> None:
    """Submit every model and matching the collected claim tests need (plan.py) and store them as
    they arrive, before the first claim test runs."""
    plan = plan_of_items(lab.scale, items)
    by_look = plan.jobs_by_look(lab)
    lab.progress(lab.executor.prebuild(by_look[0][1], lab.builds).line())
    if len(by_look) > 1:  # built only for the claim tests still undecided after the first look
        later = ", ".join(f"{len(jobs)} more at {n} samples" for n, jobs in by_look[1:])
        lab.progress(f"later looks, for claim tests still undecided: at most {later}")


def share_cluster(options: Options):
    """Under pytest-xdist with --claims-executor=dask and no scheduler: one LocalCluster for all
    workers, its address exported to them ($LMC_CLAIMS_SCHEDULER); None when a scheduler is given."""
    from .build.dask_cluster import start_local_cluster
    from .build.executor import SCHEDULER_ENV
    from .device import resolve_device

    if options.scheduler or os.environ.get(SCHEDULER_ENV):
        return None
    cluster = start_local_cluster(resolve_device(options.device_name))
    os.environ[SCHEDULER_ENV] = cluster.scheduler_address  # the workers, started next, inherit it
    return cluster


def estimate_lines(scale, items: Sequence[pytest.Item]) -> list[str]:
    """`lmc-claims plan`'s estimate for the collected claim tests (jobs counted, no data read)."""
    import tempfile

    import torch

    from .estimate import summary
    from .lab import Lab
    from .zoo import Zoo

    lab = Lab(scale, torch.device("cpu"), Zoo(tempfile.mkdtemp(prefix="lmc-claims-plan-")))
    lab.builds.load_data = False
    return summary(plan_of_items(scale, items), lab)


def missing_data(scale) -> list[str]:
    """One line per dataset the scale's runs need that the data root lacks: which files to put where
    (their claim tests are skipped with the same message)."""
    from .data import availability

    datasets = dict.fromkeys(r.dataset for r in scale.runs + scale.extra_runs)
    out = [message for d in datasets if (message := availability(d))]
    if out:
        out.append("the claim tests of these datasets are skipped; `lmc-claims datasets` lists what is present.")
    return out
