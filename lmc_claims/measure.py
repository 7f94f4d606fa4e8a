"""Measurements shared by several claims, returned as xarray Datasets (one row per seed)."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from .lab import Lab
from .matching.merge import average
from .metrics.distance import l2_distance
from .metrics.interpolation import DEFAULT_LAMBDAS, chord, evaluate, interpolation_curve, reset_bn_stats
from .metrics.spectral import ito_r_terms, layer_svds, side_overlaps, vector_cosines
from .permutation.apply import apply_permutation, random_perms

SPLITS = ("train", "test")


def pair_label(a: int, b: int) -> str:
    return f"{a}-{b}"


def curves(lab: Lab, arch: str, dataset: str, width: int, seed_a: int, seed_b: int, method: str) -> dict:
    """Loss / accuracy along A -> pi(B) on each split, memoised per pair and search so that
    claims asking for different searches share the work."""

    def compute():
        model = lab.template(arch, dataset, width)
        a = lab.model(arch, dataset, width, seed_a)
        b = lab.permuted(method, arch, dataset, width, seed_a, seed_b)
        bn_data = lab.bn_data(arch, dataset, width)
        return {split: interpolation_curve(model, a, b, x, y, DEFAULT_LAMBDAS, bn_data=bn_data)
                for split, (x, y) in lab.eval_sets(arch, dataset).items()}

    return lab.memo(("curves", arch, dataset, width, seed_a, seed_b, method), compute)


def interpolation(lab: Lab, arch: str, dataset: str, width: int, methods=("naive", "wm")) -> xr.Dataset:
    """Loss / accuracy along the path A -> pi(B) for every pair, search and split, with barriers.
    BatchNorm statistics are reset on training data at every point (Git Re-Basin / REPAIR)."""
    splits = lab.eval_sets(arch, dataset)
    pairs = lab.scale.pairs
    lams = DEFAULT_LAMBDAS
    loss = np.zeros((len(pairs), len(methods), len(SPLITS), len(lams)))
    acc = np.zeros_like(loss)
    for i, (sa, sb) in enumerate(pairs):
        for j, method in enumerate(methods):
            c = curves(lab, arch, dataset, width, sa, sb, method)
            for k, split in enumerate(SPLITS):
                loss[i, j, k], acc[i, j, k] = c[split].loss, c[split].accuracy
    dims = ("pair", "search", "split", "lam")
    coords = {"pair": [pair_label(*p) for p in pairs], "search": list(methods), "split": list(SPLITS), "lam": lams}
    ds = xr.Dataset(
        {
            "loss": (dims, loss, {"long_name": "mean cross-entropy along the path", "units": "nats"}),
            "accuracy": (dims, acc, {"long_name": "accuracy along the path", "units": "1"}),
        },
        coords=coords,
        attrs={"batchnorm_reset": int(lab.bn_data(arch, dataset, width) is not None),
               "n_train_eval": len(splits["train"][1]), "n_test_eval": len(splits["test"][1])},
    )
    line = lambda v: chord(ds.lam, v.isel(lam=0, drop=True), v.isel(lam=-1, drop=True))
    ds["loss_barrier"] = (ds.loss - line(ds.loss)).max("lam").assign_attrs(
        long_name="loss barrier: max over lam of loss minus the endpoints' chord", units="nats")
    ds["accuracy_barrier"] = (line(ds.accuracy) - ds.accuracy).max("lam").assign_attrs(
        long_name="accuracy barrier: max over lam of the endpoints' chord minus accuracy", units="1")
    return ds


def barrier_of(ds: xr.Dataset, search: str) -> xr.DataArray:
    """Per-pair test loss barrier of one search in an `interpolation` dataset."""
    return ds.loss_barrier.sel(split="test", search=search, drop=True).assign_attrs(units="nats")


def shrink_distance(lab: Lab, arch: str, dataset: str, width: int, target: xr.DataArray, steps: int = 6) -> xr.DataArray:
    """Per pair: the largest t for which B_t = A + t (B - A), *without* matching, has a test loss
    barrier no larger than `target` (the barrier WM reaches), found by bisection on t in [0, 1].
    t is also the distance ratio ||A - B_t|| / ||A - B|| needed to reach that barrier by shrinking."""
    model = lab.template(arch, dataset, width)
    x, y = lab.eval_sets(arch, dataset)["test"]
    bn_data = lab.bn_data(arch, dataset, width)
    out = []
    for (sa, sb), goal in zip(lab.scale.pairs, target.values):
        a, b = lab.model(arch, dataset, width, sa), lab.model(arch, dataset, width, sb)
        lo, hi = 0.0, 1.0
        for _ in range(steps):
            t = (lo + hi) / 2
            bt = {k: (a[k] + t * (b[k] - a[k])) if a[k].is_floating_point() else a[k] for k in a}
            if interpolation_curve(model, a, bt, x, y, DEFAULT_LAMBDAS, bn_data=bn_data).loss_barrier <= goal:
                lo = t
            else:
                hi = t
        out.append(lo)
    return xr.DataArray(np.array(out), dims="pair", coords={"pair": [pair_label(*p) for p in lab.scale.pairs]},
                        attrs={"long_name": "distance ratio needed to reach the WM barrier by shrinking B towards A", "units": "1"})


def distances(lab: Lab, arch: str, dataset: str, width: int) -> xr.Dataset:
    """L2 distance naive, after WM and after random permutations, per pair (over every
    permuted parameter: weights, biases and normalisation affine parameters and statistics)."""
    spec = lab.spec(arch, dataset, width)
    rows = []
    for sa, sb in lab.scale.pairs:
        a = lab.model(arch, dataset, width, sa)
        b = lab.model(arch, dataset, width, sb)
        gen = torch.Generator().manual_seed(7919 * sb + sa)
        rand = [l2_distance(spec, a, apply_permutation(spec, random_perms(spec, b, gen), b)) for _ in range(lab.scale.n_random)]
        wm = lab.permuted("wm", arch, dataset, width, sa, sb)
        rows.append((l2_distance(spec, a, b), l2_distance(spec, a, wm), float(np.mean(rand))))
    v = np.array(rows)
    pair = [pair_label(*p) for p in lab.scale.pairs]
    return xr.Dataset(
        {
            "l2_naive": ("pair", v[:, 0], {"long_name": "||theta_A - theta_B||", "units": "1"}),
            "l2_wm": ("pair", v[:, 1], {"long_name": "||theta_A - pi_WM(theta_B)||", "units": "1"}),
            "l2_random": ("pair", v[:, 2], {"long_name": "mean ||theta_A - pi_rand(theta_B)|| over random permutations"}),
            "l2_ratio": ("pair", v[:, 1] / v[:, 0], {"long_name": "r = l2_wm / l2_naive", "units": "1"}),
            "l2_ratio_random": ("pair", v[:, 2] / v[:, 0], {"long_name": "l2_random / l2_naive", "units": "1"}),
        },
        coords={"pair": pair},
    )


K_FRACTIONS = (0.02, 0.05, 0.1, 0.25, 0.5)
TOP_FRACTION = 0.1  # "large singular values": the top 10% of the rank (ours)
ITO_R_GAMMAS = (0.0, 0.3)  # the thresholds secondary sources say Ito et al. report R at


ALIGNMENT_SEARCHES = ("naive", "random", "wm", "ste")


def alignment(lab: Lab, arch: str, dataset: str, width: int) -> xr.Dataset:
    """Subspace overlaps O_k (top and tail) of A with B naive / random-permuted / WM / STE-permuted."""
    return lab.memo(("alignment", arch, dataset, width), lambda: _alignment(lab, arch, dataset, width))


def ito_r_note(ds: xr.Dataset) -> str:
    """One line for the report: Ito et al.'s R (secondary-source form) per search, mean over pairs."""
    r = ds.ito_r.mean("pair")
    return "Ito et al.'s R as secondary sources quote it (unverified reading; data, not a criterion), mean over pairs: " + "; ".join(
        f"gamma={float(g):g}: " + ", ".join(f"{s} {float(r.sel(gamma=g, search=s)):.3f}" for s in r.search.values)
        for g in r.gamma.values)


