"""Ferbach, Goujaud, Gidel, Dieuleveut 2024 (arXiv 2310.19103), abstract and Theorem 3.1:
two wide two-layer networks trained by SGD are linearly connected after optimal-transport
matching of their hidden neurons, and the barrier shrinks with width.

Statement: with high probability, two two-layer networks trained by SGD from independent seeds
are linearly connected once their hidden neurons are matched by optimal transport, provided they
are wide enough. The mechanism is the convergence of empirical measures in Wasserstein distance,
whose rate for a d-dimensional support is about width^(-1/d): for weights as spread as at a
Gaussian initialisation, width eps^(-m0) (m0: input dimension) suffices for an error eps.
Setting: the scale's two-layer run (`mlp-d1`: one hidden ReLU layer of `width` units, the
project's standard parametrisation, not the mean-field 1/width scaling of Theorem 3.1) trained by
plain SGD (the run's lr, cosine decay, no momentum) on MNIST, at every width of the run; widths,
epochs and data sizes are in lmc_claims/scales.py (`extra_runs`).
Matching: with one hidden layer, weight matching is one linear assignment between the neurons'
weight vectors (incoming weights, bias, outgoing weights) minimising the summed squared distance:
exactly the optimal transport between the two empirical neuron measures.
Metric: per independent pair, the least-squares slope of log(test loss barrier after matching)
against log(width) (25 interpolation points; widths whose barrier is exactly 0 are left out of
the fit, and fewer than 3 widths leave the pair without a value). Stored beside it as data:
the unmatched barrier and its slope, train-split barriers, and the predicted slope -1/d for the
neurons' ambient dimension d (inputs + bias + outputs) and for their measured dimension (the
participation ratio of the neuron weight vectors at the largest width).
Criterion: slope < 0 with a one-sided 95% t-bound over pairs. The direction is the paper's; the
bound is ours. The paper's rate is an upper bound with unspecified constants (and for -1/784 it
is flat at these widths), so measured and predicted slopes are reported, not compared by a
criterion.
"""

import pytest

from lmc_claims.measurements import ferbach2024, shared

pytestmark = pytest.mark.claims
CLAIM = "ferbach2024-barrier-vs-width"


def test_barrier_shrinks_with_width(two_layer_run, claims_lab, verify):
    arch, dataset = two_layer_run
    run = claims_lab.scale.run(arch, dataset)
    settings = claims_lab.settings(arch, dataset)

    def note(ds, pairs):
        slope = ds.wm_barrier_loglog_slope
        return (f"measured WM log-log slope per pair {[round(float(v), 3) for v in slope.values]} "
                f"(mean {float(slope.mean()):.3f}); predicted -1/d: {float(ds.predicted_slope_ambient[0]):.4f} for the "
                f"ambient dimension, {float(ds.predicted_slope_effective.mean()):.3f} for the measured dimension "
                f"(participation ratio {float(ds.support_dim.sel(width=max(run.widths)).mean()):.1f} at width "
                f"{max(run.widths)}); naive slope mean {float(ds.naive_barrier_loglog_slope.mean()):.3f}",)

    recipe = run.recipe
    verify(CLAIM, lambda pairs: ferbach2024.barrier_vs_width(settings, pairs),
           config={"arch": arch, "dataset": dataset, "widths": list(run.widths), "optimizer": recipe.optimizer,
                   "lr": recipe.lr, "epochs": recipe.epochs, "batch_size": recipe.batch_size, "n_train": recipe.n_train},
           seeds=lambda ds, pairs: shared.seeds_of(pairs), notes=note)
