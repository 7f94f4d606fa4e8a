"""A hand-written permutation spec with the field's most reported bug: one weight's axes name the
wrong permutations (here the second layer's rows and columns are swapped; the sizes agree, so
only checking the maths finds it). lmc-claims stops every claim test of this architecture with
an error naming the permutation, and the spec-symmetry claim test fails:

    pytest -m claims --claims-scale=smoke --claims-arch=examples.wrong_spec:make_net
"""

import math

from torch import nn

from lmc_claims.permutation import PermutationSpec


class ThreeLayer(nn.Module):
    def __init__(self, input_shape, num_classes: int, width: int = 1):
        super().__init__()
        self.layer1 = nn.Linear(math.prod(input_shape), 32 * width)
        self.layer2 = nn.Linear(32 * width, 32 * width)
        self.out = nn.Linear(32 * width, num_classes)

    def forward(self, x):
        return self.out(self.layer2(self.layer1(x.flatten(1)).relu()).relu())


def make_net(input_shape, num_classes, width):
    return ThreeLayer(input_shape, num_classes, width)


def swapped_spec(model: ThreeLayer) -> PermutationSpec:
    return PermutationSpec.from_axes({
        "layer1.weight": ("P_1", None), "layer1.bias": ("P_1",),
        "layer2.weight": ("P_1", "P_2"),  # the bug: should be ("P_2", "P_1")
        "layer2.bias": ("P_2",),
        "out.weight": (None, "P_2"), "out.bias": (None,),
    })


make_net.permutation_spec = swapped_spec
