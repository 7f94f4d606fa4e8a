"""The built-in figure kinds. Each draws on a matplotlib Figure given to it (see figures.py), with
the conventions of drawing.py.
"""

from __future__ import annotations

import numpy as np

from .drawing import (MAX_LAYER_COLUMNS, SHORT_NAME, SPARE_COLOURS, label_x, legend_below, only, path_style, paths_in, place,
                      short_layer, spread, trend)
from .kinds import figure


@figure("interpolation", needs={"loss": ("pair", "search", "split", "lam"), "accuracy": ("pair", "search", "split", "lam")},
        caption="Loss and accuracy along the straight line between the two models of each pair "
        "(λ = 0: model A, λ = 1: model B, permuted by each search). Thin lines: every pair; thick: mean over pairs.",
        size=(10.0, 6.6))
def interpolation(fig, ds) -> None:
    splits = [str(s) for s in ds["split"].values]
    axes = fig.subplots(2, len(splits), sharex=True, squeeze=False)
    lam = ds["lam"].values
    for col, split in enumerate(splits):
        for row, (var, unit) in enumerate((("loss", "loss (nats)"), ("accuracy", "accuracy"))):
            ax = axes[row, col]
            for s, search in enumerate(ds["search"].values):
                colour, name = path_style(search, s)
                v = only(ds[var].sel(split=split, search=search), ("pair", "lam")).values
                for curve in v:
                    ax.plot(lam, curve, color=colour, alpha=0.3, lw=0.9)
                ax.plot(lam, np.nanmean(v, axis=0), color=colour, lw=2.2, label=name)
            ax.set_title(f"{split} split", fontsize=10)
            ax.set_ylabel(unit)
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("λ (0: model A, 1: model B)")
    legend_below(fig, axes[0, 0])


@figure("barrier-vs-width", needs={"loss_barrier": ("pair", "search", "split")}, across="width",
        caption="Loss barrier (the largest rise of the loss above the straight line between the endpoints' losses) "
        "against the network's width. Dots: every pair; line: mean ± one standard deviation over pairs.")
