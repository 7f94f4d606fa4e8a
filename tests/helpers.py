"""Small builders shared by the unit tests."""

import torch

from lmc_claims.models.mlp import MLP, mlp_spec


def random_mlp(seed: int, width: int = 8, depth: int = 2, inputs: int = 6, classes: int = 3):
    torch.manual_seed(seed)
    model = MLP((inputs,), classes, width=width, depth=depth).double()
    return model, mlp_spec(model), {k: v.detach().clone() for k, v in model.state_dict().items()}
