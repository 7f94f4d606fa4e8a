"""Two-layer networks (one hidden layer) across widths and input dimensions: the measurements
behind Ferbach, Goujaud, Gidel, Dieuleveut 2024 (arXiv 2310.19103).

Matching is optimal transport. A hidden neuron is its weight vector v_i = (incoming weights,
bias, outgoing weights). With one hidden layer, weight matching (Git Re-Basin) is a single
linear assignment, max_pi sum_i <v_i^A, v_pi(i)^B>; a permutation keeps sum_i ||v_i^B||^2, so
this is min_pi sum_i ||v_i^A - v_pi(i)^B||^2, the squared-Euclidean optimal transport between
the two empirical neuron measures (between two uniform m-point measures an optimal plan is a
permutation: Birkhoff). `lab.permuted("wm", ...)` is therefore exactly the paper's matching.

The paper's mechanism: two widths-m samples of one neuron distribution get closer in
Wasserstein distance as m grows, at the rate of empirical measures, about m^(-1/d) for a
d-dimensional support; so the barrier after matching should fall with width, and faster where
the neurons occupy fewer dimensions. Everything here returns xarray Datasets with a `pair`
dimension (independent model pairs) holding the statistics the claims judge, plus the raw data.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import xarray as xr
from scipy import stats

from . import measure
from .data import INPUT_SHAPES, pca_parts
from .errors import LmcClaimsError
from .models.registry import TAG
from .lab import Lab
from .permutation.apply import Params
from .scales import Run, Scale

ARCH = "mlp-d1"  # the two-layer network: one hidden layer of `width` units
OPTIMIZER = "sgd"  # the paper's setting (mean-field SGD)
SEARCHES = ("naive", "wm")
ENERGY = 0.9  # energy_rank: singular values holding 90% of sum s^2 (a second dimension estimate, ours)
LMC_BARRIER = 0.05  # nats: "near zero", the project's reading in ainsworth2023-wm-barrier; width_to_lmc only
MIN_FIT_POINTS = 3  # a log-log slope needs at least three widths with a positive barrier


# -- the family's runs -------------------------------------------------------------

def input_dim(dataset: str) -> int:
    return math.prod(INPUT_SHAPES[dataset])


def family_runs(scale: Scale) -> tuple[Run, tuple[Run, ...]]:
    """The scale's two-layer SGD runs: the base run (a dataset as shipped) and the settings
    (the base and its "<base>-pca<k>" projections), lowest input dimension first."""
    runs = [r for r in scale.extra_runs if r.arch == ARCH and r.optimizer == OPTIMIZER]
    bases = [r for r in runs if pca_parts(r.dataset) is None]
    if len(bases) != 1:
        raise LmcClaimsError(
            f"Scale {scale.name!r} has {len(bases)} two-layer SGD runs on an unprojected dataset; the "
            "Ferbach et al. claims need exactly one.",
            f"give the scale one extra Run({ARCH!r}, DATASET, optimizer={OPTIMIZER!r}) plus its DATASET-pcaK runs.",
        )
    base = bases[0]
    settings = [r for r in runs if r is base or (pca_parts(r.dataset) or ("",))[0] == base.dataset]
    return base, tuple(sorted(settings, key=lambda r: input_dim(r.dataset)))


def lr_runs(scale: Scale) -> tuple[Run, ...]:
    """The scale's two-layer SGD runs on the base dataset at different learning rates (the base
    run and its `mlp-d1@lr<lr>` variants), lowest learning rate first."""
    base, _ = family_runs(scale)
    runs = [r for r in scale.extra_runs if r.arch.split(TAG, 1)[0] == ARCH and r.optimizer == OPTIMIZER
            and r.dataset == base.dataset]
    return tuple(sorted(runs, key=lambda r: r.lr))


# How the settings of claim 10 vary the neurons' dimension: the input dimension (the dataset
# projected onto k principal components) or, as the paper's Figure 2, the SGD learning rate.
VARIATIONS = ("input_dim", "lr")


def variation_runs(scale: Scale, variation: str) -> tuple[Run, ...]:
    if variation == "input_dim":
        return family_runs(scale)[1]
    if variation == "lr":
        return lr_runs(scale)
    raise ValueError(f"unknown variation {variation!r}; expected one of {VARIATIONS}")


def setting_label(run: Run, variation: str) -> str:
    return run.dataset if variation == "input_dim" else f"lr={run.lr:g}"


def shared_widths(runs) -> tuple[int, ...]:
    """Widths every run has: settings are compared width by width."""
    common = set.intersection(*(set(r.widths) for r in runs))
    return tuple(sorted(common))


# -- neuron weight vectors and their dimension ------------------------------------

def neuron_matrix(params: Params) -> np.ndarray:
    """One row per hidden neuron: its incoming weights, bias and outgoing weights (float64)."""
    w_in, bias, w_out = params["layers.0.weight"], params["layers.0.bias"], params["layers.1.weight"]
    return torch.cat([w_in, bias[:, None], w_out.T], dim=1).detach().double().cpu().numpy()


def covariance_spectrum(rows: np.ndarray) -> np.ndarray:
    """Eigenvalues (descending) of the covariance of the rows, up to a factor: squared singular
    values of the centred matrix. Centring keeps a common offset from counting as a dimension."""
    s = np.linalg.svd(rows - rows.mean(axis=0), compute_uv=False)
    return s**2


def participation_ratio(rows: np.ndarray) -> float:
    """(sum lam)^2 / sum lam^2 = tr(S)^2 / tr(S^2) of the covariance S of the rows: k for k
    equally spread directions, 1 for a line. This is the paper's approximate dimension."""
    lam = covariance_spectrum(rows)
    return float(lam.sum() ** 2 / (lam**2).sum()) if lam.sum() > 0 else 0.0


