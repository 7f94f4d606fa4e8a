"""An architecture outside lmc-claims' built-in set, verified without touching the package:

    pytest -m claims --claims-arch=examples.small_cnn:make_net

A small CNN with LayerNorm-style normalisation (GroupNorm with one group normalises each
sample over C, H, W), a residual block, global pooling, and a LayerNorm'd hidden Linear layer.
No permutation spec is written: lmc-claims derives it from the model's graph.
"""

from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, input_shape, num_classes: int, width: int = 1):
        super().__init__()
        c = 16 * width
        self.stem = nn.Sequential(nn.Conv2d(input_shape[0], c, 3, padding=1), nn.GroupNorm(1, c), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(1, c), nn.ReLU(),
                                   nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(1, c))
        self.down = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(c, 2 * c, 3, padding=1), nn.GroupNorm(1, 2 * c), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(2 * c, 4 * c), nn.LayerNorm(4 * c), nn.ReLU(), nn.Linear(4 * c, num_classes))

    def forward(self, x):
        x = self.stem(x)
        x = (x + self.block(x)).relu()  # residual: the stream and the block output share one permutation
        return self.head(self.down(x))


def make_net(input_shape, num_classes, width):
    """The factory lmc-claims calls: (input shape without batch, number of classes, width multiplier)."""
    return SmallCNN(input_shape, num_classes, width)
