"""Measurements behind mode combinability (Csiszárik, Kiss, Kőrösi-Szabó, Muntag, Papp, Varga
2023, arXiv 2308.11511): element-wise combinations of aligned and unaligned models, perturbed
matchings, transitivity through a common model, and how much the combinations' predictions
differ from their endpoints'. The pure maths is in `metrics/combination.py`; claims in
`lmc_claims/catalogue/csiszarik2023.py`.

Every function returns an xarray Dataset with a `pair` dimension (one row per independent model
pair) holding the raw samples and the per-pair statistics the claims judge.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import xarray as xr

from ..designs import Pair
from ..lab import Setting
from ..metrics.combination import (SCHEMES, coefficients, combine, constant_coefficients, disagreement,
                                   moved_fraction, outputs, perturb_perms, prepared)
from ..metrics.interpolation import DEFAULT_LAMBDAS, chord_barrier
from ..metrics.statistics import spearman
from ..permutation.apply import apply_permutation
from ..scales import FRACTIONS
from ..seeds import generator
from .shared import SPLITS, barrier_of, interpolation, pair_coords, path_curves

PATHS = ("naive", "wm")  # unaligned vs weight-matched B: the same c is applied to both
ENDPOINTS = ("A", "B")


def _var(dims, values, long_name: str, units: str):
    return (dims, values, {"long_name": long_name, "units": units})


def samples(s: Setting, pairs: Sequence[Pair], n: int) -> xr.Dataset:
    """Test loss, accuracy and prediction disagreement of theta_c for every pair, search (naive,
    WM), scheme and sample (n per scheme), with the endpoints and the midpoint c = 1/2. Shared by
    the combinability and non-vacuity claims (computed once per session)."""
    return s.memo("csiszarik2023-samples", tuple(pairs), n, compute=lambda: _samples(s, pairs, n))


def _samples(s: Setting, pairs: Sequence[Pair], n: int) -> xr.Dataset:
    x, y = s.eval_sets["test"]
    shape = (len(pairs), len(PATHS), len(SCHEMES), n)
    per_sample = {v: np.full(shape, np.nan) for v in ("loss", "accuracy", "with_a", "with_b", "with_next")}
    mid = {v: np.zeros(shape[:2]) for v in ("loss", "accuracy")}
    ends = {"loss": np.zeros((len(pairs), 2)), "accuracy": np.zeros((len(pairs), 2)),
            "disagreement": np.zeros(len(pairs)), "self_disagreement": np.zeros(len(pairs))}
    for i, pair in enumerate(pairs):
        out = [outputs(s.template, s.model(m), x, y) for m in pair]
        ends["loss"][i], ends["accuracy"][i] = [o[0] for o in out], [o[1] for o in out]
        ends["disagreement"][i] = disagreement(out[0][2], out[1][2])
        again = outputs(s.template, s.model(pair[0]), x, y)[2]  # the same model evaluated again
        ends["self_disagreement"][i] = disagreement(out[0][2], again)
        cells, tasks = [], []  # (search, scheme, sample), scheme None for the midpoint c = 1/2
        for j, search in enumerate(PATHS):
            a, b = s.model(pair[0]), s.permuted(search, *pair)
            cells.append((j, None, None))
            tasks.append(functools.partial(_combined, s, a, b, functools.partial(constant_coefficients, s.spec, a, 0.5), x, y))
            for k, scheme in enumerate(SCHEMES):
                for q in range(n):
                    # The search is not part of the seed: naive and WM get the same c (a paired comparison).
                    c = functools.partial(coefficients, s.spec, a, scheme, generator("combination", *pair, k, q))
                    cells.append((j, k, q))
                    tasks.append(functools.partial(_combined, s, a, b, c, x, y))
        seen = {}
        for (j, k, q), (loss, acc, pred) in zip(cells, s.concurrently(tasks)):
            if k is None:
                mid["loss"][i, j], mid["accuracy"][i, j] = loss, acc
                continue
            at = (i, j, k, q)
            per_sample["loss"][at], per_sample["accuracy"][at] = loss, acc
            per_sample["with_a"][at] = disagreement(pred, out[0][2])
            per_sample["with_b"][at] = disagreement(pred, out[1][2])
            seen.setdefault((j, k), []).append(pred)
        if n > 1:
            for (j, k), preds in seen.items():
                per_sample["with_next"][i, j, k] = [disagreement(preds[q], preds[(q + 1) % n]) for q in range(n)]
    dims = ("pair", "search", "scheme", "sample")
    return xr.Dataset(
        {
            "combination_loss": _var(dims, per_sample["loss"], "test cross-entropy of theta_c", "nats"),
            "combination_accuracy": _var(dims, per_sample["accuracy"], "test accuracy of theta_c", "1"),
            "disagreement_with_a": _var(dims, per_sample["with_a"], "fraction of test predictions of theta_c differing from A's", "1"),
            "disagreement_with_b": _var(dims, per_sample["with_b"], "fraction of test predictions of theta_c differing from B's", "1"),
            "disagreement_between_samples": _var(dims, per_sample["with_next"], "fraction of test predictions differing "
                                                 "between this sample and the next one of its scheme", "1"),
            "midpoint_loss": _var(("pair", "search"), mid["loss"], "test cross-entropy at c = 1/2 (the straight line's midpoint)", "nats"),
            "midpoint_accuracy": _var(("pair", "search"), mid["accuracy"], "test accuracy at c = 1/2", "1"),
            "endpoint_loss": _var(("pair", "endpoint"), ends["loss"], "test cross-entropy of each endpoint model", "nats"),
            "endpoint_accuracy": _var(("pair", "endpoint"), ends["accuracy"], "test accuracy of each endpoint model", "1"),
            "endpoints_disagreement": _var("pair", ends["disagreement"], "fraction of test predictions differing between A and B", "1"),
            "self_disagreement": _var("pair", ends["self_disagreement"],
                                      "fraction of test predictions differing between A and A evaluated again", "1"),
        },
        coords={"pair": pair_coords(pairs), "search": list(PATHS), "scheme": list(SCHEMES), "sample": np.arange(n),
                "endpoint": list(ENDPOINTS)},
        attrs={"batchnorm_reset": int(s.bn_data is not None), "n_test_eval": len(y), "samples_per_scheme": n,
               "combination": "theta_c = c * theta_A + (1 - c) * pi(theta_B) on the permutation spec's tensors, others from A"},
    )


def _combined(s: Setting, a, b, make_c, x, y, template):
    """Test loss, accuracy and predictions of theta_c = c a + (1 - c) b, c = make_c() (BatchNorm
    statistics reset): one of a measurement's tasks (`Setting.concurrently`)."""
    return outputs(template, prepared(template, combine(a, b, make_c()), s.bn_data), x, y)


