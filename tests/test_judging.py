import math

import numpy as np
import pytest

from lmc_claims.catalogue import CLAIMS, get_claim
from lmc_claims.judging import FAIL, INCONCLUSIVE, PASS, Criterion, Published, Regime, compare_published, judge, overall
from lmc_claims.errors import LmcClaimsError

GE = Criterion("x", ">=", 0.7, source="test")
LE = Criterion("x", "<=", 0.05, source="test")


def test_clear_pass_clear_fail_and_undecided():
    assert judge(GE, [0.90, 0.92, 0.91], 3).verdict == PASS
    assert judge(GE, [0.40, 0.42, 0.41], 3).verdict == FAIL
    assert judge(GE, [0.60, 0.95, 0.70], 3).verdict == INCONCLUSIVE
    assert judge(LE, [0.01, 0.02, 0.015], 3).verdict == PASS
    assert judge(LE, [0.30, 0.31, 0.29], 3).verdict == FAIL


def test_too_few_seeds_is_inconclusive_never_a_pass():
    assert judge(GE, [0.95, 0.96], 3).verdict == INCONCLUSIVE
    assert judge(GE, [], 3).verdict == INCONCLUSIVE
    assert judge(GE, [math.nan, 0.9, 0.9], 3).n == 2


def test_one_sided_bound_uses_student_t():
    j = judge(GE, [1.0, 2.0, 3.0], 3)
    # t_{0.95, 2} = 2.919986; sd = 1; se = 1/sqrt(3)
    assert j.lower == pytest.approx(2.0 - 2.919986 / math.sqrt(3), rel=1e-5)
    assert j.upper == pytest.approx(2.0 + 2.919986 / math.sqrt(3), rel=1e-5)


def test_exact_criteria_use_the_worst_seed():
    exact = Criterion("x", "<=", 1e-9, source="test", exact=True)
    assert judge(exact, [1e-15, 2e-15, 1e-16], 3).verdict == PASS
    assert judge(exact, [1e-15, 1e-3, 1e-16], 3).verdict == FAIL


def test_overall_verdict():
    p, f, i = (judge(GE, v, 3) for v in ([0.9] * 3, [0.1] * 3, [0.6, 0.95, 0.7]))
    assert overall([p, p]) == PASS
    assert overall([p, i]) == INCONCLUSIVE
    assert overall([i, f]) == FAIL


def test_every_claim_declares_a_source_for_each_threshold():
    for claim in CLAIMS.values():
        assert claim.criteria and claim.min_seeds >= 3
        for c in claim.criteria:
            assert c.source and c.op in (">", ">=", "<", "<=")


def test_unknown_claim_id_names_the_known_ones():
    with pytest.raises(LmcClaimsError, match="ito2024-l2-distance"):
        get_claim("no-such-claim")


def test_a_failed_precondition_makes_the_claim_inconclusive_whatever_the_rest_says():
    moved = Criterion("moved", ">=", 0.01, source="test", precondition=True)
    passes, fails = judge(GE, [0.9] * 3, 3), judge(GE, [0.1] * 3, 3)
    assert overall([judge(moved, [0.0] * 3, 3), fails]) == INCONCLUSIVE
    assert overall([judge(moved, [0.0] * 3, 3), passes]) == INCONCLUSIVE
    assert overall([judge(moved, [0.5] * 3, 3), fails]) == FAIL
    assert overall([judge(moved, [0.5] * 3, 3), passes]) == PASS


def test_a_regime_names_why_a_setting_is_outside_it():
    regime = Regime("MLP 3x512", "[paper]", min_width={"mlp": 512, "resnet20ln": 32}, optimizer="sgd")
    assert regime.check("mlp", 512, "sgd") == "" and regime.check("mlp@fig2-lr0.1", None, "sgd") == ""
    assert "below the paper's 512" in regime.check("mlp", 128, "sgd")
    assert "not an architecture" in regime.check("vgg11", 4, "sgd")
    assert "sgd" in regime.check("mlp", 512, "adam")
    assert Regime("any", "[paper]").check("anything", 1, "adam") == ""


def test_a_published_figure_agrees_when_our_mean_lies_in_its_range():
    pub = Published("r = 0.80-0.94", "secondary", "l2_ratio", 0.80, 0.94)
    assert compare_published(pub, [0.85, 0.9, np.nan])["agrees"] is True
    got = compare_published(pub, [0.5, 0.6])
    assert got["agrees"] is False and got["n"] == 2 and got["mean"] == pytest.approx(0.55)
    assert compare_published(Published("no number", "paper"), [1.0])["agrees"] is None


def test_every_claim_states_its_regime_split_and_published_figures():
    for claim in CLAIMS.values():
        assert claim.regime.text and claim.regime.source
        assert claim.published and all(p.tag in ("paper", "code", "secondary") for p in claim.published)
        split_stats = [c.statistic for c in claim.criteria if c.statistic.endswith(("_train", "_test"))]
        assert all(st.endswith("_" + claim.split) for st in split_stats), (claim.id, split_stats)
        if split_stats:
            assert claim.split in ("train", "test") and claim.split_source
    headline = [c.id for c in CLAIMS.values() if c.headline]
    assert headline == ["ito2024-singular-values", "ito2024-l2-distance", "ito2024-sv-alignment", "ito2024-merge-wm-vs-ste"]
