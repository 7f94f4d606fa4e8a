"""Ito, Yamada, Kumagai 2024 (arXiv 2402.04051), §4 Eq. (3): permutations keep singular values.

Statement: for every weight matrix W (conv kernels as (out, in*k*k)), P_l W P_{l-1}^T has the
same singular values as W; only the singular vectors move (to P_l U and P_{l-1} V).
Metric: max over layers and ranks of |s_i(W) - s_i(P W P^T)| / s_1(W), on every trained model
with a random permutation of all its hidden units; we also record how far the top singular
vector moved (1 - |cos|), which shows the directions do change.
Criterion: <= 1e-9 on the worst model (exact identity; the number is ours: float64 SVD error
is about eps * n * s_1, ~1e-13 here).
"""

import numpy as np
import pytest
import torch
import xarray as xr

from lmc_claims.metrics.spectral import singular_values, svd, weight_matrices
from lmc_claims.permutation import apply_permutation, random_perms

pytestmark = pytest.mark.claims
CLAIM = "ito2024-singular-values"


def test_permutations_keep_singular_values(setting, claims_lab, verify):
    arch, dataset, width = setting
    spec = claims_lab.spec(arch, dataset, width)
    seeds = list(range(2 * claims_lab.scale.n_pairs))
    change, moved, layers = [], [], None
    for seed in seeds:
        params = claims_lab.model(arch, dataset, width, seed)
        perms = random_perms(spec, params, torch.Generator().manual_seed(seed))
        before = weight_matrices(spec, params)
        after = weight_matrices(spec, apply_permutation(spec, perms, params))
        layers = [w.name for w in before]
        change.append([float((singular_values(a.matrix) - singular_values(b.matrix)).abs().max() /
                             singular_values(a.matrix)[0]) for a, b in zip(before, after)])
        moved.append([float(1 - (svd(a.matrix)[0][:, 0] @ svd(b.matrix)[0][:, 0]).abs()) for a, b in zip(before, after)])
    ds = xr.Dataset(
        {
            "rel_sv_change": (("seed", "layer"), np.array(change),
                              {"long_name": "max_i |s_i(W) - s_i(PWP^T)| / s_1(W)", "units": "1"}),
            "top_vector_moved": (("seed", "layer"), np.array(moved),
                                 {"long_name": "1 - |cos| between top left singular vectors before and after", "units": "1"}),
        },
        coords={"seed": seeds, "layer": layers},
    )
    ds["max_rel_sv_change"] = ds.rel_sv_change.max("layer").assign_attrs(units="1")
    verify(CLAIM, ds, config={"arch": arch, "dataset": dataset, "width": width}, seeds=seeds)
