"""Ferbach, Goujaud, Gidel, Dieuleveut 2024 (arXiv 2310.19103), abstract and §6 (Figure 2):
linear mode connectivity correlates with the dimension of the support of the neuron weights.

Statement: the dimension of the support of the neurons' weight distribution dictates the
Wasserstein convergence rate, and with it LMC: settings whose neuron weights occupy a
lower-dimensional support have smaller barriers after matching (reach LMC at smaller widths).
How the dimension is varied: the paper's Figure 2 varies the SGD learning rate of a 3 x 512 MLP.
Here the support dimension is varied directly, through the input dimension: the scale's two-layer
SGD runs on MNIST projected onto its top k principal components (`mnist5k-pca<k>`, fitted on the
training split) and on unprojected MNIST, at every width (lmc_claims/scales.py `extra_runs`).
Dimension estimate: the participation ratio tr(S)^2 / tr(S^2) of the covariance S of the hidden
neurons' weight vectors (incoming weights, bias, outgoing weights), the paper's approximate
dimension, mean of the pair's two models (it does not depend on the neurons' order, so matching
does not change it). The number of eigenvalues holding 90% of tr(S) is stored too.
Metric: per independent pair and width, the Spearman correlation across settings between that
dimension and the test loss barrier after weight matching (one linear assignment of the neuron
weight vectors: optimal transport); the statistic is its mean over widths. Comparing settings
width by width keeps width (which changes both quantities) out of the correlation. Stored as
data: the same correlation with the input dimension itself, unmatched barriers, endpoint losses,
per-setting log-log slopes, and the smallest width from which the barrier stays below 0.05 nats
(the project's "near zero" of ainsworth2023-wm-barrier).
Criterion: correlation > 0 with a one-sided 95% t-bound over pairs; the direction is the paper's,
the bound is ours. Lower input dimension also makes the task harder (higher endpoint loss), which
the barrier in nats does not separate out; the endpoint losses are stored for that reading.
"""

import pytest

from lmc_claims import two_layer

pytestmark = pytest.mark.claims
CLAIM = "ferbach2024-dimension-vs-barrier"


def test_lower_dimension_lower_barrier(two_layer_run, claims_lab, verify):
    arch, dataset = two_layer_run
    _, settings = two_layer.family_runs(claims_lab.scale)
    ds = two_layer.dimension_vs_barrier(claims_lab)
    dims = ds.support_dim.mean(("pair", "width"))
    barriers = ds.wm_barrier.mean(("pair", "width"))
    note = "mean over pairs and widths, per setting: " + "; ".join(
        f"{s}: dimension {float(dims.sel(setting=s)):.1f}, WM barrier {float(barriers.sel(setting=s)):.3f} nats"
        for s in ds.setting.values)
    run = claims_lab.run(arch, dataset)
    verify(CLAIM, ds, config={"arch": arch, "base_dataset": dataset, "settings": [r.dataset for r in settings],
                              "widths": list(two_layer.shared_widths(settings)), "optimizer": run.optimizer,
                              "lr": run.lr, "epochs": run.epochs, "batch_size": run.batch_size},
           seeds=[s for p in claims_lab.scale.pairs for s in p], notes=(note,))
