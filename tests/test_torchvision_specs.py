"""Derived permutation specs of torchvision's classification models are exact symmetries.

For each model: derive the spec, permute a randomly initialised copy by random permutations,
and compare outputs in eval and in train mode (float64, relative error <= 1e-5); check that
the spec permutes what it should (and keeps fixed what admits no permutation). Plus: weight
matching recovers the permutation of a model's own permuted copy; both tracers (torch.fx and
torch.export) derive the same spec; untraceable models, unsupported ops and wrong inputs give
errors that name the node and the fix.
"""

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.func import functional_call
from torchvision import models as tvm
from torchvision.ops import StochasticDepth

from lmc_claims.cpu import limit_threads
from lmc_claims.errors import LmcClaimsError
from lmc_claims.matching.weight import weight_matching
from lmc_claims.metrics.distance import l2_distance
from lmc_claims.permutation import PermutationSpec, apply_permutation, random_perms
from lmc_claims.permutation.apply import plain_view
from lmc_claims.permutation.derive import derive_spec


pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Thousands of tiny float64 ops: one intra-op thread. With two on a CPU that other jobs
    share, each op waits for a descheduled worker (the file then takes minutes, not seconds)."""
    with limit_threads("cpu", 1):
        yield


def _vit():
    return torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4,
                                                hidden_dim=64, mlp_dim=128, num_classes=10)


def _tv(name):
    return lambda: getattr(tvm, name)(weights=None, num_classes=10)


# name -> (builder, input side, number of permutations in the derived spec). Inputs are small
# (close to the smallest each model accepts) to keep float64 on a CPU fast; swin_t gets 32x32
# so that its first stage has more positions than a window (padding and shifted windows run).
MODELS = {
    "resnet18": (_tv("resnet18"), 16, 12),
    "resnet50": (_tv("resnet50"), 16, 37),
    "vgg11_bn": (_tv("vgg11_bn"), 32, 10),  # five max-poolings need 32
    "alexnet": (_tv("alexnet"), 63, 7),
    "squeezenet1_1": (_tv("squeezenet1_1"), 24, 25),
    "densenet121": (_tv("densenet121"), 29, 120),
    "mobilenet_v2": (_tv("mobilenet_v2"), 16, 25),
    "mobilenet_v3_small": (_tv("mobilenet_v3_small"), 16, 27),
    "efficientnet_b0": (_tv("efficientnet_b0"), 16, 40),
    # 21, and per block of its 16: the grouped 3x3 output inside its groups, its input inside them
    "regnet_y_400mf": (_tv("regnet_y_400mf"), 16, 53),
    "shufflenet_v2_x0_5": (_tv("shufflenet_v2_x0_5"), 16, 18),
    "convnext_tiny": (_tv("convnext_tiny"), 32, 22),
    "swin_t": (_tv("swin_t"), 32, 40),  # 16, and qk and vo inside the heads of its 12 blocks
    "vit": (_vit, 32, 7),  # the stream, and per layer the MLP's hidden units and attention's qk and vo
}


def _randomise(model: nn.Module, seed: int) -> None:
    """Non-trivial norm statistics and scales, and random values where the model's init is
    constant (zero heads, class token, layer scales), so that no permuted part is invisible."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point() or t.numel() == 0:
                continue
            rand = torch.rand(t.shape, generator=gen, dtype=t.dtype)
            if name.endswith("running_var"):
                t.copy_(rand + 0.5)
            elif name.endswith(("running_mean", "bias")):
                t.copy_((rand - 0.5) * 0.2)
            elif t.numel() == t.shape[0] or bool(t.min() == t.max()):  # scales, layer scales, constant inits
                t.copy_(rand + 0.5 if t.numel() == t.shape[0] else (rand - 0.5) * 0.2)


_BUILT: dict = {}
_SHARED = {"resnet18", "squeezenet1_1", "mobilenet_v3_small", "swin_t", "vit"}  # used by several tests


