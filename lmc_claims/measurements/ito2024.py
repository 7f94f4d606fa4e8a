"""Measurements behind Ito, Yamada, Kumagai 2024 (arXiv 2402.04051): singular values under
permutation, L2 distance after weight matching, singular-vector alignment (O_k and R), and
merging several models by WM and by STE. Claims: `lmc_claims/catalogue/ito2024.py`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import xarray as xr

from ..lab import Pair, Setting
from ..matching.merge import average
from ..metrics.interpolation import DEFAULT_LAMBDAS, evaluate, interpolation_curve, reset_bn_stats
from ..metrics.spectral import ito_r_terms, layer_svds, side_overlaps, singular_values, svd, vector_cosines, weight_matrices
from ..permutation.apply import apply_permutation, random_perms
from ..scales import ITO_R_GAMMAS, K_FRACTIONS, TOP_FRACTION
from ..seeds import generator
from .shared import barrier_of, distances, interpolation, pair_coords, random_variants

ALIGNMENT_SEARCHES = ("naive", "random", "wm", "ste")


def singular_value_change(s: Setting, seeds: Sequence[int]) -> xr.Dataset:
    """Per model and layer: how much a random permutation changes the singular values (exact
    maths: rounding only) and how far it moves the top singular vector."""
    change, moved, layers = [], [], None
    for seed in seeds:
        params = s.model(seed)
        perms = random_perms(s.spec, params, generator("sv-perms", seed))
        before = weight_matrices(s.spec, params)
        after = weight_matrices(s.spec, apply_permutation(s.spec, perms, params))
        layers = [w.name for w in before]
        change.append([float((singular_values(a.matrix) - singular_values(b.matrix)).abs().max() /
                             singular_values(a.matrix)[0]) for a, b in zip(before, after)])
        moved.append([float(1 - (svd(a.matrix)[0][:, 0] @ svd(b.matrix)[0][:, 0]).abs()) for a, b in zip(before, after)])
    ds = xr.Dataset(
        {
            "rel_sv_change": (("seed", "layer"), np.array(change),
                              {"long_name": "max_i |s_i(W) - s_i(PWP^T)| / s_1(W)", "units": "1"}),
            "top_vector_moved": (("seed", "layer"), np.array(moved),
                                 {"long_name": "1 - |cos| between top left singular vectors before and after", "units": "1"}),
        },
        coords={"seed": list(seeds), "layer": layers},
    )
    ds["max_rel_sv_change"] = ds.rel_sv_change.max("layer").assign_attrs(units="1")
    return ds


def shrink_distance(s: Setting, pairs: Sequence[Pair], target: xr.DataArray, steps: int = 6) -> xr.DataArray:
    """Per pair: the largest t for which B_t = A + t (B - A), *without* matching, has a test loss
    barrier no larger than `target` (the barrier WM reaches), found by bisection on t in [0, 1].
    t is also the distance ratio ||A - B_t|| / ||A - B|| needed to reach that barrier by shrinking."""
    x, y = s.eval_sets["test"]
    out = []
    for pair, goal in zip(pairs, target.values):
        a, b = s.model(pair[0]), s.model(pair[1])
        lo, hi = 0.0, 1.0
        for _ in range(steps):
            t = (lo + hi) / 2
            bt = {k: (a[k] + t * (b[k] - a[k])) if a[k].is_floating_point() else a[k] for k in a}
            if interpolation_curve(s.template, a, bt, x, y, DEFAULT_LAMBDAS, bn_data=s.bn_data).loss_barrier <= goal:
                lo = t
            else:
                hi = t
        out.append(lo)
    return xr.DataArray(np.array(out), dims="pair", coords={"pair": pair_coords(pairs)},
                        attrs={"long_name": "distance ratio needed to reach the WM barrier by shrinking B towards A", "units": "1"})


def l2_distance(s: Setting, pairs: Sequence[Pair], n_random: int) -> xr.Dataset:
    """The L2 ratio r after WM, the barrier it removes, and the distance ratio shrinking alone needs."""
    ds = distances(s, pairs, n_random)
    curves = interpolation(s, pairs)
    ds["barrier_naive"] = barrier_of(curves, "naive")
    ds["barrier_wm"] = barrier_of(curves, "wm")
    ds["barrier_reduction"] = (1 - ds.barrier_wm / ds.barrier_naive).assign_attrs(
        long_name="1 - test loss barrier after WM / naive test loss barrier", units="1")
    ds["shrink_ratio"] = shrink_distance(s, pairs, ds.barrier_wm)
    ds["l2_ratio_minus_shrink_ratio"] = (ds.l2_ratio - ds.shrink_ratio).assign_attrs(units="1")
    return ds.merge(curves)


def alignment(s: Setting, pairs: Sequence[Pair], n_random: int) -> xr.Dataset:
    """Subspace overlaps O_k (top and tail) of A with B naive / random-permuted / WM / STE-permuted."""
    return s.memo("alignment", tuple(pairs), n_random, compute=lambda: _alignment(s, pairs, n_random))


def ito_r_note(ds: xr.Dataset) -> str:
    """One line for the report: Ito et al.'s R (secondary-source form) per search, mean over pairs."""
    r = ds.ito_r.mean("pair")
    return "Ito et al.'s R as secondary sources quote it (unverified reading; data, not a criterion), mean over pairs: " + "; ".join(
        f"gamma={float(g):g}: " + ", ".join(f"{m} {float(r.sel(gamma=g, search=m)):.3f}" for m in r.search.values)
        for g in r.gamma.values)


