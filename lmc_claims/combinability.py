"""Mode combinability (Csiszárik, Kiss, Kőrösi-Szabó, Muntag, Papp, Varga 2023, arXiv 2308.11511).

For two permutation-aligned models A and pi(B) and a coefficient vector c in [0, 1]^d,

    theta_c = c * theta_A + (1 - c) * pi(theta_B)        (element-wise),

over the parameters the permutation spec names; every other tensor (e.g. BatchNorm counters)
comes from A, and BatchNorm statistics are reset on training data when the net has BatchNorm.
The first half of this module holds pure functions (coefficients, combinations, perturbed
matchings, predictions); the second half measures them on a Lab's models and returns xarray
Datasets with a `pair` dimension (one row per independent model pair) holding the raw samples
and the per-pair statistics the csiszarik2023 claims judge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr
from scipy import stats
from torch import nn
from torch.func import functional_call

from . import measure
from .lab import Lab
from .metrics.interpolation import DEFAULT_LAMBDAS, chord, interpolation_curve, reset_bn_stats
from .permutation.apply import Params, Perms, apply_permutation
from .permutation.spec import PermutationSpec

# How c is drawn. uniform: the hypercube [0, 1]^d, one value per weight; bernoulli: its
# corners, each weight from A or from B with probability 1/2; neuron: one value per unit
# (output row / channel) of a layer, shared by the unit's weights, bias and norm parameters;
# layer: one value per layer (module), shared by all of its parameters.
SCHEMES = ("uniform", "bernoulli", "neuron", "layer")
SEARCHES = ("naive", "wm")  # unaligned vs weight-matched B: the same c is applied to both
ENDPOINTS = ("A", "B")
# Fraction of every permutation's matched pairs that a perturbation breaks (claim 13).
FRACTIONS = (0.0, 0.1, 0.25, 0.5, 1.0)
# Coefficient vectors drawn per scheme (and per broken fraction) and pair, each applied to the
# aligned and to the unaligned pair. Kept small at ci: the family's share of the default run
# is about two minutes on 2 CPU cores.
SAMPLES = {"smoke": 2, "ci": 8, "paper": 32}


def n_samples(scale_name: str) -> int:
    """Samples per scheme for a scale; a scale not listed gets the ci count."""
    return SAMPLES.get(scale_name, SAMPLES["ci"])


def derived_seed(*parts: int) -> int:
    """A seed from integers, the same in every process (never Python's hash())."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


# -- coefficients and combinations ----------------------------------------------------

def _module(name: str) -> str:
    """The layer a parameter belongs to: 'layers.0.weight' -> 'layers.0'."""
    return name.rsplit(".", 1)[0]


def _per_weight(scheme: str, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    return u if scheme == "uniform" else (u < 0.5).double()


def coefficients(spec: PermutationSpec, params: Params, scheme: str, generator: torch.Generator) -> Params:
    """A coefficient tensor in [0, 1] for every parameter the spec names (its shape, dtype, device).

    Draws happen on the CPU generator in the spec's order, so a seed gives the same c on every device."""
    shared: dict[str, torch.Tensor] = {}  # one draw per layer (or per unit of a layer), shared by its tensors
    out = {}
    for name in spec.axes_to_perm:
        p = params[name]
        if scheme in ("uniform", "bernoulli"):
            c = _per_weight(scheme, p.shape, generator)
        elif scheme in ("neuron", "layer"):
            layer = _module(name)
            if layer not in shared:  # drawn once per layer, in the spec's order
                size = (p.shape[0],) if scheme == "neuron" else ()
                shared[layer] = torch.rand(size, generator=generator, dtype=torch.float64)
            c = shared[layer].view(-1, *([1] * (p.dim() - 1))) if scheme == "neuron" else shared[layer]
            c = c.expand(p.shape)
        else:
            raise ValueError(f"unknown coefficient scheme {scheme!r}; use one of {SCHEMES}")
        out[name] = c.to(device=p.device, dtype=p.dtype)
    return out


def constant_coefficients(spec: PermutationSpec, params: Params, value: float) -> Params:
    """c = value everywhere: the straight line's point lam = 1 - value (lam = 0 is A)."""
    return {name: torch.full_like(params[name], value) for name in spec.axes_to_perm}


def combine(a: Params, b: Params, c: Params) -> Params:
    """theta_c = c * a + (1 - c) * b for the tensors c covers; every other tensor from a.

    Written as a sum of products (not b + c (a - b)) so that c = 1 gives a and c = 0 gives b exactly."""
    return {k: c[k] * a[k] + (1 - c[k]) * b[k] if k in c else a[k] for k in a}


# -- perturbed matchings ------------------------------------------------------------

def perturb(perm: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """The permutation with round(fraction * n) of its matched pairs broken.

    The chosen units' partners are rotated along a random cycle (for two units, a swap), so
    every chosen unit gets another chosen unit's partner: exactly k units move when k >= 2
    (one unit alone cannot move and is left as it is)."""
    n = perm.numel()
    k = int(round(fraction * n))
    out = perm.clone()
    if k < 2:
        return out
    chosen = torch.randperm(n, generator=generator)[:k].to(perm.device)
    out[chosen] = perm[chosen.roll(1)]
    return out


def perturb_perms(perms: Perms, fraction: float, generator: torch.Generator) -> Perms:
    """Every permutation perturbed by the same fraction (in a fixed order, for reproducibility)."""
    return {p: perturb(perms[p], fraction, generator) for p in sorted(perms)}


def moved_fraction(before: Perms, after: Perms) -> float:
    """Fraction of all units (over every permutation) whose partner changed."""
    moved = sum(int((before[p] != after[p]).sum()) for p in before)
    return moved / sum(before[p].numel() for p in before)


# -- predictions ------------------------------------------------------------------------

@torch.no_grad()
def outputs(model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, batch: int = 1000):
    """Mean cross-entropy, accuracy and the predicted class of every example."""
    model.eval()
    loss, preds = 0.0, []
    for i in range(0, len(x), batch):
        out = functional_call(model, params, (x[i : i + batch],))
        loss += nn.functional.cross_entropy(out, y[i : i + batch], reduction="sum").item()
        preds.append(out.argmax(1))
    pred = torch.cat(preds)
    return loss / len(x), (pred == y).double().mean().item(), pred


def disagreement(p: torch.Tensor, q: torch.Tensor) -> float:
    """Fraction of examples on which two models predict different classes."""
    return (p != q).double().mean().item()


def _prepared(model: nn.Module, params: Params, bn_data: torch.Tensor | None) -> Params:
    """Combined weights match neither endpoint's BatchNorm statistics: reset them (Git Re-Basin / REPAIR)."""
    return params if bn_data is None else reset_bn_stats(model, params, bn_data)


# -- measurements on trained models -------------------------------------------------------

def _pairs(lab: Lab) -> list[str]:
    return [measure.pair_label(*p) for p in lab.scale.pairs]


@dataclass(frozen=True)
class Sampling:
    """What one setting's sampled combinations use."""

    samples: int
    x: torch.Tensor  # test examples
    y: torch.Tensor


def sampling(lab: Lab, arch: str, dataset: str, width: int) -> Sampling:
    return Sampling(n_samples(lab.scale.name), *lab.eval_sets(arch, dataset)["test"])


def samples(lab: Lab, arch: str, dataset: str, width: int) -> xr.Dataset:
    """Test loss, accuracy and prediction disagreement of theta_c for every pair, search (naive,
    WM), scheme and sample, with the endpoints and the midpoint c = 1/2. Shared by the
    combinability and non-vacuity claims (computed once per session)."""
    return lab.memo(("csiszarik2023-samples", arch, dataset, width), lambda: _samples(lab, arch, dataset, width))


def _sample_seed(sa: int, sb: int, scheme: int, n: int) -> int:
    # The search is not part of the seed: naive and WM get the same c (a paired comparison).
    return derived_seed(sa, sb, scheme, n)


def _samples(lab: Lab, arch: str, dataset: str, width: int) -> xr.Dataset:
    plan = sampling(lab, arch, dataset, width)
    n_pairs, k = len(lab.scale.pairs), plan.samples
    shape = (n_pairs, len(SEARCHES), len(SCHEMES), k)
    per_sample = {v: np.full(shape, np.nan) for v in ("loss", "accuracy", "with_a", "with_b", "with_next")}
    mid = {v: np.zeros(shape[:2]) for v in ("loss", "accuracy")}
    ends = {v: np.zeros(n_pairs if v.endswith("disagreement") else (n_pairs, 2))
            for v in ("loss", "accuracy", "disagreement", "self_disagreement")}
    for i, (sa, sb) in enumerate(lab.scale.pairs):
        preds = _endpoints(lab, arch, dataset, width, sa, sb, plan, ends, i)
        for j, search in enumerate(SEARCHES):
            _pair_samples(lab, arch, dataset, width, sa, sb, search, plan, preds, per_sample, mid, (i, j))
    return _samples_dataset(lab, plan, per_sample, mid, ends, lab.bn_data(arch, dataset, width) is not None)


def _endpoints(lab, arch, dataset, width, sa, sb, plan: Sampling, ends: dict, i: int):
    """Loss, accuracy and predictions of A and B; A's disagreement with B and with itself."""
    model = lab.template(arch, dataset, width)
    out = [outputs(model, lab.model(arch, dataset, width, s), plan.x, plan.y) for s in (sa, sb)]
    ends["loss"][i], ends["accuracy"][i] = [o[0] for o in out], [o[1] for o in out]
    ends["disagreement"][i] = disagreement(out[0][2], out[1][2])
    again = outputs(model, lab.model(arch, dataset, width, sa), plan.x, plan.y)[2]  # the same model evaluated again
    ends["self_disagreement"][i] = disagreement(out[0][2], again)
    return out[0][2], out[1][2]


def _pair_samples(lab, arch, dataset, width, sa, sb, search, plan: Sampling, preds, per_sample: dict, mid: dict, at):
    """Every scheme's combinations of A with B (unaligned or WM-permuted), and the midpoint."""
    spec, model = lab.spec(arch, dataset, width), lab.template(arch, dataset, width)
    bn_data = lab.bn_data(arch, dataset, width)
    a, b = lab.model(arch, dataset, width, sa), lab.permuted(search, arch, dataset, width, sa, sb)
    half = _prepared(model, combine(a, b, constant_coefficients(spec, a, 0.5)), bn_data)
    mid["loss"][at], mid["accuracy"][at], _ = outputs(model, half, plan.x, plan.y)
    k = plan.samples
    for s, scheme in enumerate(SCHEMES):
        seen = []
        for n in range(k):
            gen = torch.Generator().manual_seed(_sample_seed(sa, sb, s, n))
            params = _prepared(model, combine(a, b, coefficients(spec, a, scheme, gen)), bn_data)
            loss, acc, pred = outputs(model, params, plan.x, plan.y)
            idx = at + (s, n)
            per_sample["loss"][idx], per_sample["accuracy"][idx] = loss, acc
            per_sample["with_a"][idx], per_sample["with_b"][idx] = disagreement(pred, preds[0]), disagreement(pred, preds[1])
            seen.append(pred)
        if k > 1:
            per_sample["with_next"][at + (s,)] = [disagreement(seen[n], seen[(n + 1) % k]) for n in range(k)]


def _samples_dataset(lab: Lab, plan: Sampling, per_sample: dict, mid: dict, ends: dict, bn_reset: bool) -> xr.Dataset:
    dims = ("pair", "search", "scheme", "sample")
    var = lambda d, v, long, units: (d, v, {"long_name": long, "units": units})
    return xr.Dataset(
        {
            "combination_loss": var(dims, per_sample["loss"], "test cross-entropy of theta_c", "nats"),
            "combination_accuracy": var(dims, per_sample["accuracy"], "test accuracy of theta_c", "1"),
            "disagreement_with_a": var(dims, per_sample["with_a"], "fraction of test predictions of theta_c differing from A's", "1"),
            "disagreement_with_b": var(dims, per_sample["with_b"], "fraction of test predictions of theta_c differing from B's", "1"),
            "disagreement_between_samples": var(dims, per_sample["with_next"], "fraction of test predictions differing "
                                                "between this sample and the next one of its scheme", "1"),
            "midpoint_loss": var(("pair", "search"), mid["loss"], "test cross-entropy at c = 1/2 (the straight line's midpoint)", "nats"),
            "midpoint_accuracy": var(("pair", "search"), mid["accuracy"], "test accuracy at c = 1/2", "1"),
            "endpoint_loss": var(("pair", "endpoint"), ends["loss"], "test cross-entropy of each endpoint model", "nats"),
            "endpoint_accuracy": var(("pair", "endpoint"), ends["accuracy"], "test accuracy of each endpoint model", "1"),
            "endpoints_disagreement": var("pair", ends["disagreement"], "fraction of test predictions differing between A and B", "1"),
            "self_disagreement": var("pair", ends["self_disagreement"],
                                     "fraction of test predictions differing between A and A evaluated again", "1"),
        },
        coords={"pair": _pairs(lab), "search": list(SEARCHES), "scheme": list(SCHEMES), "sample": np.arange(plan.samples),
                "endpoint": list(ENDPOINTS)},
        attrs={"batchnorm_reset": int(bn_reset), "n_test_eval": len(plan.y), "samples_per_scheme": plan.samples,
               "combination": "theta_c = c * theta_A + (1 - c) * pi(theta_B) on the permutation spec's tensors, others from A"},
    )


def _endpoint_mean(ds: xr.Dataset) -> xr.DataArray:
    return ds.endpoint_loss.mean("endpoint")


def combinability(lab: Lab, arch: str, dataset: str, width: int) -> xr.Dataset:
    """Claim 11: per pair and scheme, the share of the unaligned combinations' excess loss
    (mean loss of theta_c minus the endpoints' mean loss) that weight matching removes."""
    ds = samples(lab, arch, dataset, width).copy()
    ds["endpoint_mean_loss"] = _endpoint_mean(ds).assign_attrs(long_name="mean test loss of A and B", units="nats")
    ds["excess_loss"] = (ds.combination_loss.mean("sample") - ds.endpoint_mean_loss).assign_attrs(
        long_name="mean over samples of the test loss of theta_c minus the endpoints' mean loss", units="nats")
    ds["midpoint_excess_loss"] = (ds.midpoint_loss - ds.endpoint_mean_loss).assign_attrs(
        long_name="test loss at c = 1/2 minus the endpoints' mean loss", units="nats")
    removed = 1 - ds.excess_loss.sel(search="wm", drop=True) / ds.excess_loss.sel(search="naive", drop=True)
    ds["excess_removed"] = removed.assign_attrs(long_name="1 - excess loss after WM / excess loss unaligned", units="1")
    for scheme in SCHEMES:
        ds[f"excess_removed_{scheme}"] = removed.sel(scheme=scheme, drop=True).assign_attrs(
            long_name=f"1 - excess loss after WM / unaligned, {scheme} coefficients", units="1")
    return ds


def non_vacuity(lab: Lab, arch: str, dataset: str, width: int) -> xr.Dataset:
    """Claim 14: how often the WM-aligned combinations predict differently from the nearer of
    their endpoints, against a model's disagreement with itself and the endpoints' with each other."""
    ds = samples(lab, arch, dataset, width).copy()
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


def robustness(lab: Lab, arch: str, dataset: str, width: int) -> xr.Dataset:
    """Claim 13: uniform-hypercube combinations of A with B permuted by a WM matching in which a
    fraction f of every permutation's matched pairs was broken, for f in FRACTIONS."""
    return lab.memo(("csiszarik2023-robustness", arch, dataset, width), lambda: _robustness(lab, arch, dataset, width))


def _robustness(lab: Lab, arch: str, dataset: str, width: int) -> xr.Dataset:
    plan = sampling(lab, arch, dataset, width)
    model = lab.template(arch, dataset, width)
    shape = (len(lab.scale.pairs), len(FRACTIONS), plan.samples)
    rows = {v: np.zeros(shape) for v in ("loss", "accuracy", "moved")}
    end_loss = np.zeros((len(lab.scale.pairs), 2))
    for i, (sa, sb) in enumerate(lab.scale.pairs):
        end_loss[i] = [outputs(model, lab.model(arch, dataset, width, s), plan.x, plan.y)[0] for s in (sa, sb)]
        for q, fraction in enumerate(FRACTIONS):
            for n in range(plan.samples):
                rows["loss"][i, q, n], rows["accuracy"][i, q, n], rows["moved"][i, q, n] = _perturbed_sample(
                    lab, arch, dataset, width, sa, sb, fraction, derived_seed(sa, sb, 1000 + q, n), plan)
    dims = ("pair", "fraction", "sample")
    var = lambda d, v, long, units: (d, v, {"long_name": long, "units": units})
    ds = xr.Dataset(
        {
            "perturbed_loss": var(dims, rows["loss"], "test cross-entropy of theta_c (uniform c) with a perturbed WM matching", "nats"),
            "perturbed_accuracy": var(dims, rows["accuracy"], "test accuracy of theta_c (uniform c) with a perturbed WM matching", "1"),
            "units_moved": var(dims, rows["moved"], "fraction of all matched units whose partner was changed", "1"),
            "endpoint_loss": var(("pair", "endpoint"), end_loss, "test cross-entropy of each endpoint model", "nats"),
        },
        coords={"pair": _pairs(lab), "fraction": list(FRACTIONS), "sample": np.arange(plan.samples), "endpoint": list(ENDPOINTS)},
        attrs={"batchnorm_reset": int(lab.bn_data(arch, dataset, width) is not None), "n_test_eval": len(plan.y),
               "samples_per_fraction": plan.samples,
               "perturbation": "per permutation, round(f * n) matched units rotated along a random cycle"},
    )
    return _robustness_statistics(ds)


def _perturbed_sample(lab: Lab, arch, dataset, width, sa, sb, fraction: float, seed: int, plan: Sampling):
    """Loss and accuracy of one uniform combination of A with B under a freshly perturbed WM
    matching, and the fraction of units the perturbation moved."""
    spec, model = lab.spec(arch, dataset, width), lab.template(arch, dataset, width)
    a, b = lab.model(arch, dataset, width, sa), lab.model(arch, dataset, width, sb)
    perms = lab.match("wm", arch, dataset, width, sa, sb)
    gen = torch.Generator().manual_seed(seed)
    broken = perturb_perms(perms, fraction, gen)
    b_f = apply_permutation(spec, broken, b)
    params = _prepared(model, combine(a, b_f, coefficients(spec, a, "uniform", gen)), lab.bn_data(arch, dataset, width))
    loss, acc, _ = outputs(model, params, plan.x, plan.y)
    return loss, acc, moved_fraction(perms, broken)


def _spearman(x, y) -> float:
    return float(stats.spearmanr(x, y).statistic) if np.ptp(y) > 0 else float("nan")


def _robustness_statistics(ds: xr.Dataset) -> xr.Dataset:
    ds["perturbed_excess_loss"] = (ds.perturbed_loss.mean("sample") - _endpoint_mean(ds)).assign_attrs(
        long_name="mean test loss of theta_c minus the endpoints' mean loss", units="nats")
    excess = ds.perturbed_excess_loss
    ds["excess_removed_at_quarter"] = (1 - excess.sel(fraction=0.25, drop=True) / excess.sel(fraction=1.0, drop=True)).assign_attrs(
        long_name="1 - excess loss with 25% of the matches broken / excess loss with all broken", units="1")
    ds["loss_rank_correlation"] = xr.DataArray(
        [_spearman(ds.fraction.values, row) for row in ds.perturbed_loss.mean("sample").values], dims="pair",
        attrs={"long_name": "Spearman correlation between the broken fraction and the mean test loss", "units": "1"})
    return ds


def third_model(pairs: list[tuple[int, int]], index: int) -> int:
    """The common model C both members of pair `index` are re-based onto: the first model of the
    next pair (cyclically), an already trained model outside the pair. With a single pair, the
    next seed after it."""
    if len(pairs) < 2:
        return max(pairs[index]) + 1
    return pairs[(index + 1) % len(pairs)][0]


def transitivity(lab: Lab, arch: str, dataset: str, width: int) -> xr.Dataset:
    """Claim 12: test loss along the straight line between pi_A(A) and pi_B(B), both weight-matched
    onto a common third model C, beside the naive and direct-WM lines of measure.interpolation."""
    return lab.memo(("csiszarik2023-transitivity", arch, dataset, width),
                    lambda: _transitivity(lab, arch, dataset, width))


def _transitivity(lab: Lab, arch: str, dataset: str, width: int) -> xr.Dataset:
    direct = measure.interpolation(lab, arch, dataset, width).sel(split=["test"])[["loss", "accuracy"]]
    x, y = lab.eval_sets(arch, dataset)["test"]
    model, bn_data = lab.template(arch, dataset, width), lab.bn_data(arch, dataset, width)
    pairs = lab.scale.pairs
    loss, acc, third = np.zeros((len(pairs), len(DEFAULT_LAMBDAS))), np.zeros((len(pairs), len(DEFAULT_LAMBDAS))), []
    for i, (sa, sb) in enumerate(pairs):
        c = third_model(pairs, i)
        third.append(c)
        pi_a = lab.permuted("wm", arch, dataset, width, c, sa)
        pi_b = lab.permuted("wm", arch, dataset, width, c, sb)
        curve = interpolation_curve(model, pi_a, pi_b, x, y, DEFAULT_LAMBDAS, bn_data=bn_data)
        loss[i], acc[i] = curve.loss, curve.accuracy
    dims = ("pair", "search", "split", "lam")
    trans = xr.Dataset(
        {"loss": (dims, loss[:, None, None, :]), "accuracy": (dims, acc[:, None, None, :])},
        coords={"pair": _pairs(lab), "search": ["transitive"], "split": ["test"], "lam": DEFAULT_LAMBDAS},
    )
    ds = xr.concat([direct, trans], dim="search")
    ds["loss"].attrs.update(long_name="test cross-entropy along the path (transitive: pi_A(A) to pi_B(B))", units="nats")
    ds["accuracy"].attrs.update(long_name="test accuracy along the path", units="1")
    ds["third_model"] = ("pair", np.array(third), {"long_name": "seed of the common model C both are matched onto"})
    ds.attrs.update(batchnorm_reset=int(bn_data is not None), n_test_eval=len(y))
    return _transitivity_statistics(ds)


def _transitivity_statistics(ds: xr.Dataset) -> xr.Dataset:
    line = lambda v: chord(ds.lam, v.isel(lam=0, drop=True), v.isel(lam=-1, drop=True))
    ds["loss_barrier"] = (ds.loss - line(ds.loss)).max("lam").assign_attrs(
        long_name="loss barrier: max over lam of loss minus the endpoints' chord", units="nats")
    barrier = ds.loss_barrier.sel(split="test", drop=True)
    for search in ("naive", "wm", "transitive"):
        ds[f"barrier_{search}"] = barrier.sel(search=search, drop=True).assign_attrs(
            long_name=f"test loss barrier, {search} path", units="nats")
    ds["barrier_reduction_transitive"] = (1 - ds.barrier_transitive / ds.barrier_naive).assign_attrs(
        long_name="1 - barrier between pi_A(A) and pi_B(B) / naive barrier between A and B", units="1")
    ds["transitive_over_direct"] = (ds.barrier_transitive / ds.barrier_wm).assign_attrs(
        long_name="barrier via the common model / barrier after matching B directly onto A", units="1")
    return ds