def energy_rank(rows: np.ndarray, energy: float = ENERGY) -> int:
    """Number of covariance eigenvalues holding `energy` of their sum."""
    lam = covariance_spectrum(rows)
    if lam.sum() <= 0:
        return 0
    return int(np.searchsorted(np.cumsum(lam) / lam.sum(), energy - 1e-12) + 1)


# -- statistics ----------------------------------------------------------------------

def loglog_slope(widths, values) -> tuple[float, int]:
    """Least-squares slope of log(value) against log(width) and the number of points used.
    A barrier can be exactly 0 (the path never rises above the chord), where the log is
    undefined; such points are left out, and fewer than MIN_FIT_POINTS give NaN (no verdict)."""
    x, y = np.log(np.asarray(widths, float)), np.asarray(values, float)
    keep = np.isfinite(y) & (y > 0)
    if keep.sum() < MIN_FIT_POINTS:
        return math.nan, int(keep.sum())
    slope = np.polyfit(x[keep], np.log(y[keep]), 1)[0]
    return float(slope), int(keep.sum())


def spearman(x, y) -> float:
    """Spearman rank correlation; NaN when either side is constant (no ranking to compare)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(x, y).statistic)


def row_means(values: np.ndarray) -> np.ndarray:
    """Mean of each row over its finite entries; NaN for a row without any."""
    finite = np.isfinite(values)
    sums = np.where(finite, values, 0.0).sum(axis=1)
    counts = finite.sum(axis=1)
    return np.divide(sums, counts, out=np.full(len(values), np.nan), where=counts > 0)


def first_width_below(widths, barriers, threshold: float) -> float:
    """The smallest width from which on every barrier is <= threshold; NaN if none."""
    widths, barriers = list(widths), np.asarray(barriers, float)
    for i, w in enumerate(widths):
        if np.all(barriers[i:] <= threshold):
            return float(w)
    return math.nan


# -- measurements --------------------------------------------------------------------

def setting_sweep(lab: Lab, run: Run, widths: tuple[int, ...]) -> xr.Dataset:
    """Every pair at every width of one setting (a run of the two-layer family): loss along the
    path (naive and after WM, train and test), barriers, endpoint losses and the neurons'
    dimension. Memoised: both claims use it."""
    key = ("two-layer-sweep", run.arch, run.dataset, widths)
    return lab.memo(key, lambda: _setting_sweep(lab, run.arch, run.dataset, widths))


def _setting_sweep(lab: Lab, arch: str, dataset: str, widths: tuple[int, ...]) -> xr.Dataset:
    per_width = [_at_width(lab, arch, dataset, w) for w in widths]
    ds = xr.concat(per_width, dim="width", data_vars="all", coords="minimal", compat="override")
    return ds.assign_coords(width=list(widths))


def _at_width(lab: Lab, arch: str, dataset: str, width: int) -> xr.Dataset:
    curves = measure.interpolation(lab, arch, dataset, width, SEARCHES)
    rows = {s: neuron_matrix(lab.model(arch, dataset, width, s)) for pair in lab.scale.pairs for s in pair}
    pair_mean = lambda f: np.array([np.mean([f(rows[a]), f(rows[b])]) for a, b in lab.scale.pairs])
    test_loss = curves.loss.sel(split="test", search="naive", drop=True)
    test_accuracy = curves.accuracy.sel(split="test", search="naive", drop=True)
    ends = lambda v: (v.isel(lam=0, drop=True) + v.isel(lam=-1, drop=True)) / 2
    return xr.Dataset(
        {
            "path_loss": curves.loss.assign_attrs(long_name="mean cross-entropy along the path A -> pi(B)", units="nats"),
            "path_accuracy": curves.accuracy.assign_attrs(long_name="accuracy along the path A -> pi(B)", units="1"),
            "loss_barrier_by_split": curves.loss_barrier.assign_attrs(
                long_name="loss barrier: max over lam of loss minus the endpoints' chord", units="nats"),
            "endpoint_test_loss": ends(test_loss).assign_attrs(long_name="mean test loss of the pair's two models", units="nats"),
            "endpoint_test_accuracy": ends(test_accuracy).assign_attrs(long_name="mean test accuracy of the pair's two models", units="1"),
            "support_dim": ("pair", pair_mean(participation_ratio),
                            {"long_name": "participation ratio tr(S)^2/tr(S^2) of the covariance S of the hidden "
                             "neurons' weight vectors (incoming, bias, outgoing), mean of the pair's two models", "units": "1"}),
            "energy_rank": ("pair", pair_mean(energy_rank),
                            {"long_name": f"number of covariance eigenvalues of the neuron weight vectors holding "
                             f"{ENERGY:.0%} of their sum, mean of the pair's two models", "units": "1"}),
        },
        coords={"pair": curves.pair, "search": curves.search, "split": curves.split, "lam": curves.lam},
    )


def barrier_vs_width(lab: Lab) -> xr.Dataset:
    """Claim 9: on the base setting, the test loss barrier after WM against width, fitted per
    pair on a log-log scale, beside the slope the Wasserstein rate m^(-1/d) predicts."""
    base, _ = family_runs(lab.scale)
    widths = tuple(sorted(base.widths))
    ds = setting_sweep(lab, base, widths)
    out = ds.transpose("pair", "width", ...).copy()
    out["barrier"] = ds.loss_barrier_by_split.sel(split="test", drop=True).transpose("pair", "search", "width").assign_attrs(
        long_name="test loss barrier", units="nats")
    for search in SEARCHES:
        fits = [loglog_slope(widths, out.barrier.sel(pair=p, search=search).values) for p in out.pair.values]
        out[f"{search}_barrier_loglog_slope"] = ("pair", np.array([f[0] for f in fits]), {
            "long_name": f"least-squares slope of log(test loss barrier, {search}) against log(width)", "units": "1"})
        out[f"{search}_widths_fitted"] = ("pair", np.array([f[1] for f in fits]), {
            "long_name": f"widths with a positive {search} barrier used in the fit", "units": "1"})
    ambient = input_dim(base.dataset) + 1 + lab.data(ARCH, base.dataset).num_classes
    out["predicted_slope_ambient"] = ("pair", np.full(ds.sizes["pair"], -1.0 / ambient), {
        "long_name": f"-1/d for the neuron vectors' ambient dimension d = {ambient} (inputs + bias + outputs): "
        "the empirical-measure Wasserstein rate for a full-dimensional support", "units": "1"})
    widest = ds.support_dim.sel(width=max(widths), drop=True)
    out["predicted_slope_effective"] = (-1.0 / widest).assign_attrs(
        long_name="-1/d for d = the participation ratio of the neuron weights at the largest width", units="1")
    out["slope_minus_predicted_effective"] = (out.wm_barrier_loglog_slope - out.predicted_slope_effective).assign_attrs(
        long_name="measured WM log-log slope minus the effective-dimension prediction (data, not judged)", units="1")
    return out.assign_attrs(dataset=base.dataset, arch=ARCH, optimizer=OPTIMIZER)


def dimension_vs_barrier(lab: Lab, variation: str = "input_dim") -> xr.Dataset:
    """Claim 10: across settings that vary the neurons' dimension (`VARIATIONS`: the input
    projected onto k principal components, or the SGD learning rate), the rank correlation,
    width by width, between the neurons' dimension and the WM test barrier."""
    base, _ = family_runs(lab.scale)
    settings = variation_runs(lab.scale, variation)
    if len(settings) < 3:
        raise LmcClaimsError(
            f"Scale {lab.scale.name!r} has {len(settings)} two-layer settings varying {variation}; a rank "
            "correlation across settings needs at least 3.",
            f"add runs to the scale's extra_runs in lmc_claims/scales.py ({ARCH}{TAG}lr<lr> runs for 'lr').",
        )
    widths = shared_widths(settings)
    out = _settings_table(lab, settings, widths, variation)
    rho = _correlation_by_width(out.support_dim, out.wm_barrier)
    out["spearman_by_width"] = (("pair", "width"), rho, {
        "long_name": "Spearman correlation across settings of support_dim and wm_barrier at one width", "units": "1"})
    out["spearman_dim_barrier"] = ("pair", row_means(rho), {
        "long_name": "mean over widths of the Spearman correlation across settings between the neurons' "
        "dimension and the WM test barrier", "units": "1"})
    out[f"spearman_{variation}_barrier"] = ("pair", row_means(_correlation_by_width(out[variation], out.wm_barrier)), {
        "long_name": f"the same with the varied quantity ({variation}) in place of the measured dimension", "units": "1"})
    per_setting = lambda f: np.array([[f(out.wm_barrier.sel(pair=p, setting=s).values) for s in out.setting.values]
                                      for p in out.pair.values])
    out["width_to_lmc"] = (("pair", "setting"), per_setting(lambda b: first_width_below(widths, b, LMC_BARRIER)), {
        "long_name": f"smallest width from which on the WM test barrier stays <= {LMC_BARRIER} nats (NaN: none)",
        "units": "1"})
    out["wm_barrier_loglog_slope"] = (("pair", "setting"), per_setting(lambda b: loglog_slope(widths, b)[0]), {
        "long_name": "slope of log(WM test barrier) against log(width), per setting", "units": "1"})
    return out.assign_attrs(base_dataset=base.dataset, arch=ARCH, optimizer=OPTIMIZER, variation=variation)