def _alignment(lab: Lab, arch: str, dataset: str, width: int) -> xr.Dataset:
    spec = lab.spec(arch, dataset, width)
    methods = ALIGNMENT_SEARCHES
    pairs = lab.scale.pairs
    first = layer_svds(spec, lab.model(arch, dataset, width, pairs[0][0]))
    layers, max_rank = [l.name for l in first], max(l.rank for l in first)
    top = np.full((len(pairs), len(methods), len(layers), len(K_FRACTIONS)), np.nan)
    tail = np.full_like(top, np.nan)
    cosines = np.full((len(pairs), len(methods), len(layers), max_rank), np.nan)
    ito_r = np.full((len(pairs), len(methods), len(ITO_R_GAMMAS)), np.nan)
    for i, (sa, sb) in enumerate(pairs):
        a = layer_svds(spec, lab.model(arch, dataset, width, sa))
        b = lab.model(arch, dataset, width, sb)
        gen = torch.Generator().manual_seed(7919 * sb + sa)
        variants = {
            "naive": [b],
            "random": [apply_permutation(spec, random_perms(spec, b, gen), b) for _ in range(lab.scale.n_random)],
            "wm": [lab.permuted("wm", arch, dataset, width, sa, sb)],
            "ste": [lab.permuted("ste", arch, dataset, width, sa, sb)],
        }
        for j, method in enumerate(methods):
            svds = [layer_svds(spec, v) for v in variants[method]]
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
        coords={"pair": [pair_label(*p) for p in pairs], "search": list(methods), "layer": layers,
                "k_fraction": list(K_FRACTIONS), "rank": np.arange(max_rank), "gamma": list(ITO_R_GAMMAS)},
    )
    at = lambda var, m: ds[var].sel(search=m, k_fraction=TOP_FRACTION, drop=True).mean("layer")
    ds["top_gain_vs_naive"] = (at("overlap_top", "wm") - at("overlap_top", "naive")).assign_attrs(units="1")
    ds["top_gain_vs_random"] = (at("overlap_top", "wm") - at("overlap_top", "random")).assign_attrs(units="1")
    ds["top_minus_tail_wm"] = (at("overlap_top", "wm") - at("overlap_tail", "wm")).assign_attrs(units="1")
    ds["top_gain_wm_minus_ste"] = (at("overlap_top", "wm") - at("overlap_top", "ste")).assign_attrs(
        long_name="top-k overlap after WM minus after STE", units="1")
    return ds


