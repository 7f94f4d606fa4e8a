"""ResNet20 (CIFAR layout, He et al. 2016; as in Git Re-Basin / Ito et al.) with a width
multiplier and BatchNorm or LayerNorm.

The LayerNorm variant normalises each sample over (C, H, W) with a per-channel affine
(GroupNorm with one group), which keeps channel permutations a symmetry.
"""

from __future__ import annotations

from torch import nn

from ..permutation.spec import PermutationSpec


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "bn" else nn.GroupNorm(1, channels)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = _norm(norm, cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(norm, cout))

    def forward(self, x):
        out = self.norm1(self.conv1(x)).relu()
        out = self.norm2(self.conv2(out))
        return (out + self.shortcut(x)).relu()


class ResNet20(nn.Module):
    def __init__(self, input_shape, num_classes: int, width: int = 1, norm: str = "bn", depth: int = 20):
        super().__init__()
        n = (depth - 2) // 6  # blocks per stage: 3 for ResNet20
        widths = [16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(input_shape[0], widths[0], 3, 1, 1, bias=False)
        self.norm1 = _norm(norm, widths[0])
        stages, cin = [], widths[0]
        for s, w in enumerate(widths):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(cin, w, 2 if (s > 0 and b == 0) else 1, norm))
                cin = w
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        x = self.norm1(self.conv1(x)).relu()
        return self.linear(self.pool(self.stages(x)).flatten(1))


def _norm_axes(prefix: str, module: nn.Module, p: str) -> dict:
    names = ("weight", "bias", "running_mean", "running_var") if isinstance(module, nn.BatchNorm2d) else ("weight", "bias")
    return {f"{prefix}.{n}": (p,) for n in names}


def resnet_spec(model: ResNet20) -> PermutationSpec:
    """One permutation per residual stream (a stage shares it through every addition),
    one per block interior."""
    axes: dict[str, tuple[str | None, ...]] = {}
    stream = "P_stream0"
    axes["conv1.weight"] = (stream, None, None, None)
    axes.update(_norm_axes("norm1", model.norm1, stream))
    for s, stage in enumerate(model.stages):
        for b, block in enumerate(stage):
            pre = f"stages.{s}.{b}"
            inner = f"P_{pre}"
            out = f"P_stream{s}"  # stage s's residual stream (a new one after a shortcut conv)
            axes[f"{pre}.conv1.weight"] = (inner, stream, None, None)
            axes.update(_norm_axes(f"{pre}.norm1", block.norm1, inner))
            axes[f"{pre}.conv2.weight"] = (out, inner, None, None)
            axes.update(_norm_axes(f"{pre}.norm2", block.norm2, out))
            if len(block.shortcut):
                axes[f"{pre}.shortcut.0.weight"] = (out, stream, None, None)
                axes.update(_norm_axes(f"{pre}.shortcut.1", block.shortcut[1], out))
            stream = out
    axes["linear.weight"] = (None, stream)
    axes["linear.bias"] = (None,)
    return PermutationSpec.from_axes(axes)
