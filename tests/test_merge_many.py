"""MergeMany (Git Re-Basin Algorithm 3): permuted copies of one model are brought back to one
common ordering, whatever order they are visited in, and the merge of genuinely different
models is no farther from its members than plain averaging."""

import pytest
import torch

from helpers import random_mlp
from lmc_claims.matching.merge import average, merge_many
from lmc_claims.metrics.distance import l2_distance
from lmc_claims.models.registry import build_model, get_architecture
from lmc_claims.permutation import apply_permutation, random_perms
from lmc_claims.permutation.apply import compose


def _copies(spec, params, k, seed):
    gen = torch.Generator().manual_seed(seed)
    planted = [random_perms(spec, params, gen) for _ in range(k)]
    return planted, [apply_permutation(spec, p, params) for p in planted]


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_permuted_copies_of_one_model_merge_back_into_it(k, seed):
    model, spec, a = random_mlp(seed, width=16, depth=3)
    planted, models = _copies(spec, a, k, seed)
    perms = merge_many(spec, models, seed=seed)
    aligned = [apply_permutation(spec, p, m) for p, m in zip(perms, models)]
    # All copies end in one common ordering (no anchor: not necessarily the original one) ...
    for m in aligned[1:]:
        assert l2_distance(spec, aligned[0], m) == pytest.approx(0.0, abs=1e-12)
    # ... so their average is the original model up to one permutation, with identical outputs.
    merged = average(aligned)
    x = torch.randn(20, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(torch.func.functional_call(model, merged, (x,)),
                               torch.func.functional_call(model, a, (x,)))
    # Planted, then found: one and the same permutation of the original for every copy.
    common = compose(planted[0], perms[0])
    for p, pl in zip(perms[1:], planted[1:]):
        for name in p:
            assert torch.equal(compose(pl, p)[name], common[name])


def test_a_single_model_is_left_alone():
    _, spec, a = random_mlp(0, 8, 2)
    (perms,) = merge_many(spec, [a], seed=0)
    assert all(torch.equal(v, torch.arange(len(v))) for v in perms.values())


def test_seeded():
    _, spec, a = random_mlp(0, 12, 2)
    models = [random_mlp(s, 12, 2)[2] for s in range(4)]
    p1, p2 = merge_many(spec, models, seed=3), merge_many(spec, models, seed=3)
    assert all(torch.equal(x[k], y[k]) for x, y in zip(p1, p2) for k in x)


def test_merging_different_models_pulls_them_together():
    _, spec, _ = random_mlp(0, 32, 2)
    models = [random_mlp(s, 32, 2)[2] for s in range(4)]
    perms = merge_many(spec, models, seed=0)
    aligned = [apply_permutation(spec, p, m) for p, m in zip(perms, models)]

    def spread(ms):
        mean = average(ms)
        return sum(l2_distance(spec, mean, m) ** 2 for m in ms)

    assert spread(aligned) < spread(models)


def test_resnet_copies_merge_back():
    torch.manual_seed(0)
    model = build_model("resnet20ln", (1, 8, 8), 3, 1).double()
    spec = get_architecture("resnet20ln").spec(model)
    a = {k: v.detach().clone() for k, v in model.state_dict().items()}
    _, models = _copies(spec, a, 3, 0)
    perms = merge_many(spec, models, seed=0)
    aligned = [apply_permutation(spec, p, m) for p, m in zip(perms, models)]
    for m in aligned[1:]:
        assert l2_distance(spec, aligned[0], m) == pytest.approx(0.0, abs=1e-9)


def test_the_lab_caches_merge_many_like_a_search(tmp_path):
    """MergeMany is a permutation search: the lab stores it in the zoo, and a new session reads the
    same permutations back instead of running it again; they are the plain function's."""
    import torch

    from lmc_claims.lab import Lab
    from lmc_claims.scales import get_scale
    from lmc_claims.seeds import sub_seed
    from lmc_claims.zoo import Zoo

    seeds = [0, 1, 2]
    first = Lab(get_scale("smoke"), torch.device("cpu"), Zoo(tmp_path)).setting("mlp", "mnist5k", 16)
    want = merge_many(first.spec, first.models(seeds), seed=sub_seed("mergemany", *seeds))
    got = first.merge_many(seeds)
    lines = []
    again = Lab(get_scale("smoke"), torch.device("cpu"), Zoo(tmp_path)).setting("mlp", "mnist5k", 16)
    again.builds.progress = lines.append  # a build would report a progress line
    read = again.merge_many(seeds)
    assert not lines
    for w, g, r in zip(want, got, read):
        assert w.keys() == g.keys() == r.keys()
        assert all(torch.equal(w[k], g[k]) and torch.equal(g[k], r[k]) for k in w)