def merged(lab: Lab, arch: str, dataset: str, width: int, n: int, methods=("wm", "ste")) -> xr.Dataset:
    """Test loss / accuracy of N models merged onto a reference by each method, per model set.
    BatchNorm statistics of every merged model are reset on training data."""
    x_test, y_test = lab.eval_sets(arch, dataset)["test"]
    bn_data = lab.bn_data(arch, dataset, width)
    model = lab.template(arch, dataset, width)
    run = lab.run(arch, dataset)
    cols = ("naive",) + tuple(methods) + ("endpoints",)
    loss = np.zeros((lab.scale.merge_sets, len(cols)))
    acc = np.zeros_like(loss)
    sets = []
    for s in range(lab.scale.merge_sets):
        seeds = lab.scale.merge_set(run, n, s)
        sets.append("-".join(map(str, seeds)))
        ref, others = seeds[0], seeds[1:]
        for c, col in enumerate(cols[:-1]):
            members = [lab.model(arch, dataset, width, ref)] + [lab.permuted(col, arch, dataset, width, ref, o) for o in others]
            params = average(members)
            if bn_data is not None:
                params = reset_bn_stats(model, params, bn_data)
            loss[s, c], acc[s, c] = evaluate(model, params, x_test, y_test)
        ends = [evaluate(model, lab.model(arch, dataset, width, k), x_test, y_test) for k in seeds]
        loss[s, -1], acc[s, -1] = np.mean([e[0] for e in ends]), np.mean([e[1] for e in ends])
    ds = xr.Dataset(
        {
            "test_loss": (("model_set", "search"), loss, {"long_name": "test cross-entropy of the merged model", "units": "nats"}),
            "test_accuracy": (("model_set", "search"), acc, {"long_name": "test accuracy of the merged model", "units": "1"}),
        },
        coords={"model_set": sets, "search": list(cols)},
        attrs={"batchnorm_reset": int(bn_data is not None)},
    )
    ds["accuracy_gain_wm_over_ste"] = (ds.test_accuracy.sel(search="wm", drop=True) - ds.test_accuracy.sel(search="ste", drop=True)).assign_attrs(units="1")
    ds["loss_gain_wm_over_ste"] = (ds.test_loss.sel(search="ste", drop=True) - ds.test_loss.sel(search="wm", drop=True)).assign_attrs(units="nats")
    return ds


