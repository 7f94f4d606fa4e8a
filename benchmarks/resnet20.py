"""A self-contained ResNet20 (CIFAR layout: 3 stages x 3 basic blocks, BatchNorm) with a
width multiplier, and its permutation spec. Used by the benchmark only when the library
has no "resnet20" architecture of its own.

Permutations: one per stage for the residual stream (shared by every addition in the
stage; a projection shortcut starts the next stage's stream), one per block interior.
"""

from __future__ import annotations

from torch import nn

from lmc_claims.permutation.spec import PermutationSpec


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn1(self.conv1(x)).relu()
        y = self.bn2(self.conv2(y))
        return (y + (x if self.proj is None else self.proj(x))).relu()


class ResNet20(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 4):
        super().__init__()
        widths = [16 * width, 32 * width, 64 * width]
        self.conv = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(widths[0])
        blocks, cin = [], widths[0]
        for s, w in enumerate(widths):
            for i in range(3):
                blocks.append(Block(cin, w, 2 if s > 0 and i == 0 else 1))
                cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        x = self.bn(self.conv(x)).relu()
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


def resnet20_spec(model: ResNet20, buffers: bool = False) -> PermutationSpec:
    """`buffers`: also permute BatchNorm running statistics (needed to apply the
    permutation to a model used in eval mode; left out of the matching objective)."""
    axes: dict[str, tuple[str | None, ...]] = {}

    def bn(prefix: str, p: str):
        names = ("weight", "bias") + (("running_mean", "running_var") if buffers else ())
        axes.update({f"{prefix}.{n}": (p,) for n in names})

    stream = "S0"
    axes["conv.weight"] = (stream, None, None, None)
    bn("bn", stream)
    for i, block in enumerate(model.blocks):
        inner, out = f"B{i}", stream
        if block.proj is not None:
            out = f"S{i // 3}"
        axes[f"blocks.{i}.conv1.weight"] = (inner, stream, None, None)
        bn(f"blocks.{i}.bn1", inner)
        axes[f"blocks.{i}.conv2.weight"] = (out, inner, None, None)
        bn(f"blocks.{i}.bn2", out)
        if block.proj is not None:
            axes[f"blocks.{i}.proj.0.weight"] = (out, stream, None, None)
            bn(f"blocks.{i}.proj.1", out)
        stream = out
    axes["fc.weight"] = (None, stream)
    axes["fc.bias"] = (None,)
    return PermutationSpec.from_axes(axes)
