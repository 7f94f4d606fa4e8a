"""Activation matching reads post-activation features at the inputs of each permutation's
consumer layers: it recovers planted permutations, sums a residual stream's consumers, and
differs from matching pre-activations where it should."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from torch import nn
from torch.func import functional_call

from helpers import random_mlp
from lmc_claims.matching.activation import _features, activation_matching, consumers, producers, sites
from lmc_claims.metrics.distance import l2_distance
from lmc_claims.models.mlp import MLP, mlp_spec
from lmc_claims.models.registry import build_model, get_architecture
from lmc_claims.permutation import apply_permutation, random_perms
from lmc_claims.permutation.apply import inverse
from lmc_claims.permutation.spec import PermutationSpec


def _live(model: nn.Module, spec, params, x) -> dict[str, torch.Tensor]:
    """Units of each permutation that vary on x in some feature AM reads. A unit dead in every
    one (zero after the ReLU on all of x) carries no information: AM may pair such units among
    themselves in any order."""
    modules = dict(model.named_modules())
    sizes = spec.perm_sizes(params)
    live = {p: torch.zeros(n, dtype=torch.bool) for p, n in sizes.items()}
    handles = []
    for p, (kind, places) in sites(spec, model).items():
        for name, offset, block in places:
            def hook(m, args, out=None, p=p, offset=offset, block=block):
                t = args[0] if out is None else out
                dim = 1 if isinstance(m, nn.Conv2d) else t.dim() - 1
                t = t.narrow(dim, offset, sizes[p] * block).unflatten(dim, (sizes[p], block)).movedim(dim, -1)
                live[p] |= t.reshape(-1, sizes[p]).std(0) > 0
            m = modules[name]
            handles.append(m.register_forward_pre_hook(hook) if kind == "input" else m.register_forward_hook(hook))
    model.eval()
    with torch.no_grad():
        functional_call(model, params, (x,))
    for h in handles:
        h.remove()
    return live


def _hidden(model: MLP, params, x):
    """Post-ReLU features of each hidden layer."""
    out, h = [], x
    for i in range(len(model.layers) - 1):
        h = torch.relu(h @ params[f"layers.{i}.weight"].T + params[f"layers.{i}.bias"])
        out.append(h)
    return out


@settings(max_examples=40, derandomize=True, deadline=None)
@given(seed=st.integers(0, 10_000), width=st.integers(4, 32), depth=st.integers(1, 3))
def test_recovers_a_known_permutation_of_itself(seed, width, depth):
    model, spec, a = random_mlp(seed, width, depth)
    planted = random_perms(spec, a, torch.Generator().manual_seed(seed))
    b = apply_permutation(spec, planted, a)
    x = torch.randn(200, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    res = activation_matching(spec, model, a, b, x)
    matched = apply_permutation(spec, res.perms, b)
    # Every live unit is paired with a unit of identical feature: its twin, or one that fires on
    # the same samples in proportion (a few units fire on one example only). Dead units (zero
    # after the ReLU on all of x) carry no information and may be paired in any order.
    for h_a, h_b in zip(_hidden(model, a, x), _hidden(model, matched, x)):
        for j in torch.nonzero(h_a.std(0) > 0).flatten().tolist():
            corr = torch.corrcoef(torch.stack([h_a[:, j], h_b[:, j]]))[0, 1]
            assert corr > 1 - 1e-9


def test_recovers_the_planted_permutation_exactly_when_every_unit_is_live():
    model, spec, a = random_mlp(2, width=32, depth=3)
    x = torch.randn(2000, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert all(bool((h.std(0) > 0).all()) for h in _hidden(model, a, x))
    b = apply_permutation(spec, random_perms(spec, a, torch.Generator().manual_seed(1)), a)
    for statistic in ("correlation", "inner"):
        res = activation_matching(spec, model, a, b, x, batch=300, statistic=statistic)
        matched = apply_permutation(spec, res.perms, b)
        assert l2_distance(spec, a, matched) == pytest.approx(0.0, abs=1e-12)
        torch.testing.assert_close(functional_call(model, matched, (x,)), functional_call(model, a, (x,)))


def test_reads_the_consumers_inputs_of_an_mlp():
    model, spec, _ = random_mlp(0, 8, 3)
    assert sites(spec, model) == {f"P_{i}": ("input", [(f"layers.{i + 1}", 0, 1)]) for i in range(3)}


def test_post_relu_features_decide_where_pre_activations_would_not():
    # A: unit 0 = relu(x1 - 1.5) (rarely fires), unit 1 = x2 + 10 (always on, linear).
    # B: unit 0 = cos70 x1 + sin70 x2 + 10 (linear), unit 1 = relu(x2 - 1.5).
    # Pre-activations pair them in order (x1 ~ 0.34 * b0 and x2 = b1 up to a shift); after the
    # ReLU the near-dead units carry little, and A's linear unit 1 matches B's linear unit 0.
    model = MLP((2,), 2, width=2, depth=1).double()
    spec = mlp_spec(model)
    c, s = math.cos(math.radians(70)), math.sin(math.radians(70))
    out = torch.tensor([[1.0, -1.0], [0.5, 2.0]], dtype=torch.float64)
    a = {"layers.0.weight": torch.eye(2, dtype=torch.float64), "layers.0.bias": torch.tensor([-1.5, 10.0], dtype=torch.float64),
         "layers.1.weight": out, "layers.1.bias": torch.zeros(2, dtype=torch.float64)}
    b = {"layers.0.weight": torch.tensor([[c, s], [0.0, 1.0]], dtype=torch.float64),
         "layers.0.bias": torch.tensor([10.0, -1.5], dtype=torch.float64),
         "layers.1.weight": out.clone(), "layers.1.bias": torch.zeros(2, dtype=torch.float64)}
    x = torch.randn(20_000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def matching(za, zb):
        za, zb = za.numpy(), zb.numpy()
        corr = np.corrcoef(za.T, zb.T)[:2, 2:]
        return linear_sum_assignment(corr, maximize=True)[1].tolist()

    pre_a, pre_b = x @ a["layers.0.weight"].T + a["layers.0.bias"], x @ b["layers.0.weight"].T + b["layers.0.bias"]
    assert matching(pre_a, pre_b) == [0, 1]  # the construction: pre-activations keep the order
    assert matching(pre_a.relu(), pre_b.relu()) == [1, 0]  # ... post-ReLU features swap it
    assert activation_matching(spec, model, a, b, x).perms["P_0"].tolist() == [1, 0]


def test_a_units_block_of_entries_is_more_samples_of_it():
    t = torch.arange(2 * 3 * 4, dtype=torch.float64).reshape(2, 12)  # N=2, C=3 blocks of 4 entries
    f = _features(t, conv=False, offset=0, n=3, block=4)
    assert f.shape == (8, 3)
    assert torch.equal(f[:, 1], torch.tensor([4.0, 5, 6, 7, 16, 17, 18, 19]))
    # a segment further along the channels of a conv map: channels 2..4 of 6, positions as samples
    m = torch.randn(2, 6, 3, 3, dtype=torch.float64)
    g = _features(m, conv=True, offset=2, n=3, block=1)
    assert torch.equal(g, m[:, 2:5].movedim(1, -1).reshape(-1, 3))
    with pytest.raises(ValueError):
        _features(torch.zeros(2, 5), conv=False, offset=0, n=3, block=2)


class _Flat(nn.Module):
    """conv -> ReLU -> flatten (C, 3, 3) -> Linear: the Linear reads each channel as a block of 9."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 9, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        return self.out(self.fc(torch.relu(self.conv(x)).flatten(1)).relu())


