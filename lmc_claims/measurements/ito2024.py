"""Measurements behind Ito, Yamada, Kumagai 2024 (arXiv 2402.04051): singular values under
permutation, L2 distance after weight matching, singular-vector alignment (O_k and R), and
merging several models by WM and by STE. Claims: `lmc_claims/catalogue/ito2024.py`.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import torch
import xarray as xr

from ..designs import (MERGE_METHODS, THREE_MODEL_METHODS, Pair, merge_searches, merge_sets, model_triples,
                       three_model_searches)
from ..lab import Setting
from ..matching.merge import average
from ..matching.ste import differing_fraction
from ..metrics.interpolation import DEFAULT_LAMBDAS, Line, chord_barrier, evaluate, reset_bn_stats
from ..metrics.spectral import (ito_r_terms, layer_svds, permuted_svds, side_overlaps, singular_values, svd, vector_cosines,
                                weight_matrices)
from ..permutation.apply import apply_permutation, random_perms
from ..scales import ITO_R_GAMMAS, K_FRACTIONS, TOP_FRACTION
from ..seeds import generator
from .shared import (SPLITS, barrier_of, barrier_reduction, curves, distances, interpolation, pair_coords, path_curves,
                     prefetch_curves, random_permutations)

ALIGNMENT_PATHS = ("naive", "random", "wm", "ste", "ste-gr")
STE_METHODS = ("ste", "ste-gr")  # Ito et al.'s recipe (decides) and Git Re-Basin's Algorithm 2 (supporting)
DECIDING_SPLIT = "train"  # the split the catalogue's Ito et al. claims declare


def ste_searches(s: Setting) -> tuple[str, ...]:
    """The STE recipes the setting runs: Git Re-Basin's only where the scale runs it
    (`Scale.ste_gr_archs`); its variables are NaN elsewhere."""
    return STE_METHODS if s.scale.runs_ste_gr(s.arch) else ("ste",)


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


def shrink_distance(s: Setting, pairs: Sequence[Pair], target: xr.DataArray, split: str, steps: int = 6) -> xr.DataArray:
    """Per pair: the largest t for which B_t = A + t (B - A), *without* matching, has a loss barrier
    on `split` no larger than `target` (the barrier WM reaches), found by bisection on t in [0, 1].
    t is also the distance ratio ||A - B_t|| / ||A - B|| needed to reach that barrier by shrinking.

    Every path A -> B_t lies on the naive line A -> B (its point at lam is the line's at lam t), so
    the bisection's paths and the naive curve share points (`Line`), and a step stops at the first
    point that puts its barrier above the target."""
    x, y = s.eval_sets[split]
    prefetch_curves(s, [(pair, "naive") for pair in pairs])

    def bisect(a, b, naive, goal, template):
        line = Line(template, a, b, x, y, bn_data=s.bn_data)
        line.know(naive)
        lo, hi = 0.0, 1.0
        for _ in range(steps):
            t = (lo + hi) / 2
            if line.barrier_at_most(t, goal, DEFAULT_LAMBDAS):
                lo = t
            else:
                hi = t
        return lo

    out = s.concurrently([functools.partial(bisect, s.model(a), s.model(b), curves(s, (a, b), "naive")[split], float(goal))
                          for (a, b), goal in zip(pairs, target.values)])
    return xr.DataArray(np.array(out), dims="pair", coords={"pair": pair_coords(pairs)},
                        attrs={"long_name": "distance ratio needed to reach the WM barrier by shrinking B towards A", "units": "1"})


def l2_distance(s: Setting, pairs: Sequence[Pair], n_random: int) -> xr.Dataset:
    """The L2 ratio r after WM, the barrier it removes, and the distance ratio shrinking alone needs."""
    ds = distances(s, pairs, n_random)
    paths = interpolation(s, pairs)
    for split in SPLITS:
        naive, wm = barrier_of(paths, "naive", split), barrier_of(paths, "wm", split)
        ds[f"barrier_naive_{split}"], ds[f"barrier_wm_{split}"] = naive, wm
        ds[f"barrier_reduction_{split}"] = barrier_reduction(naive, wm, "WM", split)
    ds["shrink_ratio"] = shrink_distance(s, pairs, ds[f"barrier_wm_{DECIDING_SPLIT}"], DECIDING_SPLIT)
    ds["l2_ratio_minus_shrink_ratio"] = (ds.l2_ratio - ds.shrink_ratio).assign_attrs(units="1")
    return ds.merge(paths)


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
    methods = ALIGNMENT_PATHS
    first = layer_svds(s.spec, s.model(pairs[0][0]))
    layers, max_rank = [l.name for l in first], max(l.rank for l in first)
    top = np.full((len(pairs), len(methods), len(layers), len(K_FRACTIONS)), np.nan)
    tail = np.full_like(top, np.nan)
    cosines = np.full((len(pairs), len(methods), len(layers), max_rank), np.nan)
    ito_r = np.full((len(pairs), len(methods), len(ITO_R_GAMMAS)), np.nan)
    s.prefetch([(m, *pair) for pair in pairs for m in ("wm", *ste_searches(s))])
    for i, pair in enumerate(pairs):
        a = layer_svds(s.spec, s.model(pair[0]))
        b_params = s.model(pair[1])
        b = layer_svds(s.spec, b_params)  # every variant is B permuted: its SVDs are B's moved
        variants = {
            "naive": [b],
            "random": [permuted_svds(s.spec, p, b_params, b) for p in random_permutations(s, pair, n_random)],
            **{m: [permuted_svds(s.spec, s.match(m, *pair), b_params, b)] for m in ("wm", *ste_searches(s))},
        }
        for j, method in enumerate(methods):
            if method not in variants:
                continue  # a recipe the setting does not run: NaN
            svds = variants[method]
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
    r = lambda m, g: ds.ito_r.sel(search=m, gamma=g, drop=True)
    for m in methods:
        ds[f"r_{m.replace('-', '_')}_gamma03"] = r(m, 0.3).assign_attrs(long_name=f"R at gamma = 0.3, {m}", units="1")
        ds[f"r_{m.replace('-', '_')}_gamma0"] = r(m, 0.0).assign_attrs(long_name=f"R at gamma = 0, {m}", units="1")
    ds["r_wm_minus_naive_gamma03"] = (r("wm", 0.3) - r("naive", 0.3)).assign_attrs(units="1")
    ds["r_wm_minus_random_gamma03"] = (r("wm", 0.3) - r("random", 0.3)).assign_attrs(units="1")
    ds["r_wm_rise_gamma03_over_gamma0"] = (r("wm", 0.3) - r("wm", 0.0)).assign_attrs(
        long_name="R after WM at gamma = 0.3 minus at gamma = 0", units="1")
    ds["r_wm_minus_ste_gamma03"] = (r("wm", 0.3) - r("ste", 0.3)).assign_attrs(units="1")
    ds["r_wm_minus_ste_gr_gamma03"] = (r("wm", 0.3) - r("ste-gr", 0.3)).assign_attrs(units="1")
    # The share of WM's alignment gain over no permutation that STE keeps (Ito et al.: R ~ 0 for STE).
    ds["ste_kept_alignment_gamma03"] = ((r("ste", 0.3) - r("naive", 0.3)) / (r("wm", 0.3) - r("naive", 0.3))).assign_attrs(
        long_name="(R_STE - R_naive) / (R_WM - R_naive) at gamma = 0.3: the share of WM's alignment gain STE keeps",
        units="1")
    ds = ds.merge(ste_diagnostics(s, pairs))
    at = lambda var, m: ds[var].sel(search=m, k_fraction=TOP_FRACTION, drop=True).mean("layer")
    ds["top_gain_vs_naive"] = (at("overlap_top", "wm") - at("overlap_top", "naive")).assign_attrs(units="1")
    ds["top_gain_vs_random"] = (at("overlap_top", "wm") - at("overlap_top", "random")).assign_attrs(units="1")
    ds["top_minus_tail_wm"] = (at("overlap_top", "wm") - at("overlap_tail", "wm")).assign_attrs(units="1")
    ds["top_gain_wm_minus_ste"] = (at("overlap_top", "wm") - at("overlap_top", "ste")).assign_attrs(
        long_name="top-k overlap after WM minus after STE", units="1")
    return ds


def ste_diagnostics(s: Setting, pairs: Sequence[Pair]) -> xr.Dataset:
    """Per pair and STE recipe: how far the proxy moved from model A, how many units STE assigns
    differently from WM, the steps run, the best step and the batch-loss curve (NaN-padded)."""
    diag = {(m, p): s.diagnostics(m, *p) for m in ste_searches(s) for p in pairs}
    longest = max(len(d["loss_curve"]) for d in diag.values())
    curve = np.full((len(pairs), len(STE_METHODS), longest), np.nan)
    drift, differ, moved, start_differs, steps, best = (np.full((len(pairs), len(STE_METHODS)), np.nan)
                                                        for _ in range(6))
    for i, p in enumerate(pairs):
        wm = s.match("wm", *p)
        for j, m in enumerate(STE_METHODS):
            if (m, p) not in diag:
                continue
            d = diag[(m, p)]
            curve[i, j, : len(d["loss_curve"])] = d["loss_curve"].numpy()
            drift[i, j], steps[i, j], best[i, j] = float(d["drift"]), int(d["n_steps"]), int(d["best_step"])
            differ[i, j] = differing_fraction(wm, s.match(m, *p))
            moved[i, j] = moved_from_start(s, m, *p)
            start_differs[i, j] = differing_fraction(wm, start_of(s, m, *p))
    dims = ("pair", "ste_recipe")
    ds = xr.Dataset(
        {
            "ste_drift": (dims, drift, {"long_name": "||theta_tilde - theta_A|| / ||theta_A|| of STE's proxy at the end",
                                        "units": "1"}),
            "ste_differs_from_wm": (dims, differ, {"long_name": "fraction of units STE assigns differently from WM",
                                                   "units": "1"}),
            "ste_moved_from_start": (dims, moved, {
                "long_name": "fraction of units STE assigns differently from its first projection (weight matching of "
                             "B onto A with STE's visiting order), i.e. how far the search moved", "units": "1"}),
            "wm_order_differs": (dims, start_differs, {
                "long_name": "fraction of units STE's first projection assigns differently from WM's search: weight "
                             "matching from another visiting order (what differing from WM alone can reflect)",
                "units": "1"}),
            "ste_steps": (dims, steps, {"long_name": "optimisation steps run", "units": "1"}),
            "ste_best_step": (dims, best, {"long_name": "step of the lowest batch loss (the permutation Git Re-Basin's "
                                           "recipe returns)", "units": "1"}),
            "ste_loss_curve": (dims + ("step",), curve, {"long_name": "STE batch loss per step", "units": "nats"}),
        },
        coords={"pair": pair_coords(pairs), "ste_recipe": list(STE_METHODS), "step": np.arange(longest)},
    )
    ds["ste_differing_fraction"] = ds.ste_differs_from_wm.sel(ste_recipe="ste", drop=True).assign_attrs(
        long_name="fraction of units Ito et al.'s STE recipe assigns differently from WM", units="1")
    ds["ste_moved_fraction"] = ds.ste_moved_from_start.sel(ste_recipe="ste", drop=True).assign_attrs(
        long_name="fraction of units Ito et al.'s STE recipe assigns differently from its first projection", units="1")
    return ds


def start_of(s: Setting, method: str, a: int, b: int) -> dict:
    """An STE search's first projection: weight matching of b onto a from the search's own visiting
    order. An STE whose proxy never moves returns exactly this."""
    return s.start(method, a, b)


def moved_from_start(s: Setting, method: str, a: int, b: int) -> float:
    """Fraction of units the STE search's answer assigns differently from its first projection."""
    return differing_fraction(start_of(s, method, a, b), s.match(method, a, b))


def ste_alignment(s: Setting, pairs: Sequence[Pair], n_random: int) -> xr.Dataset:
    """The alignment of STE's permutations beside WM's, with the barrier STE removes."""
    ds = alignment(s, pairs, n_random)
    searches = ("naive", "wm", *ste_searches(s))
    paths = interpolation(s, pairs, searches)
    for split in SPLITS:
        naive = barrier_of(paths, "naive", split)
        for m in ste_searches(s):
            name = m.replace("-", "_")
            ds[f"{name}_barrier_reduction_{split}"] = barrier_reduction(naive, barrier_of(paths, m, split), m, split)
    # The alignment's searches include "random", which has no path: its curves are NaN.
    return ds.merge(paths, join="outer")


def three_models(s: Setting, triples: Sequence[tuple[int, int, int]], searches=THREE_MODEL_METHODS) -> xr.Dataset:
    """Ito et al. §6: b and c each permuted onto the anchor a by each search; the loss along the line
    between pi_b(b) and pi_c(c) on both splits, and its barrier, per triple."""
    lams = DEFAULT_LAMBDAS
    loss = np.zeros((len(triples), len(searches), len(SPLITS), len(lams)))
    acc = np.zeros_like(loss)
    s.prefetch(three_model_searches(triples, searches))
    cells = [(i, j) for i in range(len(triples)) for j in range(len(searches))]
    paths = [(s.permuted(searches[j], triples[i][0], triples[i][1]), s.permuted(searches[j], triples[i][0], triples[i][2]))
             for i, j in cells]
    for (i, j), by_split in zip(cells, path_curves(s, paths)):
        for k, split in enumerate(SPLITS):
            loss[i, j, k], acc[i, j, k] = by_split[split].loss, by_split[split].accuracy
    dims = ("triple", "search", "split", "lam")
    ds = xr.Dataset(
        {"triple_loss": (dims, loss, {"long_name": "loss along pi_b(b) -> pi_c(c)", "units": "nats"}),
         "triple_accuracy": (dims, acc, {"long_name": "accuracy along pi_b(b) -> pi_c(c)", "units": "1"})},
        coords={"triple": ["-".join(map(str, t)) for t in triples], "search": list(searches), "split": list(SPLITS),
                "lam": lams},
    )
    ds["triple_barrier"] = chord_barrier(ds.triple_loss).assign_attrs(
        long_name="loss barrier between pi_b(b) and pi_c(c)", units="nats")
    for split in SPLITS:
        b = ds.triple_barrier.sel(split=split, drop=True)
        for m in searches:
            ds[f"triple_barrier_{m.replace('-', '_')}_{split}"] = b.sel(search=m, drop=True).assign_attrs(units="nats")
        ds[f"barrier_gain_ste_minus_wm_{split}"] = (b.sel(search="ste", drop=True) - b.sel(search="wm", drop=True)).assign_attrs(
            long_name=f"{split} barrier between pi_b(b) and pi_c(c): STE (Ito et al.'s recipe) minus WM", units="nats")
    def over_b_and_c(fraction, long_name: str):
        values = [[fraction(a, o) for o in (b, c)] for a, b, c in triples]
        return "triple", np.array(values).mean(1), {"long_name": f"{long_name} (mean over b and c)", "units": "1"}

    ds["ste_differing_fraction"] = over_b_and_c(
        lambda a, o: differing_fraction(s.match("wm", a, o), s.match("ste", a, o)),
        "fraction of units Ito et al.'s STE recipe assigns differently from WM")
    ds["ste_moved_fraction"] = over_b_and_c(
        lambda a, o: moved_from_start(s, "ste", a, o),
        "fraction of units Ito et al.'s STE recipe assigns differently from its first projection")
    return ds




def merged(s: Setting, sets_by_n: dict[int, Sequence[Sequence[int]]]) -> xr.Dataset:
    """Test loss / accuracy of N models merged onto the set's anchor (its first model) by WM and STE,
    or by MergeMany (no anchor), and of the naive average, per disjoint model set and N. NaN where
    an N has fewer sets than the largest count. BatchNorm statistics are reset on training data."""
    x_test, y_test = s.eval_sets["test"]
    sizes = sorted(sets_by_n)
    n_sets = max(len(v) for v in sets_by_n.values())
    cols = MERGE_METHODS + ("endpoints",)
    loss = np.full((len(sizes), n_sets, len(cols)), np.nan)
    acc = np.full_like(loss, np.nan)
    s.prefetch(merge_searches(sets_by_n))
    for q, n in enumerate(sizes):
        for k, seeds in enumerate(sets_by_n[n]):
            ref, others = seeds[0], seeds[1:]
            for c, col in enumerate(MERGE_METHODS):
                if col == "mergemany":
                    members = [apply_permutation(s.spec, p, s.model(m)) for p, m in zip(s.merge_many(seeds), seeds)]
                else:
                    members = [s.model(ref)] + [s.permuted(col, ref, o) for o in others]
                params = average(members)
                if s.bn_data is not None:
                    params = reset_bn_stats(s.template, params, s.bn_data)
                loss[q, k, c], acc[q, k, c] = evaluate(s.template, params, x_test, y_test)
            ends = [evaluate(s.template, s.model(m), x_test, y_test) for m in seeds]
            loss[q, k, -1], acc[q, k, -1] = np.mean([e[0] for e in ends]), np.mean([e[1] for e in ends])
    dims = ("n_models", "model_set", "merge_method")
    return xr.Dataset(
        {
            "merge_test_loss": (dims, loss, {"long_name": "test cross-entropy of the merged model (supporting data)",
                                             "units": "nats"}),
            "merge_test_accuracy": (dims, acc, {"long_name": "test accuracy of the merged model (supporting data)",
                                                "units": "1"}),
            "merge_sets": (("n_models", "model_set"), np.array(
                [["-".join(map(str, m)) for m in sets_by_n[n]] + [""] * (n_sets - len(sets_by_n[n])) for n in sizes],
                dtype=object), {"long_name": "model seeds of each set, anchor first"}),
        },
        coords={"n_models": sizes, "model_set": np.arange(n_sets), "merge_method": list(cols)},
        attrs={"batchnorm_reset": int(s.bn_data is not None)},
    )


def merge_wm_vs_ste(s: Setting, pairs: Sequence[Pair], merge_sizes: Sequence[int]) -> xr.Dataset:
    """The §6 claim's dataset: the three-model barriers (deciding) and the merges (supporting), over
    the pairs' triples (each pair with its own third model)."""
    triples = model_triples(pairs, s.scale.thirds(pairs))
    sets = merge_sets(triples, merge_sizes)
    # Every search of the test at once, so that on a CPU its STE runs share the cores.
    s.prefetch(three_model_searches(triples) + merge_searches(sets))
    return three_models(s, triples).merge(merged(s, sets))