def slope_vs_log_width(widths, values: np.ndarray) -> np.ndarray:
    """Least-squares slope of values (pairs x widths) against log2(width), per pair."""
    lw = np.log2(np.asarray(widths, dtype=float))
    lw = lw - lw.mean()
    v = values - values.mean(axis=1, keepdims=True)
    return (v * lw).sum(axis=1) / (lw**2).sum()


ENERGY = 0.9  # "most of the spectrum": singular values holding 90% of sum s_i^2 (ours)


def dominant_share(lab: Lab, arch: str, dataset: str, width: int, seed: int) -> float:
    """Fraction of singular values needed to hold ENERGY of sum s_i^2, mean over the
    weight matrices with at least one permuted (hidden) side."""
    shares = []
    for layer in layer_svds(lab.spec(arch, dataset, width), lab.model(arch, dataset, width, seed)):
        if layer.rows_permuted or layer.cols_permuted:
            energy = torch.cumsum(layer.s**2, 0) / (layer.s**2).sum()
            shares.append((int(torch.searchsorted(energy, torch.tensor(ENERGY, dtype=energy.dtype))) + 1) / layer.rank)
    return float(np.mean(shares))


def width_sweep(lab: Lab, arch: str, dataset: str, searches=("wm", "am")) -> xr.Dataset:
    """Barriers after each search and dominant-share of the spectrum at every width of the run."""
    widths = lab.run(arch, dataset).widths
    pairs = lab.scale.pairs
    barrier = np.zeros((len(pairs), len(searches) + 1, len(widths)))
    share = np.zeros((len(pairs), len(widths)))
    for w_i, w in enumerate(widths):
        ds = interpolation(lab, arch, dataset, w, ("naive",) + tuple(searches))
        for s_i, search in enumerate(("naive",) + tuple(searches)):
            barrier[:, s_i, w_i] = barrier_of(ds, search).values
        share[:, w_i] = [dominant_share(lab, arch, dataset, w, sa) for sa, _ in pairs]
    out = xr.Dataset(
        {
            "barrier": (("pair", "search", "width"), barrier, {"long_name": "test loss barrier", "units": "nats"}),
            "dominant_share": (("pair", "width"), share,
                               {"long_name": f"fraction of singular values holding {ENERGY:.0%} of sum s^2", "units": "1"}),
        },
        coords={"pair": [pair_label(*p) for p in pairs], "search": ["naive", *searches], "width": list(widths)},
    )
    for s_i, search in enumerate(searches, start=1):
        out[f"{search}_barrier_slope"] = ("pair", slope_vs_log_width(widths, barrier[:, s_i]),
                                          {"long_name": f"slope of the {search} barrier against log2(width)", "units": "nats"})
    out["dominant_share_slope"] = ("pair", slope_vs_log_width(widths, share),
                                   {"long_name": "slope of the dominant share against log2(width)", "units": "1"})
    return out
