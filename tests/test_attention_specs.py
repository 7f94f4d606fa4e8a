"""Attention heads in derived permutation specs: exact block-structured symmetries, and matching
that finds them.

For nn.MultiheadAttention (packed and separate projections, batch first or not, key/value
biases) and for hand-written pre-LayerNorm ViTs whose attention is written out (one packed qkv
Linear or three, reshaped to heads, scaled_dot_product_attention or matmul/softmax/matmul): the
derived spec permutes the heads as blocks, with one permutation of the query and key rows and
one of the value rows and the output projection's columns inside them; a random permutation
of that structure leaves the outputs unchanged (float64, eval mode); weight matching, activation
matching and STE of a model onto its own permuted copy recover the permutation. Constructions
whose heads or channels admit no such permutation keep them fixed, and stay exact.
"""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lmc_claims.cpu import limit_threads
from lmc_claims.errors import LmcClaimsError
from lmc_claims.matching.activation import activation_matching
from lmc_claims.matching.lap import solve_blocks
from lmc_claims.matching.ste import SteRecipe, ste_matching
from lmc_claims.matching.weight import objective, weight_matching
from lmc_claims.metrics.distance import l2_distance
from lmc_claims.permutation import PermutationSpec, apply_permutation, random_perms
from lmc_claims.permutation.apply import compose, identity_perms, inverse
from lmc_claims.permutation.derive import derive_spec