def _alignment(s: Setting, pairs: Sequence[Pair], n_random: int) -> xr.Dataset:
    methods = ALIGNMENT_SEARCHES
    first = layer_svds(s.spec, s.model(pairs[0][0]))
    layers, max_rank = [l.name for l in first], max(l.rank for l in first)
    top = np.full((len(pairs), len(methods), len(layers), len(K_FRACTIONS)), np.nan)
    tail = np.full_like(top, np.nan)
    cosines = np.full((len(pairs), len(methods), len(layers), max_rank), np.nan)
    ito_r = np.full((len(pairs), len(methods), len(ITO_R_GAMMAS)), np.nan)
    for i, pair in enumerate(pairs):
        a = layer_svds(s.spec, s.model(pair[0]))
        variants = {
            "naive": [s.model(pair[1])],
            "random": random_variants(s, pair, n_random),
            "wm": [s.permuted("wm", *pair)],
            "ste": [s.permuted("ste", *pair)],
        }
        for j, method in enumerate(methods):
            svds = [layer_svds(s.spec, v) for v in variants[method]]
            for l, la in enumerate(a):
                for q, frac in enumerate(K_FRACTIONS):
                    top[i, j, l, q] = np.mean([side_overlaps(la, m[l], frac) for m in svds])
                    tail[i, j, l, q] = np.mean([side_overlaps(la, m[l], frac, tail=True) for m in svds])
                cos = torch.stack([vector_cosines(la, m[l]) for m in svds]).mean(0).cpu().numpy()
                cosines[i, j, l, : len(cos)] = cos
            for g, gamma in enumerate(ITO_R_GAMMAS):
                r = []
                for m in svds:
                    terms = [ito_r_terms(la, lb, gamma) for la, lb in zip(a, m)]
                    r.append(sum(t for t, _ in terms) / max(1, sum(n for _, n in terms)))
                ito_r[i, j, g] = np.mean(r)
    dims = ("pair", "search", "layer", "k_fraction")
    ds = xr.Dataset(
        {
            "overlap_top": (dims, top, {"long_name": "O_k of the top-k singular subspaces (permuted sides)", "units": "1"}),
            "overlap_tail": (dims, tail, {"long_name": "O_k of the bottom-k singular subspaces (permuted sides)", "units": "1"}),
            "rank_cosine": (("pair", "search", "layer", "rank"), cosines,
                            {"long_name": "|cos(u_i^A, u_i^B)| * |cos(v_i^A, v_i^B)| per singular-value rank", "units": "1"}),
            "ito_r": (("pair", "search", "gamma"), ito_r,
                      {"long_name": "Ito et al.'s R(theta_a, theta_b) as quoted by secondary sources (unverified reading; "
                                    "lmc_claims.metrics.spectral.ito_r_terms)", "units": "1"}),
        },
        coords={"pair": pair_coords(pairs), "search": list(methods), "layer": layers,
                "k_fraction": list(K_FRACTIONS), "rank": np.arange(max_rank), "gamma": list(ITO_R_GAMMAS)},
    )
    at = lambda var, m: ds[var].sel(search=m, k_fraction=TOP_FRACTION, drop=True).mean("layer")
    ds["top_gain_vs_naive"] = (at("overlap_top", "wm") - at("overlap_top", "naive")).assign_attrs(units="1")
    ds["top_gain_vs_random"] = (at("overlap_top", "wm") - at("overlap_top", "random")).assign_attrs(units="1")
    ds["top_minus_tail_wm"] = (at("overlap_top", "wm") - at("overlap_tail", "wm")).assign_attrs(units="1")
    ds["top_gain_wm_minus_ste"] = (at("overlap_top", "wm") - at("overlap_top", "ste")).assign_attrs(
        long_name="top-k overlap after WM minus after STE", units="1")
    return ds