def combinability(s: Setting, pairs: Sequence[Pair], n: int) -> xr.Dataset:
    """Claim 11: per pair and scheme, the share of the unaligned combinations' excess loss
    (mean loss of theta_c minus the endpoints' mean loss) that weight matching removes."""
    ds = samples(s, pairs, n).copy()
    ds["endpoint_mean_loss"] = ds.endpoint_loss.mean("endpoint").assign_attrs(long_name="mean test loss of A and B", units="nats")
    ds["excess_loss"] = (ds.combination_loss.mean("sample") - ds.endpoint_mean_loss).assign_attrs(
        long_name="mean over samples of the test loss of theta_c minus the endpoints' mean loss", units="nats")
    ds["midpoint_excess_loss"] = (ds.midpoint_loss - ds.endpoint_mean_loss).assign_attrs(
        long_name="test loss at c = 1/2 minus the endpoints' mean loss", units="nats")
    ds["premise_wm_barrier_test"] = premise_barrier(s, pairs, "test")
    removed = 1 - ds.excess_loss.sel(search="wm", drop=True) / ds.excess_loss.sel(search="naive", drop=True)
    ds["excess_removed"] = removed.assign_attrs(long_name="1 - excess loss after WM / excess loss unaligned", units="1")
    for scheme in SCHEMES:
        ds[f"excess_removed_{scheme}"] = removed.sel(scheme=scheme, drop=True).assign_attrs(
            long_name=f"1 - excess loss after WM / unaligned, {scheme} coefficients", units="1")
    return ds


def non_vacuity(s: Setting, pairs: Sequence[Pair], n: int) -> xr.Dataset:
    """Claim 14: how often the WM-aligned combinations predict differently from the nearer of
    their endpoints, against a model's disagreement with itself and the endpoints' with each other."""
    ds = samples(s, pairs, n).copy()
    wm = lambda v: ds[v].sel(search="wm", drop=True)
    nearest = np.minimum(wm("disagreement_with_a"), wm("disagreement_with_b"))
    ds["nearest_endpoint_disagreement"] = nearest.assign_attrs(
        long_name="WM combinations: min over the endpoints of the fraction of differing test predictions", units="1")
    per_scheme = nearest.mean("sample")
    ds["disagreement_per_scheme"] = per_scheme.assign_attrs(
        long_name="mean over samples of the nearest-endpoint disagreement, per scheme", units="1")
    ds["disagreement_min"] = per_scheme.min("scheme").assign_attrs(
        long_name="the least non-vacuous scheme's mean nearest-endpoint disagreement", units="1")
    ds["disagreement_excess"] = (ds.disagreement_min - ds.self_disagreement).assign_attrs(
        long_name="disagreement_min minus the disagreement of a model with itself", units="1")
    ds["disagreement_ratio"] = (ds.disagreement_min / ds.endpoints_disagreement).assign_attrs(
        long_name="disagreement_min / disagreement between the endpoints A and B", units="1")
    return ds


