"""The published protocols' building blocks: disjoint model triples and sets, the gradual-degradation
statistic, the warm-up-cosine schedule, the weights' participation ratio and the midpoint excess."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import xarray as xr

from lmc_claims.measurements.csiszarik2023 import steepest_relative_rise
from lmc_claims.designs import model_sets, model_triples
from lmc_claims.measurements.shared import midpoint_excess
from lmc_claims.metrics.geometry import weight_participation_ratio, weighted_participation_ratio
from lmc_claims.scales import FRACTIONS, SCALES
from lmc_claims.training import Recipe, lr_factor


@pytest.mark.parametrize("name", sorted(SCALES))
@pytest.mark.parametrize("start", [0, 1000])
def test_triples_and_merge_sets_share_no_model_and_extend_the_pairs(name, start):
    scale = replace(SCALES[name], seed_start=start)
    for n in scale.looks(True):  # every look of the sequential design: its samples extend the earlier ones
        pairs = scale.sample_pairs(n)
        triples = model_triples(pairs, scale.thirds(pairs))
        assert len(triples) == n >= 3  # one independent sample per pair
        seeds = [m for t in triples for m in t]
        assert len(seeds) == len(set(seeds)) and min(seeds) >= start
        assert [t[:2] for t in triples] == pairs  # b's matching onto a is the pair's
        assert pairs[:scale.n_pairs] == scale.pairs  # a later look keeps the first look's samples
        for size in (3, 4, 5):
            sets = model_sets(triples, size)
            flat = [m for s in sets for m in s]
            assert sets and all(len(s) == size for s in sets) and len(flat) == len(set(flat)) and set(flat) <= set(seeds)


def test_the_first_look_keeps_the_layout_every_run_has_had():
    """Pairs (0, 1), (2, 3), (4, 5), then the third models 6, 7, 8: a cache filled before the
    sequential design still holds the first look's models."""
    scale = SCALES["ci"]
    assert scale.pairs == [(0, 1), (2, 3), (4, 5)] and scale.thirds(scale.pairs) == [6, 7, 8]
    assert scale.sample_pairs(5)[3:] == [(9, 10), (12, 13)] and scale.thirds(scale.sample_pairs(5))[3:] == [11, 14]


def test_steepest_relative_rise_passes_flat_then_gradual_curves_and_fails_cliffs():
    f = FRACTIONS
    assert steepest_relative_rise(f, [0, 0.1, 0.25, 0.5, 1.0]) == pytest.approx(1.0)  # linear
    assert steepest_relative_rise(f, [0, 0, 0, 1 / 3, 1]) <= 2.5  # flat, then gradual
    assert steepest_relative_rise(f, [0, 0.8, 1, 1, 1]) > 2.5  # a cliff at small f
    assert math.isnan(steepest_relative_rise(f, [0.2, 0.2, 0.2, 0.2, 0.2]))  # nothing degrades


def test_warmup_starts_at_1e_6_and_the_cosine_ends_at_zero():
    r = Recipe(lr=0.1, warmup_steps=10)
    assert lr_factor(r, 100, 0) * r.lr == pytest.approx(1e-6)
    assert lr_factor(r, 100, 10) == pytest.approx(1.0) and lr_factor(r, 100, 100) == pytest.approx(0.0)
    plain = Recipe()
    assert [lr_factor(plain, 10, s) for s in (0, 5, 10)] == pytest.approx([1.0, 0.5, 0.0])


def test_weight_participation_ratio_counts_equal_directions():
    q = torch.linalg.qr(torch.randn(20, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))[0]
    w = q[:, :5] @ torch.diag(torch.ones(5, dtype=torch.float64)) @ q[:5, :]  # five equal singular values
    assert weight_participation_ratio(w) == pytest.approx(5.0)
    x = torch.randn(4000, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert weighted_participation_ratio(w, x) == pytest.approx(5.0, rel=0.1)  # isotropic inputs change little


def test_midpoint_excess_keeps_its_sign_where_the_barrier_is_clipped():
    lam = np.linspace(0, 1, 25)
    dip = 1.0 - 0.2 * np.sin(np.pi * lam)  # the path dips below both endpoints
    ds = xr.Dataset({"loss": (("pair", "search", "split", "lam"), dip[None, None, None, :])},
                    coords={"pair": ["0-1"], "search": ["wm"], "split": ["test"], "lam": lam})
    assert midpoint_excess(ds, "wm", "test").values.tolist() == pytest.approx([-0.2])
