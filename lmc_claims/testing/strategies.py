"""hypothesis strategies: permutations of a spec (head and group blocks included), and small models
of the built-in families with their specs. Import needs hypothesis (`pip install hypothesis`)."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from ..permutation.apply import Params, Perms, random_perms
from ..permutation.spec import PermutationSpec


def permutations(spec: PermutationSpec, params: Params) -> st.SearchStrategy[Perms]:
    """Permutations of every permutation of the spec, as `random_perms` draws them from a seed that
    hypothesis chooses (and shrinks): uniform, with a block-structured one (attention heads,
    grouped convolutions' groups) moving whole blocks by its outer permutation and permuting
    inside each block."""
    return st.integers(0, 2**32 - 1).map(lambda seed: random_perms(spec, params, torch.Generator().manual_seed(seed)))


FAMILIES = ("mlp", "resnet20ln", "resnet20", "vgg11", "vit")
_INPUTS = {"mlp": (1, 8, 8), "resnet20ln": (3, 8, 8), "resnet20": (3, 8, 8), "vgg11": (3, 32, 32), "vit": (1, 8, 8)}


@st.composite
def small_models(draw, families=FAMILIES, dtype=torch.float64):
    """(model, example input) of a small built-in architecture: a family, a width and a seed drawn."""
    from ..models.registry import build_model

    family = draw(st.sampled_from(families))
    width = draw(st.integers(1, 2)) if family != "mlp" else draw(st.integers(2, 16))
    seed = draw(st.integers(0, 2**16))
    torch.manual_seed(seed)
    shape = _INPUTS[family]
    model = build_model(family, shape, 10, width).to(dtype)
    x = torch.randn(4, *shape, dtype=dtype, generator=torch.Generator().manual_seed(seed + 1))
    return model, x


def drawn(strategy: st.SearchStrategy, n: int) -> list:
    """n examples of a strategy, drawn by hypothesis outside a test (derandomized: the same every run)."""
    from hypothesis import HealthCheck, Phase, given, settings

    out = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(example):
        out.append(example)

    collect()
    return out[:n]
