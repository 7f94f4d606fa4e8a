"""What the figures share, so that they read alike: one colour and marker per path (naive, random,
WM, STE, ...), every pair or model set drawn thin and faint, the mean over them drawn thick, error
bars one standard deviation over pairs or sets, legends below the axes.
"""

from __future__ import annotations

import numbers

import numpy as np


PATH_STYLE = {
    "naive": ("#d62728", "naive (no matching)"),
    "random": ("#7f7f7f", "random permutation"),
    "wm": ("#1f77b4", "weight matching (WM)"),
    "ste": ("#2ca02c", "straight-through estimator (STE)"),
    "ste-gr": ("#98df8a", "STE, Git Re-Basin's Algorithm 2"),
    "am": ("#ff7f0e", "activation matching (AM)"),
    "mergemany": ("#9467bd", "MergeMany (Git Re-Basin Alg. 3)"),
    "endpoints": ("#000000", "mean of the endpoint models"),
}
SHORT_NAME = {"naive": "naive", "random": "random", "wm": "WM", "ste": "STE", "ste-gr": "STE (GR)", "am": "AM",
              "mergemany": "MergeMany", "endpoints": "endpoints (mean)"}
SPARE_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")


def path_style(search: str, index: int) -> tuple[str, str]:
    return PATH_STYLE.get(str(search), (SPARE_COLOURS[index % len(SPARE_COLOURS)], str(search)))


def only(da, dims: tuple[str, ...]):
    """`da` with exactly `dims`, in that order: any further dimension is averaged out."""
    extra = [d for d in da.dims if d not in dims]
    return (da.mean(extra) if extra else da).transpose(*dims)


def spread(values: np.ndarray) -> tuple[float, float]:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if not len(v):
        return np.nan, np.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def paths_in(datasets) -> list[str]:
    """Search methods in first-seen order over several datasets."""
    return list(dict.fromkeys(str(s) for ds in datasets for s in ds["search"].values))


def place(values) -> tuple[np.ndarray, bool]:
    """x positions for parameter values: the values on a log-2 axis when they are numbers, else 0, 1, 2 ..."""
    if all(isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0 for v in values):
        return np.asarray(values, float), max(values) / min(values) >= 4
    return np.arange(len(values), dtype=float), False


def legend_below(fig, ax) -> None:
    """One legend for the whole figure, under the panels, where it hides no data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(handles), 5), fontsize=8, frameon=False)


def trend(ax, x, columns, colour: str, label: str, headline: bool = True) -> None:
    """Values against a parameter: `columns[i]` holds every pair's (or set's) value at x[i] (None: not measured
    there). Dots for each, a line through the means with one standard deviation as error bars."""
    stats = []
    for xi, v in zip(x, columns):
        if v is None:
            stats.append((np.nan, np.nan))
            continue
        ax.scatter(np.full(len(v), xi), v, color=colour, alpha=0.45, s=16, lw=0)
        stats.append(spread(v))
    mean, std = np.array(stats).T
    ax.errorbar(x, mean, yerr=std, color=colour, lw=2.2 if headline else 1.1, ls="-" if headline else "--",
                marker="o", ms=4, capsize=3, label=label)


def label_x(ax, values, positions, log: bool) -> None:
    if log:
        ax.set_xscale("log", base=2)
    ax.set_xticks(positions, labels=[str(v) for v in values])
    ax.minorticks_off()




MAX_LAYER_COLUMNS = 5


def short_layer(name: str) -> str:
    return str(name).removesuffix(".weight")
