"""Entezari et al. 2022: the naive barrier grows with depth, on MLPs of depth 1 to 4 on the MNIST
digits lmc-claims ships, trained with the scale's MLP recipe at its smallest width. A claim test of
a package outside lmc-claims, using the plugin's fixtures (claims_lab, verify) and its shared
measurements."""

import numpy as np
import pytest
import xarray as xr

from lmc_claims.measurements import shared

pytestmark = pytest.mark.claims
CLAIM = "entezari2022-depth"
DEPTHS = (1, 2, 3, 4)


def test_barrier_grows_with_depth(claims_lab, verify):
    base = claims_lab.scale.run("mlp", "mnist5k")
    width = min(base.widths)
    settings = [claims_lab.setting(f"mlp-d{d}", "mnist5k", width, run=base) for d in DEPTHS]

    def measure(pairs):
        barriers = np.array([[float(b) for b in shared.interpolation(s, pairs, ("naive",)).loss_barrier.sel(
            search="naive", split="test").values] for s in settings]).T  # (pair, depth)
        slope = np.polyfit(np.array(DEPTHS, float), barriers.T, 1)[0]
        return xr.Dataset({"naive_barrier": (("pair", "depth"), barriers, {"units": "nats"}),
                           "naive_barrier_depth_slope": ("pair", slope, {"units": "nats per layer"})},
                          coords={"pair": shared.pair_coords(pairs), "depth": list(DEPTHS)})

    verify(CLAIM, measure, config={"arch": "mlp-dN", "dataset": "mnist5k", "width": width, "depths": list(DEPTHS)},
           seeds=lambda ds, pairs: shared.seeds_of(pairs))
