"""Measurements several papers' claims use: loss along the path between two models and its
barrier, L2 distances, and sweeps over width. Each returns an xarray Dataset with a `pair`
dimension: one row per independent model pair.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import xarray as xr

from ..designs import Pair
from ..lab import Setting
from ..metrics.distance import l2_distance
from ..metrics.geometry import energy_count
from ..metrics.interpolation import DEFAULT_LAMBDAS, chord_barrier, interpolation_curve
from ..metrics.spectral import layer_svds
from ..metrics.statistics import slope_vs_log_width
from ..permutation.apply import Params, Perms, apply_permutation, random_perms
from ..scales import ENERGY
from ..seeds import generator

SPLITS = ("train", "test")


def pair_label(pair: Pair) -> str:
    return f"{pair[0]}-{pair[1]}"


def pair_coords(pairs: Sequence[Pair]) -> list[str]:
    return [pair_label(p) for p in pairs]


def seeds_of(pairs: Sequence[Pair]) -> list[int]:
    """Every model seed the pairs use, in order."""
    return [s for p in pairs for s in p]


def random_permutations(s: Setting, pair: Pair, n: int) -> list[Perms]:
    """n random permutations of the pair's model B (the baseline for distances and alignment)."""
    b = s.model(pair[1])
    gen = generator("random-perms", *pair)
    return [random_perms(s.spec, b, gen) for _ in range(n)]


def random_variants(s: Setting, pair: Pair, n: int) -> list[Params]:
    """Model B under each of `random_permutations`."""
    b = s.model(pair[1])
    return [apply_permutation(s.spec, perms, b) for perms in random_permutations(s, pair, n)]


def curves(s: Setting, pair: Pair, search: str) -> dict:
    """Loss / accuracy along A -> pi(B) on each split, memoised per pair and search so that
    claims asking for different searches share the work."""
    prefetch_curves(s, [(pair, search)])
    return s.memo("curves", pair, search, compute=None)  # prefetch_curves has put it there


def prefetch_curves(s: Setting, wanted: Sequence[tuple[Pair, str]]) -> None:
    """Compute the curves of (pair, search) not computed yet, together (`path_curves`)."""
    missing = [w for w in dict.fromkeys(wanted) if not s.memoised("curves", *w)]
    s.prefetch([(search, *pair) for pair, search in missing if search != "naive"])
    paths = [(s.model(pair[0]), s.permuted(search, *pair)) for pair, search in missing]
    for (pair, search), result in zip(missing, path_curves(s, paths)):
        s.memo("curves", pair, search, compute=lambda r=result: r)


def path_curves(s: Setting, paths: Sequence[tuple[Params, Params]]) -> list[dict]:
    """Loss / accuracy along each path (a, b) on each split, several at once on a CPU
    (`Setting.concurrently`): a task per path and split, so that the cores share the work evenly,
    or per path with BatchNorm, whose statistics (reset on training data at every point) both
    splits then share."""
    def task(a, b, splits, template):
        return {split: interpolation_curve(template, a, b, *s.eval_sets[split], DEFAULT_LAMBDAS, bn_data=s.bn_data)
                for split in splits}

    groups = [tuple(s.eval_sets)] if s.bn_data is not None else [(split,) for split in s.eval_sets]
    done = s.concurrently([functools.partial(task, a, b, splits) for a, b in paths for splits in groups])
    return [{k: v for part in done[i * len(groups):(i + 1) * len(groups)] for k, v in part.items()}
            for i in range(len(paths))]


def interpolation(s: Setting, pairs: Sequence[Pair], searches=("naive", "wm")) -> xr.Dataset:
    """Loss / accuracy along the path A -> pi(B) for every pair, search and split, with barriers.
    BatchNorm statistics are reset on training data at every point (Git Re-Basin / REPAIR)."""
    lams = DEFAULT_LAMBDAS
    loss = np.zeros((len(pairs), len(searches), len(SPLITS), len(lams)))
    acc = np.zeros_like(loss)
    prefetch_curves(s, [(pair, search) for pair in pairs for search in searches])
    for i, pair in enumerate(pairs):
        for j, search in enumerate(searches):
            c = curves(s, pair, search)
            for k, split in enumerate(SPLITS):
                loss[i, j, k], acc[i, j, k] = c[split].loss, c[split].accuracy
    dims = ("pair", "search", "split", "lam")
    coords = {"pair": pair_coords(pairs), "search": list(searches), "split": list(SPLITS), "lam": lams}
    ds = xr.Dataset(
        {
            "loss": (dims, loss, {"long_name": "mean cross-entropy along the path", "units": "nats"}),
            "accuracy": (dims, acc, {"long_name": "accuracy along the path", "units": "1"}),
        },
        coords=coords,
        attrs={"batchnorm_reset": int(s.bn_data is not None),
               "n_train_eval": len(s.eval_sets["train"][1]), "n_test_eval": len(s.eval_sets["test"][1])},
    )
    ds["loss_barrier"] = chord_barrier(ds.loss).assign_attrs(
        long_name="loss barrier: max over lam of loss minus the endpoints' chord", units="nats")
    ds["accuracy_barrier"] = chord_barrier(-ds.accuracy).assign_attrs(
        long_name="accuracy barrier: max over lam of the endpoints' chord minus accuracy", units="1")
    return ds


def barrier_of(ds: xr.Dataset, search: str, split: str) -> xr.DataArray:
    """Per-pair loss barrier of one search on one split in an `interpolation` dataset."""
    return ds.loss_barrier.sel(split=split, search=search, drop=True).assign_attrs(
        long_name=f"{split} loss barrier, {search}", units="nats")


