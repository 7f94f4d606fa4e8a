"""An example of property checks for your own model, with lmc_claims.testing: copy it into your
test suite and put your model in place of `TinyConvNet`. Run it with `pytest examples/test_my_model.py`.

Every claim lmc-claims verifies on a network rests on one assumption: its permutation spec is an
exact symmetry of that network. These tests check it, the way the plugin checks every architecture
before a claims run: permuting the hidden units keeps the outputs (eval and train mode, within the
dtype's tolerance), weight matching finds a permutation planted in the model's own copy, and the
singular values of every weight stay the same.
"""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lmc_claims.testing import (assert_keeps_singular_values, assert_recovers_planted_permutation, assert_symmetry,
                                check_symmetry, permutations)


class TinyConvNet(nn.Module):  # your model here
    def __init__(self, width: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.norm = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.head = nn.Linear(2 * width, 10)

    def forward(self, x):
        x = torch.relu(self.norm(self.conv1(x)))
        x = torch.relu(self.conv2(x)).mean((2, 3))
        return self.head(x)


EXAMPLE = torch.randn(8, 1, 12, 12, dtype=torch.float64)


def model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return TinyConvNet().double()  # float64: the tolerance is then 1e-9 (lmc_claims.testing.TOLERANCES)


def test_the_spec_is_a_symmetry():
    assert_symmetry(model(), EXAMPLE)  # derives the spec from the graph; pass spec=... to check your own


def test_weight_matching_recovers_a_planted_permutation():
    assert_recovers_planted_permutation(model(), EXAMPLE)


def test_permutations_keep_singular_values():
    assert_keeps_singular_values(model(), EXAMPLE)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), data=st.data())
def test_every_drawn_permutation_keeps_the_outputs(seed, data):
    net = model(seed)
    spec = assert_symmetry(net, EXAMPLE, draws=1)
    perms = data.draw(permutations(spec, net.state_dict()))  # hypothesis draws and shrinks the permutation
    assert check_symmetry(net, EXAMPLE, spec, perms=perms) == []