@pytest.mark.skipif("composite_axes" not in PermutationSpec.__dataclass_fields__,
                    reason="this PermutationSpec has no composite axes")
def test_a_flattened_map_is_read_by_channel_blocks():
    torch.manual_seed(0)
    model = _Flat().double()
    spec = PermutationSpec.from_axes(
        {"conv.weight": ("P_conv", None, None, None), "conv.bias": ("P_conv",),
         "fc.weight": ("P_fc", None), "fc.bias": ("P_fc",), "out.weight": (None, "P_fc"), "out.bias": (None,)},
        {"fc.weight": {1: (("P_conv", 6, 9),)}})
    assert sites(spec, model) == {"P_conv": ("input", [("fc", 0, 9)]), "P_fc": ("input", [("out", 0, 1)])}
    a = {k: v.detach().clone() for k, v in model.state_dict().items()}
    planted = random_perms(spec, a, torch.Generator().manual_seed(0))
    b = apply_permutation(spec, planted, a)
    x = torch.randn(300, 1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(functional_call(model, b, (x,)), functional_call(model, a, (x,)))
    live = _live(model, spec, a, x)
    assert all(bool(v.all()) for v in live.values())
    res = activation_matching(spec, model, a, b, x)
    assert l2_distance(spec, a, apply_permutation(spec, res.perms, b)) == pytest.approx(0.0, abs=1e-12)


class _Head(nn.Module):
    """A hidden layer read only by a non-Linear module: no consumer, producer fallback."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 4)
        self.scale = nn.Parameter(torch.ones(4))

    def forward(self, x):
        return (self.a(x).relu() * self.scale).sum(-1, keepdim=True)


def test_falls_back_to_producers_without_a_consumer():
    torch.manual_seed(0)
    model = _Head().double()
    spec = PermutationSpec.from_axes({"a.weight": ("P", None), "a.bias": ("P",), "scale": ("P",)})
    assert sites(spec, model) == {"P": ("output", [("a", 0, 1)])}
    a = {k: v.detach().clone() for k, v in model.state_dict().items()}
    b = apply_permutation(spec, random_perms(spec, a, torch.Generator().manual_seed(0)), a)
    x = torch.randn(300, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    res = activation_matching(spec, model, a, b, x)
    assert l2_distance(spec, a, apply_permutation(spec, res.perms, b)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("arch,seed", [("resnet20ln", 0), ("resnet20ln", 1), ("resnet20", 2)])
def test_resnet_streams_use_every_consumer(arch, seed):
    torch.manual_seed(seed)
    model = build_model(arch, (1, 8, 8), 3, 1)
    spec = get_architecture(arch).spec(model)
    cons = consumers(spec, model)
    assert set(cons) == set(spec.perm_names)  # every permutation is read by some layer
    assert len(producers(spec, model)["P_stream0"]) == 4  # stem conv + conv2 of the stage-0 blocks
    # stream 0 is read by the conv1 of each stage-0 block and by stage 1's first conv and shortcut
    assert sorted(cons["P_stream0"]) == ["stages.0.0.conv1", "stages.0.1.conv1", "stages.0.2.conv1",
                                         "stages.1.0.conv1", "stages.1.0.shortcut.0"]
    assert cons["P_stream2"] == ["stages.2.1.conv1", "stages.2.2.conv1", "linear"]
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    if arch == "resnet20":  # BN statistics of the data, as after training (eval mode reads them)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # cumulative average
        with torch.no_grad():
            model.train()(x)
    a = {k: v.detach().clone() for k, v in model.state_dict().items()}
    planted = random_perms(spec, a, torch.Generator().manual_seed(seed))
    b = apply_permutation(spec, planted, a)
    res = activation_matching(spec, model, a, b, x, batch=32)
    torch.testing.assert_close(functional_call(model.eval(), b, (x,)), functional_call(model, a, (x,)))
    expected = inverse(planted)
    live = _live(model, spec, a, x)
    assert sum(int(v.sum()) for v in live.values()) > 0.9 * sum(v.numel() for v in live.values())
    for p in spec.perm_names:
        assert torch.equal(res.perms[p][live[p]], expected[p][live[p]]), p


def test_unknown_statistic_is_refused():
    model, spec, a = random_mlp(0, 4, 1)
    with pytest.raises(ValueError):
        activation_matching(spec, model, a, a, torch.zeros(3, 6, dtype=torch.float64), statistic="cosine")