def barrier_reduction(naive: xr.DataArray, after: xr.DataArray, search: str, split: str) -> xr.DataArray:
    """The share of the naive barrier a search removes, 1 - B_search / B_naive, per pair."""
    return (1 - after / naive).assign_attrs(
        long_name=f"1 - {split} loss barrier after {search} / naive {split} loss barrier", units="1")


def midpoint_excess(ds: xr.Dataset, search: str, split: str) -> xr.DataArray:
    """Loss at lam = 1/2 minus the endpoints' mean, signed: below 0 where the path dips under both
    endpoints (the barrier, a maximum over the path that includes its ends, is then 0)."""
    loss = ds.loss.sel(split=split, search=search, drop=True)
    mid = loss.sel(lam=0.5, method="nearest", drop=True)
    ends = (loss.isel(lam=0, drop=True) + loss.isel(lam=-1, drop=True)) / 2
    return (mid - ends).assign_attrs(long_name=f"{split} loss at lam = 1/2 minus the endpoints' mean, {search} "
                                               "(signed; not clipped at 0)", units="nats")


def with_barriers(ds: xr.Dataset, searches: Sequence[str]) -> xr.Dataset:
    """`{search}_barrier_{split}` and `{search}_midpoint_excess_{split}` for every search and split of an
    `interpolation` dataset: each claim declares which split decides, the other is stored beside."""
    for search in searches:
        for split in SPLITS:
            ds[f"{search}_barrier_{split}"] = barrier_of(ds, search, split)
            ds[f"{search}_midpoint_excess_{split}"] = midpoint_excess(ds, search, split)
    return ds


def distances(s: Setting, pairs: Sequence[Pair], n_random: int) -> xr.Dataset:
    """L2 distance naive, after WM and after random permutations, per pair (over every
    permuted parameter: weights, biases and normalisation affine parameters and statistics)."""
    rows = []
    for pair in pairs:
        a, b = s.model(pair[0]), s.model(pair[1])
        rand = [l2_distance(s.spec, a, v) for v in random_variants(s, pair, n_random)]
        rows.append((l2_distance(s.spec, a, b), l2_distance(s.spec, a, s.permuted("wm", *pair)), float(np.mean(rand))))
    v = np.array(rows)
    return xr.Dataset(
        {
            "l2_naive": ("pair", v[:, 0], {"long_name": "||theta_A - theta_B||", "units": "1"}),
            "l2_wm": ("pair", v[:, 1], {"long_name": "||theta_A - pi_WM(theta_B)||", "units": "1"}),
            "l2_random": ("pair", v[:, 2], {"long_name": "mean ||theta_A - pi_rand(theta_B)|| over random permutations"}),
            "l2_ratio": ("pair", v[:, 1] / v[:, 0], {"long_name": "r = l2_wm / l2_naive", "units": "1"}),
            "l2_ratio_random": ("pair", v[:, 2] / v[:, 0], {"long_name": "l2_random / l2_naive", "units": "1"}),
        },
        coords={"pair": pair_coords(pairs)},
    )


def dominant_share(s: Setting, seed: int) -> float:
    """Fraction of singular values needed to hold ENERGY of sum s_i^2, mean over the
    weight matrices with at least one permuted (hidden) side."""
    shares = [energy_count((layer.s**2).cpu().numpy(), ENERGY) / layer.rank
              for layer in layer_svds(s.spec, s.model(seed)) if layer.rows_permuted or layer.cols_permuted]
    return float(np.mean(shares))


def width_sweep(settings: Sequence[Setting], pairs: Sequence[Pair], searches=("wm", "am")) -> xr.Dataset:
    """Barriers after each search on both splits and dominant share of the spectrum at every width
    (one Setting per width of one architecture and dataset)."""
    widths = [s.width for s in settings]
    names = ("naive",) + tuple(searches)
    barrier = np.zeros((len(SPLITS), len(pairs), len(names), len(widths)))
    share = np.zeros((len(pairs), len(widths)))
    for w_i, s in enumerate(settings):
        ds = interpolation(s, pairs, names)
        for k, split in enumerate(SPLITS):
            for s_i, search in enumerate(names):
                barrier[k, :, s_i, w_i] = barrier_of(ds, search, split).values
        share[:, w_i] = [dominant_share(s, a) for a, _ in pairs]
    dims = ("pair", "search", "width")
    out = xr.Dataset(
        {
            "barrier": (dims, barrier[SPLITS.index("test")], {"long_name": "test loss barrier", "units": "nats"}),
            "barrier_train": (dims, barrier[SPLITS.index("train")], {"long_name": "training loss barrier", "units": "nats"}),
            "dominant_share": (("pair", "width"), share,
                               {"long_name": f"fraction of singular values holding {ENERGY:.0%} of sum s^2", "units": "1"}),
        },
        coords={"pair": pair_coords(pairs), "search": list(names), "width": widths},
    )
    for k, split in enumerate(SPLITS):
        for s_i, search in enumerate(searches, start=1):
            out[f"{search}_barrier_slope_{split}"] = ("pair", slope_vs_log_width(widths, barrier[k, :, s_i]), {
                "long_name": f"slope of the {search} {split} loss barrier against log2(width)", "units": "nats"})
    out["dominant_share_slope"] = ("pair", slope_vs_log_width(widths, share),
                                   {"long_name": "slope of the dominant share against log2(width)", "units": "1"})
    return out