def _build(name: str):
    """A randomly initialised float64 model and an input batch (built once for the shared ones)."""
    if name in _BUILT:
        return _BUILT[name]
    builder, side, _ = MODELS[name]
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # no float32 copy of the large classifiers
    try:
        model = builder()
    finally:
        torch.set_default_dtype(default)
    _randomise(model, 0)
    # batch norm in train mode over 2 samples of a 1x1 map amplifies rounding errors (up to
    # 1/sqrt(eps) per layer): 4 samples for the models that have it
    batch = 4 if any(isinstance(m, nn.BatchNorm2d) for m in model.modules()) else 2
    x = torch.randn(batch, 3, side, side, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    if name in _SHARED:
        _BUILT[name] = model, x
    return model, x


def _grouped_conv(self, x, weight, bias):
    """nn.Conv2d's function for groups > 1 in float64, as one unfold and one product:
    float64 grouped convolutions on a CPU run one small convolution per group (depthwise
    networks take seconds per forward). Checked against F.conv2d below."""
    if self.groups == 1 or x.dtype != torch.float64 or self.padding_mode != "zeros" or isinstance(self.padding, str):
        return _NATIVE_CONV(self, x, weight, bias)
    n, _, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = weight.shape[-2:], self.stride, self.padding, self.dilation
    ho, wo = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cols = F.unfold(x, (kh, kw), dilation=self.dilation, padding=self.padding, stride=self.stride)
    g, c_out = self.groups, weight.shape[0]
    out = torch.einsum("ngkl,gok->ngol", cols.view(n, g, -1, ho * wo), weight.reshape(g, c_out // g, -1))
    out = out.reshape(n, c_out, ho, wo)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


_NATIVE_CONV = nn.Conv2d._conv_forward


@pytest.fixture
def fast_grouped_conv(monkeypatch):
    monkeypatch.setattr(nn.Conv2d, "_conv_forward", _grouped_conv)


@pytest.mark.parametrize("c_in, c_out, groups, k, stride, padding, dilation", [
    (6, 6, 6, 3, 1, 1, 1), (6, 12, 6, 5, 2, 2, 1), (8, 12, 4, 3, 2, 0, 2), (4, 4, 2, 1, 1, 0, 1)])
def test_the_fast_grouped_convolution_is_conv2d(c_in, c_out, groups, k, stride, padding, dilation):
    torch.manual_seed(0)
    conv = nn.Conv2d(c_in, c_out, k, stride, padding, dilation, groups).double()
    x = torch.randn(3, c_in, 9, 10, dtype=torch.float64)
    torch.testing.assert_close(_grouped_conv(conv, x, conv.weight, conv.bias), conv(x), rtol=1e-13, atol=1e-13)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / a.norm())


def _outputs(model: nn.Module, params: dict, x: torch.Tensor, train: bool) -> torch.Tensor:
    model.train(train)
    buffers = {k for k, _ in model.named_buffers()}
    torch.manual_seed(7)  # stochastic depth drops the same samples in both runs
    with torch.no_grad():
        # train mode updates norm statistics in place: give each call its own buffers
        return functional_call(model, {k: v.clone() if k in buffers else v for k, v in params.items()}, (x,))


def _axes(spec: PermutationSpec, name: str):
    return spec.axes_to_perm[name]


def _check_structure(name: str, spec: PermutationSpec) -> None:
    """What each model's spec permutes, and what it keeps fixed."""
    ax, comp = spec.axes_to_perm, spec.composite_axes
    if name == "vgg11_bn":  # flatten of (512, 7, 7): the classifier's columns move in blocks of 49
        assert comp["classifier.0.weight"] == {1: ((ax["features.25.weight"][0], 512, 49),)}
    elif name == "alexnet":  # flatten of (256, 6, 6)
        assert comp["classifier.1.weight"] == {1: ((ax["features.10.weight"][0], 256, 36),)}
    elif name == "squeezenet1_1":  # concatenation of the expand convolutions
        assert comp["features.4.squeeze.weight"] == {1: ((ax["features.3.expand1x1.weight"][0], 64, 1),
                                                          (ax["features.3.expand3x3.weight"][0], 64, 1))}
    elif name == "densenet121":  # every dense layer's input is a concatenation
        segs = comp["classifier.weight"][1]
        assert len(segs) == 17 and segs[0] == (ax["features.transition3.conv.weight"][0], 512, 1)
        assert comp["features.norm5.running_var"][0] == segs
    elif name == "mobilenet_v2":  # depthwise convolutions follow their input
        assert ax["features.1.conv.0.0.weight"][0] == ax["features.0.0.weight"][0] is not None
        assert ax["features.2.conv.1.0.weight"][0] == ax["features.2.conv.0.0.weight"][0] is not None
    elif name == "efficientnet_b0":  # the SE gate's output shares the gated tensor's permutation
        gated = ax["features.1.0.block.0.0.weight"][0]
        assert gated is not None and ax["features.1.0.block.1.fc2.weight"][0] == gated
        assert ax["features.1.0.block.1.fc1.weight"][0] is not None
    elif name == "mobilenet_v3_small":
        assert ax["features.1.block.1.fc2.weight"][0] == ax["features.1.block.0.0.weight"][0] is not None
    elif name == "regnet_y_400mf":  # grouped convolution (6 groups of 8): channels move inside the groups
        blk = "trunk_output.block1.block1-0.f"
        out, inner = ax[f"{blk}.b.0.weight"][:2]
        assert out is not None and spec.blocks[out] == (None, 6, 8)  # output: freely per group, groups stay
        assert inner is not None and inner not in spec.blocks  # input: one permutation shared by the groups
        assert ax[f"{blk}.a.0.weight"][0] is None and comp[f"{blk}.a.0.weight"] == {0: ((inner, 8, 1),) * 6}
        assert ax[f"{blk}.c.0.weight"][1] == ax[f"{blk}.se.fc2.weight"][0] == out  # the SE gate shares it
        assert ax[f"{blk}.se.fc1.weight"][0] is not None  # the SE hidden units still move
        assert ax[f"{blk}.c.0.weight"][0] is not None  # and so does the residual stream
    elif name == "shufflenet_v2_x0_5":  # channel shuffle: the branches' outputs stay fixed
        assert ax["stage2.1.branch2.5.weight"][0] is None and ax["stage2.1.branch2.0.weight"][1] is None
        assert ax["stage2.1.branch2.0.weight"][0] == ax["stage2.1.branch2.3.weight"][0] is not None
    elif name == "convnext_tiny":  # channels-last LayerNorm, layer scale, depthwise 7x7
        stream = ax["features.0.0.weight"][0]
        assert stream is not None
        assert ax["features.1.0.layer_scale"] == (stream, None, None)
        assert ax["features.1.0.block.2.weight"] == (stream,)
        assert ax["features.1.0.block.5.weight"] == (stream, ax["features.1.0.block.3.weight"][0])
    elif name == "swin_t":  # attention: a bias per head keeps the heads in place; qk and vo inside them move
        stream = ax["features.0.0.weight"][0]
        assert ax["features.1.0.attn.qkv.weight"] == (None, stream)
        (qk, _, _), _, (vo, _, _) = comp["features.1.0.attn.qkv.weight"][0]
        assert comp["features.1.0.attn.qkv.weight"][0] == ((qk, 96, 1), (qk, 96, 1), (vo, 96, 1)) and qk != vo
        assert spec.blocks[qk] == spec.blocks[vo] == (None, 3, 32)
        assert ax["features.1.0.attn.proj.weight"] == (stream, vo)
        assert ax["features.1.0.mlp.0.weight"][0] is not None
        assert comp["features.2.reduction.weight"] == {1: ((stream, 96, 1),) * 4}  # patch merging
    elif name == "vit":  # attention: heads of 16 channels move as blocks, qk and vo inside them
        stream = ax["conv_proj.weight"][0]
        assert ax["class_token"] == (None, None, stream) and ax["encoder.pos_embedding"] == (None, None, stream)
        outers = set()
        for i in range(2):
            attn = f"encoder.layers.encoder_layer_{i}.self_attention"
            assert ax[f"{attn}.in_proj_weight"] == (None, stream)
            (qk, _, _), _, (vo, _, _) = comp[f"{attn}.in_proj_weight"][0]
            assert comp[f"{attn}.in_proj_weight"][0] == ((qk, 64, 1), (qk, 64, 1), (vo, 64, 1)) and qk != vo
            assert comp[f"{attn}.in_proj_bias"][0] == comp[f"{attn}.in_proj_weight"][0]
            assert ax[f"{attn}.out_proj.weight"] == (stream, vo)
            outer = spec.blocks[qk][0]
            assert spec.blocks[qk] == spec.blocks[vo] == (outer, 4, 16) and outer is not None
            outers.add(outer)
            layer = f"encoder.layers.encoder_layer_{i}"
            assert ax[f"{layer}.mlp.3.weight"] == (stream, ax[f"{layer}.mlp.0.weight"][0])
        assert len(outers) == 2 and set(spec.blocks) == {p for p in spec.perm_names if p.endswith((".qk", ".vo"))}


def _permuted_axes(spec: PermutationSpec) -> int:
    plain = sum(p is not None for perms in spec.axes_to_perm.values() for p in perms)
    return plain + sum(len(by_axis) for by_axis in spec.composite_axes.values())


@pytest.mark.parametrize("name", list(MODELS))
def test_random_permutation_is_an_exact_symmetry(name, fast_grouped_conv):
    model, x = _build(name)
    spec = derive_spec(model, x)
    params = {k: v.detach() for k, v in model.state_dict().items()}
    assert len(spec.perm_names) == MODELS[name][2]
    assert _permuted_axes(spec) >= 2 * len(spec.perm_names)
    _check_structure(name, spec)
    permuted = apply_permutation(spec, random_perms(spec, params, torch.Generator().manual_seed(3)), params)
    assert any(not torch.equal(params[k], permuted[k]) for k in spec.axes_to_perm)
    out = _outputs(model, params, x, train=False)
    assert _rel(out, _outputs(model, permuted, x, train=False)) <= 1e-5
    if not any(isinstance(m, (nn.BatchNorm2d, StochasticDepth)) for m in model.modules()):
        return  # with dropout off, train mode computes what eval mode does
    for m in model.modules():  # dropout is a symmetry in distribution only
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    out_t = _outputs(model, params, x, train=True)
    assert _rel(out_t, out) > 1e-3  # batch statistics, stochastic depth
    assert _rel(out_t, _outputs(model, permuted, x, train=True)) <= 1e-5


def _small_flatten_net():
    """vgg's head in small: a flatten of a (16, 3, 3) map whose nine positions differ (in the
    torchvision models above the last map is 1x1, which adaptive pooling repeats)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(16 * 9, 32), nn.ReLU(), nn.Dropout(), nn.Linear(32, 10),
    ).double()
    _randomise(model, 0)
    return model, torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def test_flatten_of_a_feature_map_moves_whole_blocks():
    model, x = _small_flatten_net()
    spec = derive_spec(model, x)
    assert spec.composite_axes == {"7.weight": {1: ((spec.axes_to_perm["3.weight"][0], 16, 9),)}}
    params = {k: v.detach() for k, v in model.state_dict().items()}
    permuted = apply_permutation(spec, random_perms(spec, params, torch.Generator().manual_seed(3)), params)
    for train in (False, True):
        model[9].p = 0.0 if train else 0.5
        assert _rel(_outputs(model, params, x, train), _outputs(model, permuted, x, train)) <= 1e-12


@pytest.mark.parametrize("name", ["resnet18", "squeezenet1_1", "flatten", "vit"])
def test_weight_matching_recovers_the_permutation_of_its_own_copy(name):
    if name == "flatten":  # vgg's and alexnet's 4096-wide classifiers are too slow to match here
        model, x = _small_flatten_net()
    else:
        model, x = _build(name)
    spec = derive_spec(model, x)
    a = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if name == "squeezenet1_1":  # no norm layers: biases spread over (-1, 1) are what tells its units apart
        gen = torch.Generator().manual_seed(2)
        a = {k: torch.rand(v.shape, generator=gen, dtype=v.dtype) * 2 - 1 if k.endswith("bias") else v
             for k, v in a.items()}
    b = apply_permutation(spec, random_perms(spec, a, torch.Generator().manual_seed(5)), a)
    assert l2_distance(spec, a, b) > 1.0
    # weight matching solves for plain axes: composite ones (flatten, concat) as views of their segments
    spec_v, a_v = plain_view(spec, a)
    _, b_v = plain_view(spec, b)
    assert name == "resnet18" or spec_v is not spec
    res = weight_matching(spec_v, a_v, b_v, seed=0)
    assert l2_distance(spec, a, apply_permutation(spec, res.perms, b)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("name", ["squeezenet1_1", "mobilenet_v3_small", "swin_t", "vit"])
def test_fx_and_export_derive_the_same_spec(name):
    model, x = _build(name)
    assert derive_spec(model, x, tracer="fx").partition() == derive_spec(model, x, tracer="export").partition()


# ---------------------------------------------------------------- rules torchvision's models do not reach


_NOT_ELEMENTWISE = {"MultiheadAttention", "GLU"}
_ACTIVATION_ARGS = {"Threshold": (0.1, 0.0), "Softmax": (1,), "LogSoftmax": (1,), "Softmin": (1,)}
ACTIVATION_MODULES = [n for n in nn.modules.activation.__all__ if n not in _NOT_ELEMENTWISE]
ACTIVATION_FUNCTIONS = {
    "F.relu": F.relu, "F.relu6": F.relu6, "F.elu": F.elu, "F.selu": F.selu, "F.celu": F.celu,
    "F.leaky_relu": lambda x: F.leaky_relu(x, 0.1), "F.gelu": F.gelu,
    "F.gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "F.silu": F.silu, "F.mish": F.mish, "F.hardswish": F.hardswish, "F.hardsigmoid": F.hardsigmoid,
    "F.hardtanh": F.hardtanh, "F.hardshrink": F.hardshrink, "F.softshrink": F.softshrink,
    "F.tanhshrink": F.tanhshrink, "F.softplus": F.softplus, "F.softsign": F.softsign, "F.logsigmoid": F.logsigmoid,
    "F.threshold": lambda x: F.threshold(x, 0.1, 0.0), "F.rrelu": F.rrelu, "F.softmax": lambda x: F.softmax(x, 1),
    "F.log_softmax": lambda x: F.log_softmax(x, 1), "F.softmin": lambda x: F.softmin(x, 1),
    "torch.sigmoid": torch.sigmoid, "torch.tanh": torch.tanh, "torch.relu": torch.relu, "torch.erf": torch.erf,
    "Tensor.clamp": lambda x: x.clamp(-1.0, 1.0), "Tensor.relu_": lambda x: x.clone().relu_(),
    "swish by hand": lambda x: x * torch.sigmoid(x), "power": lambda x: (x.abs() + 1) ** 0.5 / 6,
}


class _Activated(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.c, self.act, self.d, self.fc = nn.Conv2d(3, 6, 3), act, nn.Conv2d(6, 5, 1), nn.Linear(5, 2)

    def forward(self, x):
        return self.fc(self.act(self.d(self.act(self.c(x)))).mean((2, 3)))


class _Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _check_activation(act):
    torch.manual_seed(0)
    model = _Activated(act).double().eval()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    spec = derive_spec(model, x)
    assert spec.axes_to_perm["c.weight"][0] is not None and spec.axes_to_perm["d.weight"][:2] == (
        spec.axes_to_perm["d.bias"][0], spec.axes_to_perm["c.weight"][0])
    params = {k: v.detach() for k, v in model.state_dict().items()}
    permuted = apply_permutation(spec, random_perms(spec, params, torch.Generator().manual_seed(0)), params)
    assert _rel(functional_call(model, params, (x,)), functional_call(model, permuted, (x,))) <= 1e-12


@pytest.mark.parametrize("name", ACTIVATION_MODULES)
def test_every_activation_module_passes_the_permutation(name):
    if name == "PReLU":
        act = nn.PReLU(1)
    else:
        act = getattr(nn, name)(*_ACTIVATION_ARGS.get(name, ()))
    _check_activation(act)


@pytest.mark.parametrize("name", list(ACTIVATION_FUNCTIONS))
def test_every_activation_function_passes_the_permutation(name):
    _check_activation(_Fn(ACTIVATION_FUNCTIONS[name]))


class _Zoo(nn.Module):
    """Channel concatenation and splits, GroupNorm over concatenated segments, a depth
    multiplier, padding and cropping channels, transposed convolution, GLU, channels-last
    LayerNorm, an embedding, attention with separate key/value sizes, shape reads, stack."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 1)
        self.gn0, self.dw = nn.GroupNorm(2, 16), nn.Conv2d(16, 32, 3, padding=1, groups=16)
        self.gn, self.pr = nn.GroupNorm(1, 32), nn.PReLU(32)
        self.up = nn.ConvTranspose2d(32, 6, 2, stride=2)
        self.g1, self.g2 = nn.Conv2d(6, 6, 1), nn.Conv2d(6, 6, 1)
        self.ln, self.fc = nn.LayerNorm(6), nn.Linear(6, 6)
        self.emb = nn.Embedding(7, 6)
        self.mha = nn.MultiheadAttention(6, 2, batch_first=True, kdim=5, vdim=4)
        self.k, self.v = nn.Linear(6, 5), nn.Linear(6, 4)
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        h = self.gn0(torch.cat([self.a(x), self.b(x)], dim=1)).relu()  # one segment per norm group
        h1, h2 = h.chunk(2, dim=1)
        h = torch.cat([F.silu(h1), torch.tanh(h2)], 1)
        h = self.pr(self.gn(self.dw(h)))  # two output channels per input channel
        h = F.pad(h, (1, 1, 0, 0, 1, 2))[:, 1:-2]
        h = self.up(h)
        g = F.glu(torch.cat([self.g1(h), self.g2(h)], 1), dim=1)  # both halves share one permutation
        n, c, hh, ww = g.shape
        t = g.view(n, c, hh * ww).transpose(1, 2)  # (N, L, C)
        t = self.fc(self.ln(t)) + t + self.emb(torch.arange(t.shape[1]) % 7)[None]
        att, _ = self.mha(t, self.k(t), self.v(t))
        t = t + att
        pooled = torch.stack([t.mean(1), t.amax(1)], dim=1).reshape(n, -1, c).sum(1)
        return self.head(torch.cat([pooled, t[:, 0]], dim=-1))


def test_the_rules_torchvision_does_not_reach_are_exact():
    torch.manual_seed(0)
    model = _Zoo().double()
    _randomise(model, 0)
    x = torch.randn(3, 3, 6, 6, dtype=torch.float64)
    specs = [derive_spec(model, x, tracer=t) for t in ("fx", "export")]
    assert specs[0].partition() == specs[1].partition()
    spec, ax = specs[0], specs[0].axes_to_perm
    pa, pb, stream = ax["a.weight"][0], ax["b.weight"][0], ax["g1.weight"][0]
    assert len(spec.perm_names) == 8 and None not in (pa, pb, stream)
    assert spec.composite_axes["gn0.weight"] == {0: ((pa, 8, 1), (pb, 8, 1))}
    assert spec.composite_axes["dw.weight"] == {0: ((pa, 8, 2), (pb, 8, 2))}
    assert ax["g2.weight"][0] == stream and ax["emb.weight"] == (None, stream)
    qk, vo = ax["mha.q_proj_weight"][0], ax["mha.v_proj_weight"][0]  # heads of 3: qk and vo inside them
    assert ax["mha.q_proj_weight"] == (qk, stream) and ax["mha.k_proj_weight"] == (qk, ax["k.weight"][0])
    assert ax["mha.out_proj.weight"][1] == vo and spec.blocks[qk][1:] == spec.blocks[vo][1:] == (2, 3)
    assert spec.blocks[qk][0] == spec.blocks[vo][0] is not None
    assert spec.composite_axes["mha.in_proj_bias"] == {0: ((qk, 6, 1), (qk, 6, 1), (vo, 6, 1))}
    assert spec.composite_axes["head.weight"] == {1: ((stream, 6, 1), (stream, 6, 1))}
    params = {k: v.detach() for k, v in model.state_dict().items()}
    permuted = apply_permutation(spec, random_perms(spec, params, torch.Generator().manual_seed(0)), params)
    assert _rel(functional_call(model, params, (x,)), functional_call(model, permuted, (x,))) <= 1e-12


# ---------------------------------------------------------------- the spec's composite axes


def test_a_composite_axis_is_indexed_by_its_segments():
    spec = PermutationSpec.from_axes({"a": ("P", None), "b": (None, None)}, {"b": {1: (("P", 2, 2), (None, 2, 1))}})
    params = {"a": torch.arange(4.0).reshape(2, 2), "b": torch.arange(6.0).reshape(1, 6)}
    out = apply_permutation(spec, {"P": torch.tensor([1, 0])}, params)
    assert out["a"].tolist() == [[2.0, 3.0], [0.0, 1.0]]
    assert out["b"].tolist() == [[2.0, 3.0, 0.0, 1.0, 4.0, 5.0]]  # blocks of 2 moved, the fixed tail in place
    assert spec.partition() == frozenset({frozenset({("a", 0), ("b", 1, 0)})})


@pytest.mark.parametrize("composite, match", [
    ({"b": {1: (("P", 2, 2),)}}, "cover 4 entries"),
    ({"b": {1: (("Q", 3, 2),)}}, "only on composite axes"),
    ({"b": {1: (("P", 3, 2),)}}, "3 units"),
    ({"a": {0: (("P", 2, 1),)}}, "left None"),
])
def test_a_composite_axis_that_does_not_fit_is_an_error(composite, match):
    spec = PermutationSpec.from_axes({"a": ("P", None), "b": (None, None)}, composite)
    with pytest.raises(LmcClaimsError, match=match):
        spec.check({"a": torch.zeros(2, 2), "b": torch.zeros(1, 6)})


def test_plain_view_has_the_same_distance_and_shares_memory():
    model, x = _build("squeezenet1_1")
    spec = derive_spec(model, x)
    a = {k: v.detach() for k, v in model.state_dict().items()}
    b = apply_permutation(spec, random_perms(spec, a, torch.Generator().manual_seed(1)), a)
    spec_v, a_v = plain_view(spec, a)
    _, b_v = plain_view(spec, b)
    assert not spec_v.composite_axes and set(spec_v.perm_names) == set(spec.perm_names)
    assert l2_distance(spec_v, a_v, b_v) == pytest.approx(l2_distance(spec, a, b), rel=1e-12)
    piece = next(k for k in a_v if k.startswith("features.4.squeeze.weight["))
    assert a_v[piece].data_ptr() >= a["features.4.squeeze.weight"].data_ptr()


# ---------------------------------------------------------------- tracing and errors


class _ShapeBranch(nn.Module):
    """Python control flow on a shape: torch.fx cannot follow it, torch.export can."""

    def __init__(self):
        super().__init__()
        self.c, self.d, self.fc = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1), nn.Linear(6, 4)

    def forward(self, x):
        h = self.c(x).relu()
        if h.shape[-1] > 4:
            h = h + self.d(h)
        return self.fc(h.mean((2, 3)))


def test_a_model_fx_cannot_trace_is_traced_by_export():
    torch.manual_seed(0)
    model, x = _ShapeBranch().double(), torch.randn(2, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(LmcClaimsError, match="torch.fx could not trace"):
        derive_spec(model, x, tracer="fx")
    spec = derive_spec(model, x)
    assert spec.axes_to_perm["d.weight"] == (spec.axes_to_perm["c.weight"][0],) * 2 + (None, None)
    params = {k: v.detach() for k, v in model.state_dict().items()}
    permuted = apply_permutation(spec, random_perms(spec, params, torch.Generator().manual_seed(0)), params)
    torch.testing.assert_close(functional_call(model, permuted, (x,)), functional_call(model, params, (x,)))


class _ValueBranch(_ShapeBranch):
    def forward(self, x):
        h = self.c(x).relu()
        if h.mean() > 0:  # control flow on values: neither tracer follows it
            h = h + self.d(h)
        return self.fc(h.mean((2, 3)))


class _Sorted(_ShapeBranch):
    def forward(self, x):
        return self.fc(torch.sort(self.c(x), dim=1).values.mean((2, 3)))


def test_an_untraceable_model_is_an_error_naming_the_fix():
    with pytest.raises(LmcClaimsError, match="(?s)control flow.*hand-written PermutationSpec"):
        derive_spec(_ValueBranch(), torch.zeros(2, 3, 8, 8))


def test_an_unsupported_op_is_an_error_naming_the_node_and_the_fix():
    with pytest.raises(LmcClaimsError, match=r"(?s)graph node 'sort'.*torch\.sort.*How to fix:.*hand-written"):
        derive_spec(_Sorted(), torch.zeros(2, 3, 8, 8))


def test_an_input_of_the_wrong_shape_is_an_error_naming_the_node_and_the_input():
    model = tvm.resnet18(weights=None, num_classes=10)
    with pytest.raises(LmcClaimsError, match=r"(?s)example input of shape \(2, 1, 32, 32\).*node 'conv1'.*"
                                             r"3 channels.*How to fix: pass an example input the model accepts"):
        derive_spec(model, torch.zeros(2, 1, 32, 32))
    with pytest.raises(LmcClaimsError, match="not a tensor"):
        derive_spec(model, [torch.zeros(2, 3, 32, 32)])


def test_derivation_leaves_the_model_as_it_was():
    model, x = _build("mobilenet_v3_small")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    derive_spec(model, x)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