DIM, HEADS = 24, 4  # heads of 6 channels


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Many tiny float64 ops: one intra-op thread on a shared CPU."""
    with limit_threads("cpu", 1):
        yield


class _Attention(nn.Module):
    """Self-attention written out three ways: "packed" (one qkv Linear, reshape to (3, heads,
    head_dim), unbind, scaled_dot_product_attention), "split" (one qkv Linear split in three,
    view/transpose per tensor, q @ k^T, softmax, @ v), "separate" (q, k, v Linear, sdpa).
    `variant` adds what keeps parts fixed (see test_unsupported_constructions_stay_fixed)."""

    def __init__(self, style: str, variant: str = ""):
        super().__init__()
        self.style, self.variant, self.d = style, variant, DIM // HEADS
        if style == "separate":
            self.q, self.k, self.v = (nn.Linear(DIM, DIM) for _ in range(3))
        else:
            self.qkv = nn.Linear(DIM, 3 * DIM)
        self.proj = nn.Linear(DIM, DIM)
        if variant == "temperature":  # a learned scale per head
            self.temperature = nn.Parameter(torch.rand(HEADS, 1, 1) + 0.5)
        if variant == "qk_norm":  # one LayerNorm over head_dim shared by all heads
            self.q_norm, self.k_norm = nn.LayerNorm(self.d), nn.LayerNorm(self.d)

    def forward(self, x):
        n, t, c = x.shape
        if self.style == "packed":
            q, k, v = self.qkv(x).reshape(n, t, 3, HEADS, self.d).permute(2, 0, 3, 1, 4).unbind(0)
        else:
            q, k, v = self.qkv(x).split(c, dim=2) if self.style == "split" else (self.q(x), self.k(x), self.v(x))
            q, k, v = (y.view(n, t, HEADS, self.d).transpose(1, 2) for y in (q, k, v))
        if self.variant == "qk_norm":
            q, k = self.q_norm(q), self.k_norm(k)
        if self.style == "split" or self.variant in ("temperature", "einsum"):
            if self.variant == "einsum":
                att = torch.einsum("bhid,bhjd->bhij", q, k) / self.d ** 0.5
            else:
                att = (q @ k.transpose(-2, -1)) * self.d ** -0.5
            if self.variant == "temperature":
                att = att * self.temperature
            y = att.softmax(dim=-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(n, t, c))


class _ViT(nn.Module):
    """Pre-LayerNorm ViT: patch embedding conv, class token, position embedding, blocks of
    x + attn(LN(x)) and x + MLP(LN(x)), a final LN, a head on the class token."""

    def __init__(self, style: str = "packed", variant: str = "", depth: int = 2, attention=None):
        super().__init__()
        self.embed = nn.Conv2d(3, DIM, 4, stride=4)
        self.cls = nn.Parameter(torch.randn(1, 1, DIM))
        self.pos = nn.Parameter(torch.randn(1, 5, DIM))
        self.norm1 = nn.ModuleList(nn.LayerNorm(DIM) for _ in range(depth))
        self.attn = nn.ModuleList(attention() if attention else _Attention(style, variant) for _ in range(depth))
        self.norm2 = nn.ModuleList(nn.LayerNorm(DIM) for _ in range(depth))
        self.mlp = nn.ModuleList(nn.Sequential(nn.Linear(DIM, 2 * DIM), nn.GELU(), nn.Linear(2 * DIM, DIM))
                                 for _ in range(depth))
        self.norm, self.head = nn.LayerNorm(DIM), nn.Linear(DIM, 10)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        for n1, attn, n2, mlp in zip(self.norm1, self.attn, self.norm2, self.mlp):
            x = x + attn(n1(x))
            x = x + mlp(n2(x))
        return self.head(self.norm(x)[:, 0])


class _MHA(nn.Module):
    """nn.MultiheadAttention used as self-attention (q = k = v)."""

    def __init__(self, **kwargs):
        super().__init__()
        self.batch_first = kwargs.get("batch_first", False)
        self.mha = nn.MultiheadAttention(DIM, HEADS, **kwargs)

    def forward(self, x):
        if not self.batch_first:
            x = x.transpose(0, 1)
        y = self.mha(x, x, x, need_weights=False)[0]
        return y if self.batch_first else y.transpose(0, 1)


class _CrossMHA(nn.Module):
    """nn.MultiheadAttention with keys and values of other sizes (separate projection weights)."""

    def __init__(self):
        super().__init__()
        self.k, self.v = nn.Linear(DIM, 10), nn.Linear(DIM, 8)
        self.mha = nn.MultiheadAttention(DIM, HEADS, batch_first=True, kdim=10, vdim=8)

    def forward(self, x):
        return self.mha(x, self.k(x), self.v(x))[0]


MHA = {
    "packed": lambda: _MHA(batch_first=True),
    "seq_first_bias_kv": lambda: _MHA(add_bias_kv=True),
    "kdim_vdim": _CrossMHA,
}


def _build(make, seed: int = 0, shape=(3, 3, 8, 8)):
    """A float64 model (made by `make` under `seed`) in eval mode, an input batch and its
    parameters. Biases, norm scales and the key/value biases get random values (their init is
    constant): units differ in all."""
    torch.manual_seed(seed)
    model = make().double().eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.named_parameters():
            if t.dim() == 1 or name.endswith(("bias_k", "bias_v")):
                scale = name.endswith("weight")  # norm scales around 1, the rest around 0
                t.copy_(torch.rand(t.shape, generator=gen, dtype=t.dtype) - 0.5 + scale)
    x = torch.randn(*shape, dtype=torch.float64, generator=gen)
    return model, x, {k: v.detach().clone() for k, v in model.state_dict().items()}


def _rel(a, b) -> float:
    return float((a - b).detach().norm() / a.detach().norm())


def _permuted_output(model, spec, params, x, seed=1):
    perms = random_perms(spec, params, torch.Generator().manual_seed(seed))
    assert spec.respects_blocks(perms)
    permuted = apply_permutation(spec, perms, params)
    assert any(not torch.equal(params[k], permuted[k]) for k in spec.axes_to_perm)
    return functional_call(model, permuted, (x,)), perms


def _heads(spec, qk, vo, n=HEADS, d=DIM // HEADS):
    """qk and vo are block-structured perms of n heads of d channels sharing one head permutation."""
    assert qk != vo and spec.blocks[qk][1:] == spec.blocks[vo][1:] == (n, d)
    assert spec.blocks[qk][0] == spec.blocks[vo][0] is not None


# ---------------------------------------------------------------- the derived spec is exact


@pytest.mark.parametrize("style", ["packed", "split", "separate"])
def test_written_out_attention_gets_head_permutations_and_stays_exact(style):
    model, x, params = _build(lambda: _ViT(style))
    spec = derive_spec(model, x)
    ax, comp = spec.axes_to_perm, spec.composite_axes
    stream = ax["embed.weight"][0]
    for i in range(2):
        a = f"attn.{i}"
        if style == "separate":
            qk, vo = ax[f"{a}.q.weight"][0], ax[f"{a}.v.weight"][0]
            assert ax[f"{a}.k.weight"] == (qk, stream) and ax[f"{a}.k.bias"] == (qk,)
        else:
            qk, vo = comp[f"{a}.qkv.weight"][0][0][0], comp[f"{a}.qkv.weight"][0][2][0]
            assert comp[f"{a}.qkv.weight"][0] == ((qk, DIM, 1), (qk, DIM, 1), (vo, DIM, 1))
            assert comp[f"{a}.qkv.bias"][0] == comp[f"{a}.qkv.weight"][0] and ax[f"{a}.qkv.weight"] == (None, stream)
        assert ax[f"{a}.proj.weight"] == (stream, vo)
        _heads(spec, qk, vo)
    assert len(spec.perm_names) == 1 + 2 * 3 and len(spec.block_groups()) == 2
    out, _ = _permuted_output(model, spec, params, x)
    assert _rel(model(x), out) <= 1e-12
    assert spec.partition() == derive_spec(model, x, tracer="export").partition()


@pytest.mark.parametrize("name", list(MHA))
def test_multihead_attention_gets_head_permutations_and_stays_exact(name):
    model, x, params = _build(lambda: _ViT(attention=MHA[name], depth=1))
    spec = derive_spec(model, x)
    ax, comp = spec.axes_to_perm, spec.composite_axes
    vo = ax["attn.0.mha.out_proj.weight"][1]
    if name == "kdim_vdim":
        qk = ax["attn.0.mha.q_proj_weight"][0]
        assert ax["attn.0.mha.k_proj_weight"] == (qk, ax["attn.0.k.weight"][0])
        assert ax["attn.0.mha.v_proj_weight"] == (vo, ax["attn.0.v.weight"][0])
    else:
        qk = comp["attn.0.mha.in_proj_weight"][0][0][0]
        assert comp["attn.0.mha.in_proj_weight"][0] == ((qk, DIM, 1), (qk, DIM, 1), (vo, DIM, 1))
    assert comp["attn.0.mha.in_proj_bias"][0] == ((qk, DIM, 1), (qk, DIM, 1), (vo, DIM, 1))
    if name == "seq_first_bias_kv":  # the appended key and value follow their projections
        assert ax["attn.0.mha.bias_k"] == (None, None, qk) and ax["attn.0.mha.bias_v"] == (None, None, vo)
    _heads(spec, qk, vo)
    out, _ = _permuted_output(model, spec, params, x)
    assert _rel(model(x), out) <= 1e-12
    assert spec.partition() == derive_spec(model, x, tracer="export").partition()


@pytest.mark.parametrize("variant, qk_moves", [
    ("temperature", True),  # a parameter per head: the heads stay, the channels inside them move
    ("qk_norm", False),  # one LayerNorm over head_dim for all heads: q and k stay; the heads too
    ("einsum", False),  # scores by einsum (no rule): q and k stay; scores differ per head, so v's heads stay
])
def test_unsupported_constructions_stay_fixed(variant, qk_moves):
    model, x, params = _build(lambda: _ViT("separate", variant, depth=1))
    spec = derive_spec(model, x)
    ax = spec.axes_to_perm
    qk, vo = ax["attn.0.q.weight"][0], ax["attn.0.v.weight"][0]
    in_place = (None, HEADS, DIM // HEADS)  # heads that stay, channels inside them that move
    assert spec.blocks[vo] == in_place and ax["attn.0.proj.weight"][1] == vo
    if qk_moves:
        assert spec.blocks[qk] == in_place and ax["attn.0.k.weight"][0] == qk
    else:
        assert qk is None and ax["attn.0.k.weight"][0] is None
    out, _ = _permuted_output(model, spec, params, x)
    assert _rel(model(x), out) <= 1e-12


class _PerHeadWeights(nn.Module):
    def __init__(self):
        super().__init__()
        self.mha = nn.MultiheadAttention(DIM, HEADS, batch_first=True)

    def forward(self, x):
        return self.mha(x, x, x, average_attn_weights=False)


def test_attention_weights_per_head_in_the_output_keep_the_heads():
    model, x, params = _build(_PerHeadWeights, shape=(3, 5, DIM))
    spec = derive_spec(model, x)
    qk, _, vo = (p for p, _, _ in spec.composite_axes["mha.in_proj_weight"][0])
    assert spec.blocks[qk] == spec.blocks[vo] == (None, HEADS, DIM // HEADS)
    (y, w), ((y2, w2), _) = model(x), _permuted_output(model, spec, params, x)
    assert _rel(y, y2) <= 1e-12 and _rel(w, w2) <= 1e-12
    assert spec.partition() == derive_spec(model, x, tracer="export").partition()


# ---------------------------------------------------------------- the representation


def test_block_perms_compose_invert_and_are_checked():
    model, x, params = _build(lambda: _ViT("packed", depth=1))
    spec = derive_spec(model, x)
    p = random_perms(spec, params, torch.Generator().manual_seed(1))
    q = random_perms(spec, params, torch.Generator().manual_seed(2))
    assert spec.respects_blocks(compose(p, q)) and spec.respects_blocks(inverse(p))
    qk, vo = next(iter(spec.block_groups().values()))
    broken = dict(p, **{qk: p[qk].roll(1)})  # a unit moved into another head
    assert not spec.respects_blocks(broken)
    other = dict(p, **{vo: torch.cat([p[vo][DIM // HEADS:], p[vo][:DIM // HEADS]])})  # vo's heads moved alone
    assert spec.respects_blocks(p) and not spec.respects_blocks(other)
    bad = PermutationSpec.from_axes(spec.axes_to_perm, spec.composite_axes, {**spec.blocks, qk: (None, 5, 5)})
    with pytest.raises(LmcClaimsError, match="blocks"):
        bad.check(params)


# ---------------------------------------------------------------- matching finds the heads


def _own_copy(model_fn, seed=0):
    model, x, a = _build(model_fn, seed)
    spec = derive_spec(model, x)
    hidden = random_perms(spec, a, torch.Generator().manual_seed(seed + 5))
    return model, spec, a, apply_permutation(spec, hidden, a), inverse(hidden)


MODELS = {"packed": lambda: _ViT("packed"), "split": lambda: _ViT("split"),
          "mha": lambda: _ViT(attention=MHA["packed"], depth=1)}


@pytest.mark.parametrize("name", list(MODELS))
def test_weight_matching_recovers_the_heads_of_its_own_copy(name):
    _, spec, a, b, truth = _own_copy(MODELS[name])
    assert l2_distance(spec, a, b) > 1.0
    res = weight_matching(spec, a, b, seed=0)
    assert all(torch.equal(res.perms[p], truth[p]) for p in truth)
    assert l2_distance(spec, a, apply_permutation(spec, res.perms, b)) == pytest.approx(0.0, abs=1e-9)
    # the objective reached is the largest there is: <theta_A, theta_A>
    assert res.objective[-1] == pytest.approx(objective(spec, truth, a, b), rel=1e-12)
    assert res.objective[-1] == pytest.approx(float(sum((a[k] ** 2).sum() for k in spec.axes_to_perm)), rel=1e-12)


@pytest.mark.parametrize("name", ["packed", "mha"])
def test_activation_matching_recovers_the_heads_of_its_own_copy(name):
    model, spec, a, b, truth = _own_copy(MODELS[name])
    x = torch.randn(40, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    res = activation_matching(spec, model, a, b, x)
    assert spec.respects_blocks(res.perms)
    assert all(torch.equal(res.perms[p], truth[p]) for p in truth)


def test_ste_projects_onto_head_structured_permutations():
    model, spec, a, b, truth = _own_copy(MODELS["packed"])
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(32, 3, 8, 8, dtype=torch.float64, generator=gen)
    y = torch.randint(0, 10, (32,), generator=gen)
    res = ste_matching(spec, model, a, b, x, y, SteRecipe.ito(epochs=1, batch_size=16))
    assert res.n_steps == 2 and all(torch.equal(res.initial_perms[p], truth[p]) for p in truth)
    assert spec.respects_blocks(res.perms)
    model.eval()
    out = functional_call(model, apply_permutation(spec, res.perms, b), (x,))
    assert _rel(functional_call(model, b, (x,)), out) <= 1e-12  # a symmetry: B's function unchanged


@pytest.mark.parametrize("move", [True, False])
def test_the_head_step_is_the_best_block_structured_assignment(move):
    """solve_blocks against every block-structured permutation of 3 blocks of 2 (one shared
    block order, any order inside each block, for two cost matrices)."""
    rng = np.random.default_rng(0)
    costs = [rng.standard_normal((6, 6)), rng.standard_normal((6, 6))]
    got = solve_blocks(costs, [2, 2], 3, move=move)
    value = lambda perms: sum(c[np.arange(6), p].sum() for c, p in zip(costs, perms))  # noqa: E731
    insides = list(itertools.product(itertools.permutations(range(2)), repeat=3))
    best = -np.inf
    for order in itertools.permutations(range(3)) if move else [(0, 1, 2)]:
        for w1, w2 in itertools.product(insides, repeat=2):
            perms = [np.array([order[i] * 2 + w[i][j] for i in range(3) for j in range(2)]) for w in (w1, w2)]
            best = max(best, value(perms))
    assert value(got) == pytest.approx(best, rel=1e-12)
    spec = PermutationSpec.from_axes({"a": ("A",), "b": ("B",)}, blocks={"A": ("H" if move else None, 3, 2),
                                                                        "B": ("H" if move else None, 3, 2)})
    assert spec.respects_blocks({"A": torch.from_numpy(got[0]), "B": torch.from_numpy(got[1])})


def test_matching_two_different_models_gives_symmetries():
    """Between independently initialised models no permutation is the truth: what weight and
    activation matching return must still be block-structured, so that B keeps its function."""
    model, x, a = _build(lambda: _ViT("packed"), seed=0)
    _, _, b = _build(lambda: _ViT("packed"), seed=1)
    spec = derive_spec(model, x)
    data = torch.randn(40, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    wm = weight_matching(spec, a, b, seed=0)
    am = activation_matching(spec, model, a, b, data)
    assert wm.objective[-1] > objective(spec, identity_perms(spec, a), a, b)
    for res in (wm, am):
        assert spec.respects_blocks(res.perms)
        assert any(not torch.equal(p, torch.arange(len(p))) for q, p in res.perms.items() if q in spec.blocks)
        out = functional_call(model, apply_permutation(spec, res.perms, b), (x,))
        assert _rel(functional_call(model, b, (x,)), out) <= 1e-12


def test_packed_attention_projections_count_as_permuted_in_the_spectral_metrics():
    """nn.MultiheadAttention packs q, k and v in one in_proj_weight whose rows are a composite axis:
    Ito et al.'s alignment statistics must treat its left singular vectors as living in a permuted
    space (they move with the heads), as they do for separate q/k/v projections."""
    from lmc_claims.metrics.spectral import weight_matrices

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Linear(5, DIM)
            self.attn = nn.MultiheadAttention(DIM, HEADS, batch_first=True)
            self.out = nn.Linear(DIM, 3)

        def forward(self, x):
            h = self.inp(x)
            return self.out(self.attn(h, h, h, need_weights=False)[0].mean(1))

    model = Net().double().eval()
    spec = derive_spec(model, torch.randn(2, 4, 5, dtype=torch.float64))
    mats = {w.name: w for w in weight_matrices(spec, model.state_dict())}
    assert "attn.in_proj_weight" in spec.composite_axes and spec.axes_to_perm["attn.in_proj_weight"][0] is None
    assert mats["attn.in_proj_weight"].rows_permuted and mats["attn.in_proj_weight"].cols_permuted
    assert mats["inp.weight"].rows_permuted and not mats["inp.weight"].cols_permuted
