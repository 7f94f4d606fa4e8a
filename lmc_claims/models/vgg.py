"""VGG11 with BatchNorm, CIFAR layout (as in Git Re-Basin / Ito et al.), with a width multiplier.

Inputs smaller than 32x32 (MNIST) skip the max-pools that would shrink the map below 1x1;
a global average pool feeds the classifier, so any input size works.
"""

from __future__ import annotations

from torch import nn

from ..permutation.spec import PermutationSpec

VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(nn.Module):
    def __init__(self, input_shape, num_classes: int, width: int = 1, config=VGG11):
        super().__init__()
        channels, size = input_shape[0], input_shape[-1]
        layers: list[nn.Module] = []
        for item in config:
            if item == "M":
                if size >= 2:
                    layers.append(nn.MaxPool2d(2))
                    size //= 2
                continue
            out = item * width
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


def vgg_spec(model: VGG) -> PermutationSpec:
    """Each conv's output channels (and its BatchNorm) get their own permutation."""
    axes: dict[str, tuple[str | None, ...]] = {}
    prev = None
    for i, m in enumerate(model.features):
        if isinstance(m, nn.Conv2d):
            p = f"P_features.{i}"
            axes[f"features.{i}.weight"] = (p, prev, None, None)
            axes[f"features.{i}.bias"] = (p,)
            prev = p
        elif isinstance(m, nn.BatchNorm2d):
            for name in ("weight", "bias", "running_mean", "running_var"):
                axes[f"features.{i}.{name}"] = (prev,)
    axes["classifier.weight"] = (None, prev)
    axes["classifier.bias"] = (None,)
    return PermutationSpec.from_axes(axes)
