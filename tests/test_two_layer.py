"""Two-layer measurements (Ferbach et al. 2024 claims): dimension estimates, fits, projected
datasets and the SGD option of the training recipe."""

import itertools
import math

import numpy as np
import pytest
import torch

from lmc_claims import scales
from lmc_claims.measurements import ferbach2024
from lmc_claims.metrics import geometry, statistics
from lmc_claims.data import INPUT_SHAPES, check_dataset_name, describe, load_dataset
from lmc_claims.errors import LmcClaimsError
from lmc_claims.matching.weight import weight_matching
from lmc_claims.models.mlp import MLP, mlp_spec
from lmc_claims.models.registry import get_architecture
from lmc_claims.permutation.apply import apply_permutation
from lmc_claims.scales import SCALES
from lmc_claims.training import Recipe, TrainConfig, train


def rows_in_subspace(k: int, n: int = 1000, ambient: int = 40, seed: int = 0) -> np.ndarray:
    """n points spread evenly over a random k-dimensional subspace of R^ambient."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((ambient, k)))[0]
    return rng.standard_normal((n, k)) @ basis.T


@pytest.mark.parametrize("k", [1, 3, 8, 20])
def test_dimension_of_rank_k_vectors_is_about_k(k):
    rows = rows_in_subspace(k)
    assert geometry.participation_ratio(rows) == pytest.approx(k, rel=0.1)
    assert math.floor(0.8 * k) <= geometry.energy_rank(rows, scales.ENERGY) <= k


def test_dimension_ignores_a_common_offset_and_the_order_of_neurons():
    rows = rows_in_subspace(4)
    shifted = rows + 5.0  # every neuron moved by the same vector: no new direction
    assert geometry.participation_ratio(shifted) == pytest.approx(geometry.participation_ratio(rows))
    assert geometry.participation_ratio(rows[::-1]) == pytest.approx(geometry.participation_ratio(rows))


def test_slope_fit_recovers_a_power_law_and_skips_zero_barriers():
    widths = [16, 32, 64, 128, 256]
    slope, used = statistics.loglog_slope(widths, [3.0 * w**-0.5 for w in widths])
    assert slope == pytest.approx(-0.5) and used == 5
    slope, used = statistics.loglog_slope(widths, [0.0, 2.0 * 32**-1.0, 2.0 * 64**-1.0, 2.0 * 128**-1.0, np.nan])
    assert slope == pytest.approx(-1.0) and used == 3
    assert math.isnan(statistics.loglog_slope(widths, [1.0, 0.0, 0.0, 0.5, 0.0])[0])


def test_spearman_ranks_and_declines_constant_inputs():
    assert statistics.spearman([1, 2, 3, 4], [0.1, 0.5, 0.7, 9.0]) == pytest.approx(1.0)
    assert statistics.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(statistics.spearman([1, 2, 3], [0.0, 0.0, 0.0]))


def test_row_means_and_first_width_below():
    means = statistics.row_means(np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan]]))
    assert means[0] == 2.0 and math.isnan(means[1])
    assert statistics.first_width_below([8, 16, 32, 64], [0.2, 0.01, 0.2, 0.01], 0.05) == 64
    assert math.isnan(statistics.first_width_below([8, 16], [0.2, 0.1], 0.05))


def test_weight_matching_of_one_hidden_layer_is_the_optimal_transport_of_the_neurons():
    torch.manual_seed(0)
    a, b = (MLP((6,), 3, width=6, depth=1).state_dict() for _ in range(2))
    spec = mlp_spec(MLP((6,), 3, width=6, depth=1))
    matched = apply_permutation(spec, weight_matching(spec, a, b).perms, b)
    va, vb = geometry.neuron_matrix(a), geometry.neuron_matrix(b)
    best = min(((va - vb[list(p)]) ** 2).sum() for p in itertools.permutations(range(6)))
    assert ((va - geometry.neuron_matrix(matched)) ** 2).sum() == pytest.approx(best)


def test_neuron_matrix_holds_incoming_bias_and_outgoing_weights():
    model = MLP((1, 8, 8), 10, width=16, depth=1)
    rows = geometry.neuron_matrix(model.state_dict())
    assert rows.shape == (16, 64 + 1 + 10)
    assert np.allclose(rows[:, 64], model.layers[0].bias.detach().numpy())
    assert np.allclose(rows[:, 65:], model.layers[1].weight.detach().numpy().T)


def test_projected_datasets_have_k_features_unit_scale_and_nested_directions():
    d4, d10 = load_dataset("digits-pca4"), load_dataset("digits-pca10")
    base = load_dataset("digits")
    assert d4.x_train.shape == (len(base.x_train), 4) and d4.x_test.shape == (len(base.x_test), 4)
    assert INPUT_SHAPES["digits-pca4"] == (4,) and "4 principal components" in describe("digits-pca4")
    assert d4.x_train.std().item() == pytest.approx(1.0, rel=1e-4)
    assert torch.equal(d4.y_train, base.y_train)
    # The top 4 directions are the first 4 of the top 10 (up to the overall scale).
    ratio = d10.x_train[:, :4] / d4.x_train
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-3)
    # Variance falls from the first direction to the last.
    var = d10.x_train.var(0)
    assert torch.all(var[:-1] >= var[1:] - 1e-6)


def test_projected_dataset_names_are_checked():
    with pytest.raises(LmcClaimsError, match="only 64 input features"):
        check_dataset_name("digits-pca65")
    with pytest.raises(LmcClaimsError, match="Unknown dataset"):
        check_dataset_name("nosuch-pca3")
    with pytest.raises(KeyError):
        INPUT_SHAPES["nosuch-pca3"]


@pytest.mark.parametrize("name", sorted(SCALES))
def test_every_scale_has_a_two_layer_family_to_fit(name):
    base, settings = scales.two_layer_family(SCALES[name])
    assert base.arch == "mlp-d1" and base.recipe.optimizer == "sgd" and base in settings
    assert len(settings) >= 3 and len(ferbach2024.shared_widths(settings)) >= statistics.MIN_FIT_POINTS
    assert [scales.input_dim(r.dataset) for r in settings] == sorted(scales.input_dim(r.dataset) for r in settings)
    for r in settings:
        check_dataset_name(r.dataset)


@pytest.mark.parametrize("name", sorted(SCALES))
def test_every_scale_has_a_figure2_learning_rate_family(name):
    runs = scales.figure2_family(SCALES[name])
    lrs = [r.recipe.lr for r in runs]
    assert len(set(lrs)) == len(lrs) >= 3 and lrs == sorted(lrs)
    assert len({r.dataset for r in runs}) == 1 and len(ferbach2024.shared_widths(runs)) >= 1
    assert all(r.recipe.optimizer == "sgd" and r.recipe.momentum == 0.9 and r.recipe.batch_size == 500 for r in runs)
    # A tagged run name builds the architecture before the tag.
    assert all(get_architecture(r.arch) is get_architecture("mlp") for r in runs)
    assert [ferbach2024.setting_label(r, "lr") for r in runs] == [f"lr={lr:g}" for lr in lrs]
    if name != "smoke":  # the paper's six learning rates, 1e-4 to 1e-1
        assert len(lrs) == 6 and lrs[0] == pytest.approx(1e-4) and lrs[-1] == pytest.approx(1e-1)


def test_sgd_option_keeps_adam_configs_and_their_cache_keys():
    adam = TrainConfig(dataset="digits", width=8, recipe=Recipe(epochs=1, n_train=256))
    assert "optimizer" not in adam.as_dict()  # models cached before the option existed keep their keys
    sgd = TrainConfig(dataset="digits", width=8, recipe=Recipe(epochs=1, lr=0.1, n_train=256, optimizer="sgd"))
    assert sgd.as_dict()["optimizer"] == "sgd"
    data = load_dataset("digits")
    a, s1, s2 = (train(c, data, torch.device("cpu")) for c in (adam, sgd, sgd))
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not torch.equal(a["layers.0.weight"], s1["layers.0.weight"])
    with pytest.raises(ValueError, match="optimizer"):
        train(TrainConfig(dataset="digits", width=8, recipe=Recipe(epochs=1, n_train=256, optimizer="lbfgs")), data, torch.device("cpu"))
