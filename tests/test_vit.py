"""The built-in ViT: shapes and sizes, its derived permutation spec is an exact symmetry, a tiny
one learns, and Theus et al.'s claim runs on it through the whole pipeline at smoke scale."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import xarray as xr
from torch.func import functional_call

from lmc_claims.catalogue import get_claim, theus2025
from lmc_claims.data import load_dataset
from lmc_claims.errors import LmcClaimsError
from lmc_claims.matching.weight import weight_matching
from lmc_claims.metrics.distance import l2_distance
from lmc_claims.metrics.interpolation import evaluate
from lmc_claims.models.registry import build_model
from lmc_claims.models.vit import HEAD_DIM, ViT
from lmc_claims.permutation import apply_permutation, random_perms
from lmc_claims.permutation.derive import derive_spec
from lmc_claims.plan import for_claims
from lmc_claims.scales import LMC_BARRIER, get_scale, reference_mlp
from lmc_claims.training import Recipe, TrainConfig, make_model, train

ROOT = Path(__file__).resolve().parents[1]
CLAIM = "theus2025-transformer-barrier"


@pytest.mark.parametrize("shape, tokens", [((1, 28, 28), 16), ((3, 32, 32), 64), ((1, 8, 8), 16)])
def test_patches_tokens_and_output_shape(shape, tokens):
    model = ViT(shape, 10, width=2)
    assert model.pos.shape == (1, tokens + 1, 2 * HEAD_DIM)
    assert model(torch.zeros(5, *shape)).shape == (5, 10)


def test_theus_et_al_vit_has_their_sizes():
    """`vit-d6` at width 8 on CIFAR-10: 6 blocks, 8 heads of 32 (dim 256), MLP 512."""
    model = build_model("vit-d6", (3, 32, 32), 10, 8)
    assert len(model.blocks) == 6 and model.blocks[0].attn.heads == 8
    assert model.blocks[0].fc1.weight.shape == (512, 256) and model.head.weight.shape == (10, 256)
    assert len(build_model("vit", (1, 28, 28), 10, 2).blocks) == 2


@pytest.mark.parametrize("shape", [(40,), (1, 28, 20), (1, 30, 30)])
def test_an_input_it_cannot_cut_into_patches_is_a_clear_error(shape):
    with pytest.raises(LmcClaimsError, match="square images"):
        ViT(shape, 10)


def _random(shape, width: int, seed: int):
    """float64, with non-trivial norm scales and biases, so that no permuted parameter is invisible."""
    torch.manual_seed(seed)
    model = ViT(shape, 10, width=width).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dim() == 1:
                t.copy_(torch.rand(t.shape, generator=gen, dtype=t.dtype) + (0.5 if name.endswith("weight") else -0.5))
    return model, {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_derived_spec_and_a_random_permutation_leave_outputs_unchanged(shape):
    model, params = _random(shape, 2, 0)
    spec = derive_spec(model, torch.zeros(2, *shape, dtype=torch.float64))
    # The residual stream and every block's MLP units are permuted (at least).
    assert {"embed.weight", "blocks.0.fc1.weight", "blocks.1.fc1.weight"} <= {
        p for p, axes in spec.axes_to_perm.items() if axes[0] is not None}
    assert len({spec.axes_to_perm[f"blocks.{i}.fc1.weight"][0] for i in (0, 1)} | {spec.axes_to_perm["embed.weight"][0]}) == 3
    # Attention: query and key rows share one permutation, value rows and the output projection's
    # columns another; both are made of the 2 heads' blocks of 32, moved by one head permutation.
    for i in (0, 1):
        axes = {n: spec.axes_to_perm[f"blocks.{i}.attn.{n}.weight"] for n in ("q", "k", "v", "out")}
        qk, vo = axes["q"][0], axes["v"][0]
        assert axes["k"][0] == qk and axes["out"][1] == vo and qk != vo and None not in (qk, vo)
        assert spec.blocks[qk][1:] == spec.blocks[vo][1:] == (2, HEAD_DIM) and spec.blocks[qk][0] == spec.blocks[vo][0]
    permuted = apply_permutation(spec, random_perms(spec, params, torch.Generator().manual_seed(1)), params)
    assert l2_distance(spec, params, permuted) > 0.1  # the permutation moved something
    x = torch.randn(4, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for mode in ("eval", "train"):
        getattr(model, mode)()
        out, out_p = functional_call(model, params, (x,)), functional_call(model, permuted, (x,))
        assert float((out - out_p).norm() / out.norm()) <= 1e-10


def test_weight_matching_recovers_a_permutation_of_a_vit():
    model, params = _random((1, 28, 28), 2, 3)
    spec = derive_spec(model, torch.zeros(2, 1, 28, 28, dtype=torch.float64))
    b = apply_permutation(spec, random_perms(spec, params, torch.Generator().manual_seed(4)), params)
    res = weight_matching(spec, params, b, seed=0)
    assert l2_distance(spec, params, apply_permutation(spec, res.perms, b)) == pytest.approx(0.0, abs=1e-9)


def test_a_tiny_vit_learns_mnist_digits():
    data = load_dataset("mnist5k")
    config = TrainConfig(arch="vit", dataset="mnist5k", width=2, seed=0,
                         recipe=Recipe(epochs=4, batch_size=64, lr=3e-3, n_train=2000))
    params = train(config, data, torch.device("cpu"))
    loss, acc = evaluate(make_model(config, data), params, data.x_test, data.y_test)
    assert acc > 0.5 and loss < 1.5  # chance: 0.1 and ln 10 = 2.3


def test_the_claim_is_judged_in_the_regime_only_on_theus_et_al_vit():
    regime = get_claim(CLAIM).regime
    assert regime.check("vit-d6", 8, "adamw") == ""
    assert "not an architecture" in regime.check("vit", 2, "adam")  # the ci ViT: 2 blocks, dim 64
    assert "below" in regime.check("vit-d6", 2, "adamw")
    assert theus2025.LMC_BARRIER == LMC_BARRIER  # the catalogue's copy of the project's near zero
    vit = get_scale("paper").run("vit-d6", "cifar10")
    assert vit.widths == (8,) and vit.recipe.optimizer == "adamw" and vit.recipe.epochs == 150


def test_the_reference_mlp_is_planned_and_survives_a_narrower_selection():
    ci = get_scale("ci")
    assert reference_mlp(ci) == ("mlp", "mnist5k", 512)
    assert reference_mlp(get_scale("smoke")) == ("mlp", "mnist5k", 32)  # no 512 there: its widest
    only_vit = ci.select(["vit"], ["digits"])
    assert reference_mlp(only_vit) == ("mlp", "mnist5k", 512) and only_vit.run("mlp", "mnist5k")
    plan = for_claims(only_vit, [CLAIM])
    assert set(plan.needs) == {("vit", "digits", 2), ("mlp", "mnist5k", 512)}
    assert all(needs == {"wm"} for needs in plan.needs.values())


@pytest.mark.slow
def test_the_claim_runs_on_the_vit_through_the_pipeline(tmp_path):
    """`pytest -m claims -k theus --claims-arch=vit` at smoke scale: one judged claim test per width,
    with the reference MLP's barriers and the published figures beside ours."""
    cmd = [sys.executable, "-m", "pytest", "-m", "claims", "--claims-scale=smoke", "--claims-arch=vit", "-k", "theus",
           "-p", "no:cacheprovider", "-q", f"--claims-cache-dir={tmp_path / 'cache'}",
           f"--claims-report-dir={tmp_path / 'reports'}", str(ROOT / "claims")]
    # One intra-op thread: the tiny models' many small ops wait for a second thread on a shared CPU.
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    records = json.loads((tmp_path / "reports" / "report.json").read_text())["claims"]
    assert sorted((r["id"], r["params"]["arch"], r["params"]["width"]) for r in records) == [
        (CLAIM, "vit", 1), (CLAIM, "vit", 2)]
    for r in records:
        assert r["verdict"] in ("pass", "fail", "inconclusive") and r["n_seeds"] >= 3 and not r["in_regime"]
        assert [p["statistic"] for p in r["published"]] == [p.statistic for p in get_claim(CLAIM).published]
        ds = xr.load_dataset(tmp_path / "reports" / r["data_file"])
        assert ds.attrs["reference_mlp"] == "mlp-w32-mnist5k"
        for split in ("train", "test"):
            for name in ("naive_barrier", "wm_barrier", "wm_barrier_reduction", "mlp_wm_barrier"):
                assert ds[f"{name}_{split}"].dims == ("pair",) and ds[f"{name}_{split}"].notnull().all()