def robustness(s: Setting, pairs: Sequence[Pair], n: int) -> xr.Dataset:
    """Claim 13: uniform-hypercube combinations of A with B permuted by a WM matching in which a
    fraction f of every permutation's matched pairs was broken, for f in FRACTIONS (n per f)."""
    ds = s.memo("csiszarik2023-robustness", tuple(pairs), n, compute=lambda: _robustness(s, pairs, n)).copy()
    ds["premise_wm_barrier_test"] = premise_barrier(s, pairs, "test")
    return ds


def premise_barrier(s: Setting, pairs: Sequence[Pair], split: str) -> xr.DataArray:
    """The premise of the claims about aligned models: the WM barrier between A and pi(B), per pair."""
    return barrier_of(interpolation(s, pairs), "wm", split).assign_attrs(
        long_name=f"premise: {split} loss barrier between A and pi(B) after WM", units="nats")


def _robustness(s: Setting, pairs: Sequence[Pair], n: int) -> xr.Dataset:
    x, y = s.eval_sets["test"]
    shape = (len(pairs), len(FRACTIONS), n)
    rows = {v: np.zeros(shape) for v in ("loss", "accuracy", "moved")}
    end_loss = np.zeros((len(pairs), 2))
    for i, pair in enumerate(pairs):
        a, b = s.model(pair[0]), s.model(pair[1])
        end_loss[i] = [outputs(s.template, m, x, y)[0] for m in (a, b)]
        perms = s.match("wm", *pair)

        def sample(q, k, template):
            # One generator per sample: the broken pairs first, then the coefficients.
            gen = generator("perturbed-combination", *pair, q, k)
            broken = perturb_perms(perms, FRACTIONS[q], gen, s.spec)
            c = coefficients(s.spec, a, "uniform", gen)
            loss, acc, _ = _combined(s, a, apply_permutation(s.spec, broken, b), lambda: c, x, y, template)
            return loss, acc, moved_fraction(perms, broken)

        cells = [(q, k) for q in range(len(FRACTIONS)) for k in range(n)]
        for (q, k), row in zip(cells, s.concurrently([functools.partial(sample, q, k) for q, k in cells])):
            rows["loss"][i, q, k], rows["accuracy"][i, q, k], rows["moved"][i, q, k] = row
    dims = ("pair", "fraction", "sample")
    ds = xr.Dataset(
        {
            "perturbed_loss": _var(dims, rows["loss"], "test cross-entropy of theta_c (uniform c) with a perturbed WM matching", "nats"),
            "perturbed_accuracy": _var(dims, rows["accuracy"], "test accuracy of theta_c (uniform c) with a perturbed WM matching", "1"),
            "units_moved": _var(dims, rows["moved"], "fraction of all matched units whose partner was changed", "1"),
            "endpoint_loss": _var(("pair", "endpoint"), end_loss, "test cross-entropy of each endpoint model", "nats"),
        },
        coords={"pair": pair_coords(pairs), "fraction": list(FRACTIONS), "sample": np.arange(n), "endpoint": list(ENDPOINTS)},
        attrs={"batchnorm_reset": int(s.bn_data is not None), "n_test_eval": len(y), "samples_per_fraction": n,
               "perturbation": "per permutation, round(f * n) matched units rotated along a random cycle"},
    )
    return robustness_statistics(ds)


def robustness_statistics(ds: xr.Dataset) -> xr.Dataset:
    """The statistics claim 13 judges, from the perturbed samples."""
    ds["perturbed_excess_loss"] = (ds.perturbed_loss.mean("sample") - ds.endpoint_loss.mean("endpoint")).assign_attrs(
        long_name="mean test loss of theta_c minus the endpoints' mean loss", units="nats")
    excess = ds.perturbed_excess_loss
    ds["excess_removed_at_quarter"] = (1 - excess.sel(fraction=0.25, drop=True) / excess.sel(fraction=1.0, drop=True)).assign_attrs(
        long_name="1 - excess loss with 25% of the matches broken / excess loss with all broken", units="1")
    ds["loss_rank_correlation"] = xr.DataArray(
        [spearman(ds.fraction.values, row) for row in ds.perturbed_loss.mean("sample").values], dims="pair",
        attrs={"long_name": "Spearman correlation between the broken fraction and the mean test loss", "units": "1"})
    ds["steepest_relative_rise"] = xr.DataArray(
        [steepest_relative_rise(ds.fraction.values, row) for row in excess.values], dims="pair",
        attrs={"long_name": "largest rise of the excess loss between adjacent fractions, per unit of f, over its "
                            "average rise E(1) - E(0) over [0, 1] (1: linear; large: a cliff)", "units": "1"})
    return ds