def barrier_vs_width(fig, by_width) -> None:
    widths = [w for w, _ in by_width]
    x, log = place(widths)
    splits = list(dict.fromkeys(str(s) for _, ds in by_width for s in ds["split"].values))
    axes = fig.subplots(1, len(splits), sharey=True, squeeze=False)[0]
    for ax, split in zip(axes, splits):
        for s, search in enumerate(paths_in(ds for _, ds in by_width)):
            colour, name = path_style(search, s)
            columns = [only(ds["loss_barrier"].sel(split=split, search=search), ("pair",)).values
                       if search in ds["search"].values and split in ds["split"].values else None for _, ds in by_width]
            trend(ax, x, columns, colour, name)
        ax.axhline(0, color="black", lw=0.6)
        label_x(ax, widths, x, log)
        ax.set_xlabel("width")
        ax.set_title(f"{split} split", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss barrier (nats)")
    legend_below(fig, axes[0])


@figure("width-sweep", needs={"barrier": ("pair", "search", "width")},
        caption="Test loss barrier after each search against width, measured in one claim test over all widths, and, "
        "where stored, the fraction of singular values that holds most of the spectrum. Dots: every pair; "
        "line: mean ± one standard deviation over pairs.")
def width_sweep(fig, ds) -> None:
    widths = ds["width"].values.tolist()
    x, log = place(widths)
    share = "dominant_share" in ds and set(ds["dominant_share"].dims) >= {"pair", "width"}
    axes = fig.subplots(1, 2 if share else 1, squeeze=False)[0]
    for s, search in enumerate(ds["search"].values):
        colour, name = path_style(search, s)
        v = only(ds["barrier"].sel(search=search), ("pair", "width")).values
        trend(axes[0], x, list(v.T), colour, name)
    axes[0].axhline(0, color="black", lw=0.6)
    axes[0].set_ylabel("test loss barrier (nats)")
    if share:
        v = only(ds["dominant_share"], ("pair", "width")).values
        trend(axes[1], x, list(v.T), "#9467bd", "share of singular values")
        axes[1].set_ylabel(ds["dominant_share"].attrs.get("long_name", "dominant share"), fontsize=8)
    for ax in axes:
        label_x(ax, widths, x, log)
        ax.set_xlabel("width")
        ax.grid(alpha=0.3)
    legend_below(fig, axes[0])


@figure("l2-distance", needs={"l2_naive": ("pair",), "l2_wm": ("pair",), "l2_random": ("pair",)},
        caption="L2 distance between the two models of each pair before matching (naive), after weight matching "
        "and after random permutations (left; grey lines join the values of one pair, diamonds: mean ± one "
        "standard deviation over pairs), and relative to the naive distance (right; 1 = no change).", size=(10.0, 4.4))
def l2_distance(fig, ds) -> None:
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": (3, 2)})
    cols = [("naive", "l2_naive"), ("wm", "l2_wm"), ("random", "l2_random")]
    values = np.array([only(ds[var], ("pair",)).values for _, var in cols])  # (method, pair)
    for p in range(values.shape[1]):
        left.plot(range(len(cols)), values[:, p], color="black", alpha=0.35, lw=0.8, marker="o", ms=4)
    for i, (search, _) in enumerate(cols):
        colour, _name = path_style(search, i)
        mean, std = spread(values[i])
        left.errorbar(i + 0.12, mean, yerr=std, color=colour, marker="D", ms=7, capsize=5, lw=2)
    left.set_xticks(range(len(cols)), labels=["naive", "after WM", "after random\npermutation"])
    left.set_ylabel("||θ_A − π(θ_B)||")
    left.set_xlim(-0.4, len(cols) - 0.6)
    left.grid(alpha=0.3, axis="y")
    for i, (search, _) in enumerate(cols[1:], start=1):
        colour, name = path_style(search, i)
        r = values[i] / values[0]
        right.scatter(np.full(len(r), i), r, color=colour, s=22, label=name)
        mean, std = spread(r)
        right.errorbar(i + 0.18, mean, yerr=std, color=colour, marker="_", ms=14, capsize=4)
    right.axhline(1.0, color="black", lw=0.8, ls="--")
    right.set_xticks([1, 2], labels=["WM / naive", "random / naive"])
    right.set_xlim(0.5, 2.6)
    right.set_ylabel("distance relative to naive")
    right.grid(alpha=0.3, axis="y")


@figure("sv-alignment", needs={"overlap_top": ("pair", "search", "layer", "k_fraction"),
                               "rank_cosine": ("pair", "search", "layer", "rank")},
        caption="Alignment of the singular vectors of model A and of model B after each search, per layer. "
        "Top: subspace overlap O_k of the top-k singular vectors against k as a fraction of the rank "
        "(dashed: the bottom-k subspaces after WM, where stored). Bottom: |cos u_i| · |cos v_i| against the "
        "singular value's rank (1 = largest), mean over pairs: faint per rank, solid a running mean.",
        size=(12.0, 6.6))
def sv_alignment(fig, ds) -> None:
    layers = list(ds["layer"].values)
    # Deep nets (a ResNet has ~20 weight matrices) wrap onto several bands of two rows.
    ncols = min(len(layers), MAX_LAYER_COLUMNS)
    bands = -(-len(layers) // ncols)
    fig.set_size_inches(max(10.0, 2.9 * ncols + 0.6), 3.1 * 2 * bands + 0.6)
    axes = fig.subplots(2 * bands, ncols, squeeze=False)
    for extra in range(len(layers), bands * ncols):
        axes[2 * (extra // ncols), extra % ncols].set_visible(False)
        axes[2 * (extra // ncols) + 1, extra % ncols].set_visible(False)
    k = ds["k_fraction"].values
    for c, layer in enumerate(layers):
        top, bottom = axes[2 * (c // ncols), c % ncols], axes[2 * (c // ncols) + 1, c % ncols]
        for s, search in enumerate(ds["search"].values):
            colour, name = path_style(search, s)
            v = only(ds["overlap_top"].sel(layer=layer, search=search), ("pair", "k_fraction")).values
            if not np.isfinite(v).any():
                continue  # a search the scale does not run on this architecture (Git Re-Basin's STE)
            for curve in v:
                top.plot(k, curve, color=colour, alpha=0.25, lw=0.8)
            top.plot(k, np.nanmean(v, axis=0), color=colour, lw=2, marker="o", ms=3, label=name)
            if "overlap_tail" in ds and str(search) == "wm":
                tail = only(ds["overlap_tail"].sel(layer=layer, search=search), ("pair", "k_fraction")).values
                top.plot(k, np.nanmean(tail, axis=0), color=colour, lw=1.4, ls="--", label="WM, bottom-k")
            cos = only(ds["rank_cosine"].sel(layer=layer, search=search), ("pair", "rank")).mean("pair")
            cos = cos.where(np.isfinite(cos), drop=True)  # layers of lower rank are NaN-padded
            if not cos.size:
                continue
            rank = cos["rank"].values + 1
            window = max(1, cos.size // 25)
            bottom.plot(rank, cos.values, color=colour, alpha=0.2, lw=0.7)
            bottom.plot(rank, cos.rolling(rank=window, center=True, min_periods=1).mean().values, color=colour, lw=1.8)
        top.set_title(short_layer(layer), fontsize=10)
        top.set_xlabel("k / rank")
        top.set_ylim(0, 1.02)
        top.grid(alpha=0.3)
        bottom.set_xscale("log")
        bottom.set_xlabel("singular value rank")
        bottom.set_ylim(0, 1.02)
        bottom.grid(alpha=0.3)
    for band in range(bands):
        axes[2 * band, 0].set_ylabel("overlap O_k (top-k)")
        axes[2 * band + 1, 0].set_ylabel("|cos u_i| · |cos v_i|")
    legend_below(fig, axes[0, 0])


def _merge_panels(ds) -> list[tuple[str, str]]:
    return [(var, label) for var, label in (("test_accuracy", "test accuracy"), ("test_loss", "test loss (nats)")) if var in ds]


@figure("merged-models", needs={"test_accuracy": ("model_set", "search")},
        caption="Test accuracy and loss of the merged model for each way of aligning the models before averaging. "
        "Bars: mean ± one standard deviation over model sets; lines join the values of one model set.",
        size=(10.0, 4.2))
def merged_models(fig, ds) -> None:
    panels = _merge_panels(ds)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    names = [str(s) for s in ds["search"].values]
    for ax, (var, label) in zip(axes, panels):
        v = only(ds[var], ("model_set", "search")).values  # (set, search)
        for i, search in enumerate(names):
            colour, _name = path_style(search, i)
            mean, std = spread(v[:, i])
            ax.bar(i, mean, yerr=std, color=colour, alpha=0.4, capsize=4, width=0.6)
        for row in v:
            ax.plot(range(len(names)), row, color="black", alpha=0.45, lw=0.8, marker="o", ms=3)
        ax.set_xticks(range(len(names)), labels=[SHORT_NAME.get(s, s) for s in names])
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")


@figure("merge-vs-models", needs={"test_accuracy": ("model_set", "search")}, across="n_models",
        caption="Test accuracy and loss of the merged model against the number of models merged. "
        "Dots: every model set; lines: mean ± one standard deviation over sets.", size=(10.0, 4.4))
def merge_vs_models(fig, by_n) -> None:
    ns = [n for n, _ in by_n]
    x, _log = place(ns)
    panels = [p for p in _merge_panels(by_n[0][1]) if all(p[0] in ds for _, ds in by_n)]
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (var, label) in zip(axes, panels):
        for s, search in enumerate(paths_in(ds for _, ds in by_n)):
            colour, name = path_style(search, s)
            columns = [only(ds[var].sel(search=search), ("model_set",)).values if search in ds["search"].values else None
                       for _, ds in by_n]
            # WM and STE are the comparison the claim is about; the rest give scale.
            trend(ax, x, columns, colour, name, headline=search in ("wm", "ste"))
        label_x(ax, ns, x, False)
        ax.set_xlabel("models merged (N)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    legend_below(fig, axes[0])


@figure("three-models", needs={"triple_loss": ("triple", "search", "split", "lam")},
        caption="Ito et al.'s three-model test: b and c each permuted onto the anchor a by each search; the loss along "
        "the straight line between π_b(b) and π_c(c) (left: training data; thin: every triple, thick: mean) and its "
        "barrier per triple on training and test data (right).", size=(11.0, 4.4))
def three_models(fig, ds) -> None:
    left, right = fig.subplots(1, 2)
    names = [str(m) for m in ds["search"].values]
    lam = ds["lam"].values
    for i, m in enumerate(names):
        colour, label = path_style(m, i)
        curves = ds.triple_loss.sel(search=m, split="train").values
        for row in curves:
            left.plot(lam, row, color=colour, alpha=0.3, lw=0.8)
        left.plot(lam, curves.mean(0), color=colour, lw=2.2, label=label)
    left.set_xlabel("λ (0: π_b(b), 1: π_c(c))")
    left.set_ylabel("training loss (nats)")
    left.grid(alpha=0.3)
    for k, split in enumerate(ds["split"].values):
        for i, m in enumerate(names):
            colour, _ = path_style(m, i)
            v = ds.triple_barrier.sel(search=m, split=split).values
            x = k * (len(names) + 1) + i
            mean, std = spread(v)
            right.bar(x, mean, yerr=std, color=colour, alpha=0.45 if split == "train" else 0.25, capsize=3, width=0.8)
            right.scatter(np.full(len(v), x), v, color="black", s=10)
    right.set_xticks([k * (len(names) + 1) + (len(names) - 1) / 2 for k in range(ds.sizes["split"])],
                     labels=[f"{s} barrier" for s in ds["split"].values])
    right.set_ylabel("barrier between π_b(b) and π_c(c) (nats)")
    right.grid(alpha=0.3, axis="y")
    legend_below(fig, left)


@figure("merges-by-n", needs={"merge_test_accuracy": ("n_models", "model_set", "merge_method")},
        caption="Supporting data: test accuracy and loss of N models merged onto an anchor by each search, or by "
        "MergeMany, against N. Dots: every disjoint model set; lines: mean ± one standard deviation over sets.",
        size=(10.0, 4.4))
def merges_by_n(fig, ds) -> None:
    ns = [int(n) for n in ds["n_models"].values]
    axes = fig.subplots(1, 2, squeeze=False)[0]
    for ax, (var, label) in zip(axes, (("merge_test_accuracy", "test accuracy"), ("merge_test_loss", "test loss (nats)"))):
        for i, m in enumerate(str(v) for v in ds["merge_method"].values):
            colour, name = path_style(m, i)
            columns = [v[np.isfinite(v)] for v in ds[var].sel(merge_method=m).values]
            trend(ax, np.asarray(ns, float), columns, colour, name, headline=m in ("wm", "ste"))
        ax.set_xticks(ns)
        ax.set_xlabel("models merged (N)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    legend_below(fig, axes[0])


@figure("ste-convergence", needs={"ste_loss_curve": ("pair", "ste_recipe", "step")},
        caption="STE's batch loss per optimisation step under each recipe (Ito et al.'s: random combination weights, so "
        "the loss is noisier; Git Re-Basin's: the fixed midpoint). Thin: every pair; thick: running minimum of the mean.",
        size=(10.0, 4.0))
def ste_convergence(fig, ds) -> None:
    axes = fig.subplots(1, ds.sizes["ste_recipe"], squeeze=False)[0]
    for i, (ax, recipe) in enumerate(zip(axes, ds["ste_recipe"].values)):
        colour, name = path_style(str(recipe), i + 3)
        curves = ds.ste_loss_curve.sel(ste_recipe=recipe).values
        if not np.isfinite(curves).any():  # a recipe the scale does not run on this architecture
            ax.set_title(f"{name}: not run at this scale", fontsize=9)
            ax.set_axis_off()
            continue
        for row in curves:
            ax.plot(row, color=colour, alpha=0.35, lw=0.8)
        mean = np.nanmean(curves, 0)
        ax.plot(np.fmin.accumulate(np.where(np.isfinite(mean), mean, np.inf)), color=colour, lw=2.2)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("batch loss (nats)")
        ax.grid(alpha=0.3)


@figure("dimension-vs-barrier", needs={"support_dim": ("pair", "setting"), "wm_midpoint_test_loss": ("pair", "setting")},
        caption="Ferbach et al.'s Figure 2 protocol: the weights' approximate dimension (participation ratio of W^T W, "
        "mean over hidden layers) against the barrier (test loss at t = 1/2 after weight matching), one point per pair "
        "and learning rate; lines join one pair's learning rates.", size=(7.0, 5.0))
def dimension_vs_barrier(fig, ds) -> None:
    ax = fig.subplots()
    settings = [str(v) for v in ds["setting"].values]
    for row_dim, row_barrier in zip(ds.support_dim.values, ds.wm_midpoint_test_loss.values):
        ax.plot(row_dim, row_barrier, color="grey", alpha=0.4, lw=0.8)
    for j, name in enumerate(settings):
        colour = SPARE_COLOURS[j % len(SPARE_COLOURS)] if j >= len(SPARE_COLOURS) else f"C{j}"
        ax.scatter(ds.support_dim.values[:, j], ds.wm_midpoint_test_loss.values[:, j], color=colour, s=28, label=name)
    ax.set_xlabel("approximate dimension (participation ratio)")
    ax.set_ylabel("test loss at t = 1/2 after WM (nats)")
    ax.grid(alpha=0.3)
    legend_below(fig, ax)


@figure("combination-loss", needs={"combination_loss": ("pair", "search", "scheme", "sample")},
        caption="Distribution of the test loss of element-wise combinations c·θ_A + (1 − c)·π(θ_B), one panel per way "
        "of drawing c, unaligned (naive) against aligned, all pairs and samples pooled. Dashed: the endpoint models' "
        "mean loss; dotted: the straight line's midpoint (c = 1/2), where stored.", size=(12.0, 3.8))
def combination_loss(fig, ds) -> None:
    schemes = [str(x) for x in ds["scheme"].values]
    axes = fig.subplots(1, len(schemes), squeeze=False, sharey=True)[0]
    ends = float(ds["endpoint_loss"].mean()) if "endpoint_loss" in ds else None
    for ax, scheme in zip(axes, schemes):
        v = only(ds["combination_loss"].sel(scheme=scheme), ("search", "pair", "sample"))
        finite = v.values[np.isfinite(v.values)]
        if not finite.size:
            continue
        bins = np.linspace(min(finite.min(), ends if ends is not None else finite.min()), finite.max(), 25)
        for s, search in enumerate(v["search"].values):
            colour, name = path_style(search, s)
            x = v.sel(search=search).values.ravel()
            ax.hist(x[np.isfinite(x)], bins=bins, color=colour, alpha=0.55, label=name)
            if "midpoint_loss" in ds and search in ds["midpoint_loss"]["search"].values:
                ax.axvline(float(ds["midpoint_loss"].sel(search=search).mean()), color=colour, ls=":", lw=1.5)
        if ends is not None:
            ax.axvline(ends, color="black", ls="--", lw=1, label="endpoints' mean loss")
        ax.set_title(scheme, fontsize=10)
        ax.set_xlabel("test loss (nats)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("combinations")
    legend_below(fig, axes[0])


@figure("singular-values", needs={"rel_sv_change": ("seed", "layer")},
        caption="Largest change of a layer's singular values under a random permutation of its units, relative to the "
        "largest singular value (left, log scale), and how far the top singular vector moved (right): the values stay, "
        "the directions change. One dot per model.", size=(10.0, 3.8))
def singular_values(fig, ds) -> None:
    panels = [("rel_sv_change", "max_i |Δs_i| / s_1", True)]
    if "top_vector_moved" in ds and set(ds["top_vector_moved"].dims) >= {"seed", "layer"}:
        panels.append(("top_vector_moved", "1 − |cos| of the top singular vector", False))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    layers = list(ds["layer"].values)
    for ax, (var, label, log) in zip(axes, panels):
        v = only(ds[var], ("seed", "layer")).values
        for c in range(len(layers)):
            y = v[:, c]
            if log:
                y = np.where(y > 0, y, np.nan)  # exact zeros cannot sit on a log axis
            ax.scatter(np.full(len(y), c) + np.linspace(-0.15, 0.15, len(y)), y, color="#1f77b4", s=16)
        if log:
            ax.set_yscale("log")
        ax.set_xticks(range(len(layers)), labels=[short_layer(n) for n in layers], rotation=15 if len(layers) <= 6 else 60,
                      fontsize=None if len(layers) <= 6 else 7)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
