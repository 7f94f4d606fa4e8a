"""Ferbach, Goujaud, Gidel, Dieuleveut 2024 (arXiv 2310.19103), abstract and §6 (Figure 2):
linear mode connectivity correlates with the dimension of the support of the neuron weights.

Statement: the dimension of the support of the neurons' weight distribution dictates the
Wasserstein convergence rate, and with it LMC: settings whose neuron weights occupy a
lower-dimensional support have smaller barriers after matching (reach LMC at smaller widths).
How the dimension is varied, two ways, one claim test each (`variation`):
- `lr`, the paper's way: secondary summaries of its Figure 2 describe a 3 x 512 MLP on MNIST
  trained by SGD at learning rates from 1e-4 to 1e-1 (the paper's text could not be read here).
  Here the two-layer network of the family is trained by SGD on MNIST at the scale's learning
  rates (the base run and its `mlp-d1@lr<lr>` runs: ci 0.003, 0.01, 0.03, 0.1; paper 1e-4 to
  1e-1), everything else equal.
- `input_dim`, ours: the support dimension varied directly through the input dimension, the
  two-layer SGD runs on MNIST projected onto its top k principal components
  (`mnist5k-pca<k>`, fitted on the training split) and on unprojected MNIST.
Both at every width the settings share (lmc_claims/scales.py `extra_runs`).
Dimension estimate: the participation ratio tr(S)^2 / tr(S^2) of the covariance S of the hidden
neurons' weight vectors (incoming weights, bias, outgoing weights), the paper's approximate
dimension, mean of the pair's two models (it does not depend on the neurons' order, so matching
does not change it). The number of eigenvalues holding 90% of tr(S) is stored too.
Metric: per independent pair and width, the Spearman correlation across settings between that
dimension and the test loss barrier after weight matching (one linear assignment of the neuron
weight vectors: optimal transport); the statistic is its mean over widths. Comparing settings
width by width keeps width (which changes both quantities) out of the correlation. Stored as
data: the same correlation with the varied quantity itself, unmatched barriers, endpoint losses,
per-setting log-log slopes, and the smallest width from which the barrier stays below 0.05 nats
(the project's "near zero" of ainsworth2023-wm-barrier).
Criterion: correlation > 0 with a one-sided 95% t-bound over pairs; the direction is the paper's,
the bound is ours. Lower input dimension also makes the task harder (higher endpoint loss), and a
lower learning rate leaves the net less trained in the same epochs; the barrier in nats does not
separate either out, so the endpoint losses are stored for that reading.
"""

import pytest

from lmc_claims.measurements import ferbach2024, shared

pytestmark = pytest.mark.claims
CLAIM = "ferbach2024-dimension-vs-barrier"


@pytest.mark.parametrize("variation", ferbach2024.VARIATIONS)
def test_lower_dimension_lower_barrier(two_layer_run, variation, claims_lab, verify):
    arch, dataset = two_layer_run
    pairs = claims_lab.scale.pairs
    runs = ferbach2024.variation_runs(claims_lab.scale, variation)
    widths = ferbach2024.shared_widths(runs)
    families = [(ferbach2024.setting_label(r, variation), claims_lab.settings(r.arch, r.dataset, widths)) for r in runs]
    ds = ferbach2024.dimension_vs_barrier(families, pairs, variation)
    dims = ds.support_dim.mean(("pair", "width"))
    barriers = ds.wm_barrier.mean(("pair", "width"))
    note = "mean over pairs and widths, per setting: " + "; ".join(
        f"{name}: dimension {float(dims.sel(setting=name)):.1f}, WM barrier {float(barriers.sel(setting=name)):.3f} nats"
        for name in ds.setting.values)
    recipe = claims_lab.scale.run(arch, dataset).recipe
    verify(CLAIM, ds, config={"arch": arch, "base_dataset": dataset, "variation": variation,
                              "settings": [name for name, _ in families], "widths": list(widths),
                              "optimizer": recipe.optimizer, "lrs": [r.recipe.lr for r in runs],
                              "epochs": recipe.epochs, "batch_size": recipe.batch_size},
           seeds=shared.seeds_of(pairs), notes=(note,))
