"""Ito, Yamada, Kumagai 2024 (arXiv 2402.04051), §3: WM barely reduces the L2 distance.

Statement: the permutation found by weight matching does not make the models close in L2:
r = ||theta_A - pi(theta_B)|| / ||theta_A - theta_B|| stays near 1, although the barrier vanishes.
Metric: r per independent model pair (weights and biases of every layer; MLPs have no norm
layers); the test-loss barrier reduction 1 - B_WM / B_naive; r of random permutations for scale.
Criteria (../shared/CLAIMS.md item 2, our CPU criterion): r >= 0.7 and barrier reduction >= 0.8,
each with a one-sided 95% t-bound over pairs.
"""

import pytest

from lmc_claims import measure

pytestmark = pytest.mark.claims
CLAIM = "ito2024-l2-distance"


def test_wm_barely_reduces_l2_distance(setting, claims_lab, verify):
    arch, dataset, width = setting
    ds = measure.distances(claims_lab, arch, dataset, width)
    curves = measure.interpolation(claims_lab, arch, dataset, width)
    b = curves.loss_barrier.sel(split="test", drop=True)
    ds["barrier_naive"] = b.sel(search="naive", drop=True).assign_attrs(units="nats")
    ds["barrier_wm"] = b.sel(search="wm", drop=True).assign_attrs(units="nats")
    ds["barrier_reduction"] = (1 - ds.barrier_wm / ds.barrier_naive).assign_attrs(
        long_name="1 - test loss barrier after WM / naive test loss barrier", units="1")
    ds = ds.merge(curves)
    verify(CLAIM, ds, config={"arch": arch, "dataset": dataset, "width": width},
           seeds=[s for p in claims_lab.scale.pairs for s in p])
