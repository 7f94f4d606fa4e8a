"""Grouped convolutions (1 < groups < in_channels) in derived permutation specs.

A grouped convolution's output group i reads input group i only, and its weight's axis 1
indexes the channels inside a group for every group at once. The derived spec permutes, exactly:
the output channels inside each group, freely per group (a block-structured permutation whose
blocks stay: `blocks[p] == (None, groups, c_out / groups)`), and the input channels inside the
groups by one permutation shared by all of them (the weight's axis 1; the producer's rows and
norm see it once per group, a composite axis). Random permutations of that structure leave
the outputs unchanged (float64, eval and train mode); weight matching and activation matching
of a model onto its own permuted copy recover the permutation. Where a grouped convolution's
input cannot be permuted alike inside every group (it comes from another grouped convolution
whose groups differ), that input stays fixed, and the spec stays exact.
"""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from lmc_claims.cpu import limit_threads
from lmc_claims.matching.activation import activation_matching
from lmc_claims.matching.weight import objective, weight_matching
from lmc_claims.metrics.distance import l2_distance
from lmc_claims.permutation import apply_permutation, random_perms
from lmc_claims.permutation.apply import inverse
from lmc_claims.permutation.derive import derive_spec


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Many tiny float64 ops: one intra-op thread on a shared CPU."""
    with limit_threads("cpu", 1):
        yield


def _net():
    """Ordinary and grouped convolutions with BatchNorm between them: groups=2 (8 -> 8, inside
    groups of 4) and groups=4 (12 -> 16: 3 input and 4 output channels per group)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 12, 1), nn.BatchNorm2d(12), nn.ReLU(),
        nn.Conv2d(12, 16, 3, padding=1, groups=4), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 8, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    )


