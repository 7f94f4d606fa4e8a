"""A small pre-LayerNorm Vision Transformer (Dosovitskiy et al. 2021), the family of Theus et al.
2025's CIFAR-10 ViT (6 layers, 8 heads, dim 256, MLP 512; ../shared/PUBLISHED.md).

Sizes. `width` w gives w heads of HEAD_DIM = 32 channels, so the embedding is 32 * w wide and
the MLP 2 * 32 * w: Theus et al.'s ViT is width 8 (8 heads of 32, dim 256, MLP 512), and a
width scales every layer of the residual stream, the attention and the MLP together, like the
conv nets' width multiplier. `depth` is the number of blocks (`vit` has 2, `vit-dN` has N).

Patches. A 28x28 image is cut into 7x7 patches (16 tokens: cheap on a CPU), a 32x32 image
(CIFAR-10) into 4x4 patches (64 tokens, the usual patch for ViTs trained from scratch on
CIFAR; PUBLISHED.md does not state Theus et al.'s), an 8x8 image into 2x2 patches (16 tokens).

Attention is written out (query, key and value Linear layers, a reshape to heads and
`scaled_dot_product_attention`) rather than `nn.MultiheadAttention`, so that its permutation
spec is derived from the graph like any user's model (no hand-written spec here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LmcClaimsError

HEAD_DIM = 32  # channels per head: Theus et al.'s 256 / 8
MLP_RATIO = 2  # MLP hidden size / embedding size: Theus et al.'s 512 / 256
DEPTH = 2  # blocks of the built-in `vit` (a CPU-sized model); `vit-dN` has N
# image side -> patch side (see the module docstring)
PATCH = {8: 2, 28: 7, 32: 4}


def patch_size(input_shape: tuple[int, ...]) -> int:
    if len(input_shape) != 3 or input_shape[1] != input_shape[2] or input_shape[1] not in PATCH:
        raise LmcClaimsError(
            f"vit takes square images of side {', '.join(map(str, PATCH))} (channels, side, side); got input shape "
            f"{tuple(input_shape)}.",
            "run vit on an image dataset (mnist5k, mnist, fashion_mnist, cifar10, digits), or add the side to "
            "lmc_claims/models/vit.py: PATCH.",
        )
    return PATCH[input_shape[1]]


class Attention(nn.Module):
    """Multi-head self-attention, written out."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape

        def split(y):  # (n, t, d) -> (n, heads, t, d / heads)
            return y.reshape(n, t, self.heads, d // self.heads).transpose(1, 2)

        y = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)))
        return self.out(y.transpose(1, 2).reshape(n, t, d))


class Block(nn.Module):
    """Pre-LayerNorm: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp_dim)
        self.fc2 = nn.Linear(mlp_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int = 2, depth: int = DEPTH):
        super().__init__()
        if width < 1 or depth < 1:
            raise LmcClaimsError(f"vit needs width >= 1 and depth >= 1 (got width {width}, depth {depth}).",
                                 "give the run a positive width (heads) and the name vit or vit-dN with N >= 1.")
        patch = patch_size(input_shape)
        dim, tokens = HEAD_DIM * width, (input_shape[1] // patch) ** 2
        self.embed = nn.Conv2d(input_shape[0], dim, patch, stride=patch)
        # Small random class token and position embedding (ViT's init): a constant class token
        # would start every pair of models at the same point of that parameter.
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, width, MLP_RATIO * dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)  # (n, tokens, dim)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])