def _settings_table(lab: Lab, settings, widths, variation: str) -> xr.Dataset:
    """Barriers, dimensions and endpoint quality over (pair, setting, width)."""
    names = [setting_label(r, variation) for r in settings]
    sweeps = [setting_sweep(lab, r, widths) for r in settings]
    stack = lambda arrays: xr.concat(arrays, dim="setting", coords="minimal", compat="override").assign_coords(setting=names)
    test_barrier = lambda ds, search: ds.loss_barrier_by_split.sel(split="test", search=search, drop=True)
    out = xr.Dataset(
        {
            "wm_barrier": stack([test_barrier(d, "wm") for d in sweeps]).assign_attrs(
                long_name="test loss barrier after WM (optimal transport of the neurons)", units="nats"),
            "naive_barrier": stack([test_barrier(d, "naive") for d in sweeps]).assign_attrs(
                long_name="test loss barrier without matching", units="nats"),
            **{v: stack([d[v] for d in sweeps]) for v in ("support_dim", "energy_rank", "endpoint_test_loss",
                                                          "endpoint_test_accuracy")},
        },
    ).transpose("pair", "setting", "width")
    return out.assign_coords(input_dim=("setting", [input_dim(r.dataset) for r in settings]),
                             lr=("setting", [r.lr for r in settings]))


def _correlation_by_width(x: xr.DataArray, barrier: xr.DataArray) -> np.ndarray:
    """(pair, width) Spearman correlations across settings; x may or may not vary by pair and width."""
    at = lambda da, p, w: da.sel({k: v for k, v in (("pair", p), ("width", w)) if k in da.dims})
    return np.array([[spearman(at(x, p, w), at(barrier, p, w)) for w in barrier.width.values]
                     for p in barrier.pair.values])