def _chained():
    """A grouped convolution fed by another with other groups (6-channel blocks read as
    3-channel groups): its input, the other's output, stays fixed."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 12, 3, padding=1, groups=2), nn.BatchNorm2d(12), nn.ReLU(),
        nn.Conv2d(12, 8, 3, padding=1, groups=4), nn.ReLU(), nn.Conv2d(8, 5, 1),
    )


def _transposed():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.ConvTranspose2d(8, 12, 3, stride=2, padding=1, groups=4), nn.BatchNorm2d(12), nn.ReLU(),
        nn.Conv2d(12, 5, 1),
    )


def _build(model_fn, seed=0):
    torch.manual_seed(seed)
    model = model_fn().double()
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in norms:  # scales and shifts away from their defaults
            m.weight.copy_(torch.rand(m.weight.shape, generator=gen, dtype=m.weight.dtype) + 0.5)
            m.bias.copy_((torch.rand(m.bias.shape, generator=gen, dtype=m.bias.dtype) - 0.5) * 0.2)
            m.momentum = 1.0
        # running statistics of another batch than x: eval mode differs from train mode, and
        # no unit is dead on x (activation matching tells units apart by their features)
        model.train()(torch.randn(16, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2)))
        for m in norms:
            m.momentum = 0.1
    model.eval()
    x = torch.randn(4, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return model, x, {k: v.detach().clone() for k, v in model.state_dict().items()}


def _rel(a, b) -> float:
    return float((a - b).norm() / a.norm())


def _outputs(model, params, x, train: bool):
    model.train(train)
    buffers = {k for k, _ in model.named_buffers()}
    with torch.no_grad():  # train mode updates the running statistics: each call its own
        return functional_call(model, {k: v.clone() if k in buffers else v for k, v in params.items()}, (x,))


def _assert_exact(model, spec, params, x, seed=3):
    perms = random_perms(spec, params, torch.Generator().manual_seed(seed))
    assert spec.respects_blocks(perms)
    permuted = apply_permutation(spec, perms, params)
    assert any(not torch.equal(params[k], permuted[k]) for k in spec.axes_to_perm)
    for train in (False, True):
        out = _outputs(model, params, x, train)
        assert _rel(out, _outputs(model, permuted, x, train)) <= 1e-10
    assert _rel(_outputs(model, params, x, True), _outputs(model, params, x, False)) > 1e-3


def test_grouped_convolutions_get_permutations_inside_their_groups():
    model, x, params = _build(_net)
    spec = derive_spec(model, x)
    ax, comp = spec.axes_to_perm, spec.composite_axes
    for conv, groups, c_in, c_out, producer, norm in ((3, 2, 8, 8, 0, 1), (9, 4, 12, 16, 6, 7)):
        out, inner = ax[f"{conv}.weight"][:2]
        # output channels: inside each group, the groups in place
        assert out is not None and spec.blocks[out] == (None, groups, c_out // groups)
        assert ax[f"{conv}.bias"] == (out,) and ax[f"{conv + 1}.weight"] == (out,)
        # input channels: one permutation inside every group, seen once per group by the producer
        assert inner is not None and inner not in spec.blocks
        shared = ((inner, c_in // groups, 1),) * groups
        assert comp[f"{producer}.weight"] == {0: shared} and ax[f"{producer}.weight"][0] is None
        assert comp[f"{norm}.running_var"] == {0: shared}
    assert ax["12.weight"][1] == ax["9.weight"][0]  # the next layer reads the grouped output
    assert len(spec.perm_names) == 5  # two inside groups, two grouped outputs, the last conv's
    _assert_exact(model, spec, params, x)
    assert spec.partition() == derive_spec(model, x, tracer="export").partition()


def test_a_grouped_input_that_cannot_be_shared_stays_fixed():
    model, x, params = _build(_chained)
    spec = derive_spec(model, x)
    ax = spec.axes_to_perm
    # the first one's output (blocks of 6, each permuted its own way) read as 3-channel groups
    assert ax["3.weight"][0] is None and ax["4.weight"] == (None,) and ax["6.weight"][1] is None
    assert spec.blocks[ax["6.weight"][0]] == (None, 4, 2)  # the second one's output still moves
    first_inner = ax["3.weight"][1]
    assert spec.composite_axes["0.weight"] == {0: ((first_inner, 4, 1),) * 2}
    _assert_exact(model, spec, params, x)


def test_transposed_grouped_convolutions_mirror_them():
    model, x, params = _build(_transposed)
    spec = derive_spec(model, x)
    ax, comp = spec.axes_to_perm, spec.composite_axes
    rows, inner = ax["3.weight"][:2]
    assert rows == ax["0.weight"][0] and spec.blocks[rows] == (None, 4, 2)  # input inside its groups
    assert inner is not None and comp["3.bias"] == {0: ((inner, 3, 1),) * 4}
    assert comp["4.weight"] == {0: ((inner, 3, 1),) * 4}
    _assert_exact(model, spec, params, x)


def _own_copy(model_fn, seed=0):
    model, x, a = _build(model_fn, seed)
    spec = derive_spec(model, x)
    hidden = random_perms(spec, a, torch.Generator().manual_seed(seed + 5))
    return model, spec, a, apply_permutation(spec, hidden, a), inverse(hidden)


@pytest.mark.parametrize("model_fn", [_net, _transposed], ids=["grouped", "transposed"])
def test_weight_matching_recovers_the_permutation_of_its_own_copy(model_fn):
    _, spec, a, b, truth = _own_copy(model_fn)
    assert l2_distance(spec, a, b) > 1.0
    res = weight_matching(spec, a, b, seed=0)
    assert spec.respects_blocks(res.perms)
    assert all(torch.equal(res.perms[p], truth[p]) for p in truth)
    assert l2_distance(spec, a, apply_permutation(spec, res.perms, b)) == pytest.approx(0.0, abs=1e-9)
    # the objective reached is the largest there is: <theta_A, theta_A>
    assert res.objective[-1] == pytest.approx(objective(spec, truth, a, b), rel=1e-12)
    assert res.objective[-1] == pytest.approx(float(sum((a[k] ** 2).sum() for k in spec.axes_to_perm)), rel=1e-12)


def test_activation_matching_recovers_the_permutation_of_its_own_copy():
    model, spec, a, b, truth = _own_copy(_net)
    x = torch.randn(40, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    res = activation_matching(spec, model, a, b, x)
    assert spec.respects_blocks(res.perms)
    assert all(torch.equal(res.perms[p], truth[p]) for p in truth)
