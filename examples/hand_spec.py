"""An architecture with a hand-written permutation spec, for a model whose graph lmc-claims cannot
derive one from (or to state a spec on purpose):

    pytest -m claims --claims-arch=examples.hand_spec:make_net

The factory's `permutation_spec` attribute (a function model -> PermutationSpec) is used instead
of deriving the spec. It names, for every parameter and buffer the permutations touch, one entry
per axis: a permutation's name, or None for an axis that stays in place (inputs and outputs).
"""

import math

from torch import nn

from lmc_claims.permutation import PermutationSpec


class TwoLayer(nn.Module):
    def __init__(self, input_shape, num_classes: int, width: int = 1):
        super().__init__()
        self.hidden = nn.Linear(math.prod(input_shape), 64 * width)
        self.out = nn.Linear(64 * width, num_classes)

    def forward(self, x):
        return self.out(self.hidden(x.flatten(1)).relu())


def make_net(input_shape, num_classes, width):
    return TwoLayer(input_shape, num_classes, width)


def two_layer_spec(model: TwoLayer) -> PermutationSpec:
    # The hidden units: rows of the first layer (and its bias), columns of the second.
    return PermutationSpec.from_axes({
        "hidden.weight": ("P_hidden", None), "hidden.bias": ("P_hidden",),
        "out.weight": (None, "P_hidden"), "out.bias": (None,),
    })


make_net.permutation_spec = two_layer_spec