def ste_alignment(s: Setting, pairs: Sequence[Pair], n_random: int) -> xr.Dataset:
    """The alignment of STE's permutations beside WM's, with the barrier STE removes."""
    ds = alignment(s, pairs, n_random)
    curves = interpolation(s, pairs, ("naive", "wm", "ste"))
    ds["ste_barrier_reduction"] = (1 - barrier_of(curves, "ste") / barrier_of(curves, "naive")).assign_attrs(
        long_name="1 - test loss barrier after STE / naive test loss barrier", units="1")
    return ds.merge(curves)


def merged(s: Setting, model_sets: Sequence[Sequence[int]], searches=("wm", "ste")) -> xr.Dataset:
    """Test loss / accuracy of N models merged onto a reference (each set's first model) by each
    search, per model set. BatchNorm statistics of every merged model are reset on training data."""
    x_test, y_test = s.eval_sets["test"]
    cols = ("naive",) + tuple(searches) + ("endpoints",)
    loss = np.zeros((len(model_sets), len(cols)))
    acc = np.zeros_like(loss)
    for k, seeds in enumerate(model_sets):
        ref, others = seeds[0], seeds[1:]
        for c, col in enumerate(cols[:-1]):
            params = average([s.model(ref)] + [s.permuted(col, ref, o) for o in others])
            if s.bn_data is not None:
                params = reset_bn_stats(s.template, params, s.bn_data)
            loss[k, c], acc[k, c] = evaluate(s.template, params, x_test, y_test)
        ends = [evaluate(s.template, s.model(m), x_test, y_test) for m in seeds]
        loss[k, -1], acc[k, -1] = np.mean([e[0] for e in ends]), np.mean([e[1] for e in ends])
    ds = xr.Dataset(
        {
            "test_loss": (("model_set", "search"), loss, {"long_name": "test cross-entropy of the merged model", "units": "nats"}),
            "test_accuracy": (("model_set", "search"), acc, {"long_name": "test accuracy of the merged model", "units": "1"}),
        },
        coords={"model_set": ["-".join(map(str, m)) for m in model_sets], "search": list(cols)},
        attrs={"batchnorm_reset": int(s.bn_data is not None)},
    )
    ds["accuracy_gain_wm_over_ste"] = (ds.test_accuracy.sel(search="wm", drop=True) - ds.test_accuracy.sel(search="ste", drop=True)).assign_attrs(units="1")
    ds["loss_gain_wm_over_ste"] = (ds.test_loss.sel(search="ste", drop=True) - ds.test_loss.sel(search="wm", drop=True)).assign_attrs(units="nats")
    return ds
