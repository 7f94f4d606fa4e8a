"""Ferbach, Goujaud, Gidel, Dieuleveut 2024 (arXiv 2310.19103), abstract and §6, Figure 2: LMC
correlates with the dimension of the support of the neuron weight distribution.

Statement: settings whose neuron weights occupy a lower-dimensional support have smaller barriers
after matching.
Protocol, as the paper's Figure 2 (PUBLISHED.md [code: OT_LMC notebook]): a 3 x 512 ReLU MLP on
MNIST (here the 5,000 embedded digits at ci) trained by SGD with momentum 0.9, warm-up from 1e-6
over 10 steps then cosine, batch 500, at 6 learning rates log-spaced from 1e-4 to 1e-1; seeds s
and s + 1 per pair. The approximate dimension is the participation ratio (sum lam)^2 / sum lam^2
of the eigenvalues of the uncentred W^T W per hidden layer (mean over layers; the covariance-
weighted W Sigma_in W^T is stored beside); the barrier is the test loss at t = 1/2 after weight
matching. At ci the nets train 20 epochs (the paper: 50) with the scale's 3 repetitions (the
paper: 4); paper scale uses full MNIST and 50 epochs.
Beyond the paper (decides nothing; shown apart): the same correlation across input dimensions,
two-layer SGD nets on MNIST projected onto k principal components (scales.two_layer_family),
the neurons' dimension as the participation ratio of their weight vectors' covariance, the
barrier as the maximum over the path.
Criterion: Spearman correlation across settings between dimension and barrier above 0, one-sided
95% t-bound over independent pairs (direction from the paper, bound ours).
"""
import pytest

from lmc_claims.measurements import ferbach2024, shared

pytestmark = pytest.mark.claims
CLAIM = "ferbach2024-dimension-vs-barrier"


def test_lower_dimension_lower_barrier(dimension_family, claims_lab, verify):
    variation, arch, dataset = dimension_family
    runs = ferbach2024.variation_runs(claims_lab.scale, variation)
    widths = ferbach2024.shared_widths(runs)

    def measure(pairs):
        if variation == "lr":
            return ferbach2024.figure2([(ferbach2024.setting_label(r, variation), claims_lab.setting(r.arch, r.dataset, max(widths)))
                                        for r in runs], pairs)
        families = [(ferbach2024.setting_label(r, variation), claims_lab.settings(r.arch, r.dataset, widths)) for r in runs]
        return ferbach2024.dimension_vs_barrier(families, pairs, variation)

    def note(ds, pairs):
        if variation == "lr":
            barriers, dims = ds.wm_midpoint_test_loss.mean("pair"), ds.support_dim.mean("pair")
        else:
            barriers, dims = ds.wm_barrier.mean(("pair", "width")), ds.support_dim.mean(("pair", "width"))
        return ("mean over pairs (and widths), per setting: " + "; ".join(
            f"{name}: dimension {float(dims.sel(setting=name)):.1f}, WM barrier {float(barriers.sel(setting=name)):.3f} nats"
            for name in ds.setting.values),)

    recipe = claims_lab.scale.run(arch, dataset).recipe
    verify(CLAIM, measure, config=lambda ds, pairs: {
               "arch": arch, "base_dataset": dataset, "variation": variation, "settings": list(ds.setting.values),
               "widths": list(widths), "optimizer": recipe.optimizer, "momentum": recipe.momentum,
               "lrs": [r.recipe.lr for r in runs], "epochs": recipe.epochs, "batch_size": recipe.batch_size},
           seeds=lambda ds, pairs: shared.seeds_of(pairs), notes=note)