def steepest_relative_rise(fractions, excess) -> float:
    """max over adjacent fractions of (E(f_i+1) - E(f_i)) / (f_i+1 - f_i), divided by (E(f_max) - E(f_min))
    / (f_max - f_min); NaN when the excess does not rise overall (nothing to degrade)."""
    f, e = np.asarray(fractions, float), np.asarray(excess, float)
    total = (e[-1] - e[0]) / (f[-1] - f[0])
    if not np.isfinite(total) or total <= 0:
        return float("nan")
    return float(np.max(np.diff(e) / np.diff(f)) / total)


def transitivity(s: Setting, pairs: Sequence[Pair]) -> xr.Dataset:
    """Claim 12: test loss along the straight line between pi_A(A) and pi_B(B), both weight-matched
    onto a common third model C, beside the naive and direct-WM lines of `shared.interpolation`."""
    return s.memo("csiszarik2023-transitivity", tuple(pairs), compute=lambda: _transitivity(s, pairs))


def _transitivity(s: Setting, pairs: Sequence[Pair]) -> xr.Dataset:
    direct = interpolation(s, pairs)[["loss", "accuracy"]]
    shape = (len(pairs), 1, len(SPLITS), len(DEFAULT_LAMBDAS))
    loss, acc = np.zeros(shape), np.zeros(shape)
    third = s.scale.thirds(pairs)  # each pair's own third model: the samples share no model
    s.prefetch([("wm", c, m) for c, pair in zip(third, pairs) for m in pair])
    paths = [(s.permuted("wm", c, sa), s.permuted("wm", c, sb)) for c, (sa, sb) in zip(third, pairs)]
    for i, by_split in enumerate(path_curves(s, paths)):
        for k, split in enumerate(SPLITS):
            loss[i, 0, k], acc[i, 0, k] = by_split[split].loss, by_split[split].accuracy
    dims = ("pair", "search", "split", "lam")
    trans = xr.Dataset(
        {"loss": (dims, loss), "accuracy": (dims, acc)},
        coords={"pair": pair_coords(pairs), "search": ["transitive"], "split": list(SPLITS), "lam": DEFAULT_LAMBDAS},
    )
    ds = xr.concat([direct, trans], dim="search")
    ds["loss"].attrs.update(long_name="cross-entropy along the path (transitive: pi_A(A) to pi_B(B))", units="nats")
    ds["accuracy"].attrs.update(long_name="accuracy along the path", units="1")
    ds["third_model"] = ("pair", np.array(third), {"long_name": "seed of the common model C both are matched onto "
                                                                 "(the pair's own third model)"})
    # The premise: both re-basings onto C connect, the larger of the two WM barriers per pair.
    onto_c = interpolation(s, [(c, m) for c, pair in zip(third, pairs) for m in pair], ("wm",))
    rebased = onto_c.loss_barrier.sel(search="wm", split="train", drop=True).values.reshape(len(pairs), 2)
    ds["premise_rebasin_barrier_train"] = ("pair", rebased.max(axis=1), {
        "long_name": "premise: the larger train loss barrier of C to pi_A(A) and C to pi_B(B) after WM", "units": "nats"})
    ds.attrs.update(batchnorm_reset=int(s.bn_data is not None), n_test_eval=len(s.eval_sets["test"][1]),
                    n_train_eval=len(s.eval_sets["train"][1]))
    ds["loss_barrier"] = chord_barrier(ds.loss).assign_attrs(
        long_name="loss barrier: max over lam of loss minus the endpoints' chord", units="nats")
    for split in SPLITS:
        barrier = ds.loss_barrier.sel(split=split, drop=True)
        for search in ("naive", "wm", "transitive"):
            ds[f"barrier_{search}_{split}"] = barrier.sel(search=search, drop=True).assign_attrs(
                long_name=f"{split} loss barrier, {search} path", units="nats")
        ds[f"barrier_reduction_transitive_{split}"] = (1 - ds[f"barrier_transitive_{split}"] / ds[f"barrier_naive_{split}"]).assign_attrs(
            long_name=f"1 - {split} barrier between pi_A(A) and pi_B(B) / naive {split} barrier between A and B", units="1")
        ds[f"transitive_over_direct_{split}"] = (ds[f"barrier_transitive_{split}"] / ds[f"barrier_wm_{split}"]).assign_attrs(
            long_name=f"{split} barrier via the common model / barrier after matching B directly onto A", units="1")
    return ds
