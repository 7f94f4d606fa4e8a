"""The property checks of a setting's network and spec (catalogue/properties.py), on its template
model with its initial weights (generic weights: a symmetry does not depend on training):
hypothesis-drawn permutations, each applied in eval and in train mode, recovered by weight
matching, and the singular values they keep."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from ..lab import Setting
from ..permutation.apply import apply_permutation
from ..testing.checks import check_symmetry, recovery_difference, spec_coverage, sv_change
from ..testing.strategies import drawn, permutations
from ..training import make_model

EXAMPLES = 64  # training inputs the outputs are compared on


def spec_properties(s: Setting, n: int) -> xr.Dataset:
    # The architecture with initial weights drawn from seed 0 (not the template's, drawn from whatever
    # state torch's generator was in), so that a second run measures the same numbers; nothing is trained.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = make_model(s.ref.train_config(0), s.data).to(s.device)
    params = {k: v.detach().clone() for k, v in model.state_dict().items()}
    x = s.eval_sets["train"][0][:EXAMPLES]
    draws = drawn(permutations(s.spec, params), n)
    sym = np.zeros((len(draws), 2))
    recovery, sv = np.zeros(len(draws)), np.zeros(len(draws))
    for i, perms in enumerate(draws):
        for j, mode in enumerate(("eval", "train")):
            found = check_symmetry(model, x, s.spec, perms=perms, modes=(mode,))
            sym[i, j] = max((d.size for d in found), default=0.0)
        recovery[i] = recovery_difference(s.spec, params, perms, seed=i)
        sv[i] = sv_change(params, apply_permutation(s.spec, perms, params))
    share, fixed = spec_coverage(s.spec, params)
    return xr.Dataset(
        {"symmetry_difference_eval_mode": ("draw", sym[:, 0], {"long_name": "largest eval-mode output difference, relative",
                                                          "units": "1"}),
         "symmetry_difference_train_mode": ("draw", sym[:, 1], {"long_name": "largest train-mode output difference, relative",
                                                            "units": "1"}),
         "recovery_difference": ("draw", recovery, {"long_name": "largest weight difference after matching the planted "
                                                    "copy back, relative to the weights' scale", "units": "1"}),
         "max_rel_sv_change": ("draw", sv, {"long_name": "largest relative singular value change", "units": "1"})},
        coords={"draw": np.arange(len(draws))},
        attrs={"permuted_share": share, "fixed_weights": ", ".join(fixed) or "none", "perms": len(s.spec.perm_names),
               "n_examples": len(x)},
    )

