"""Verdicts that survive a fresh sample: the sequential rule keeps its error rate over all its looks,
a premise that fails gives "premise not met" (never FAIL), a criterion corrected after results were
seen says so, and --claims-seeds changes every model seed and nothing else."""

from __future__ import annotations

import dataclasses
import tempfile

import numpy as np
import pytest
import xarray as xr

from lmc_claims.catalogue import CLAIMS, get_claim
from lmc_claims.judging import (ALPHA, FAIL, INCONCLUSIVE, PASS, PREMISE_NOT_MET, Claim, Criterion, alpha_per_look, judge,
                                overall)
from lmc_claims.scales import SCALES
from lmc_claims.verify import sequential_judgements

LOOKS = (3, 6, 10)


def run_sequentially(draw, threshold: float, looks=LOOKS) -> tuple[str, int]:
    """The rule `verify` applies, on one stream of samples: judge at each look, stop when decided."""
    claim = Claim("sim", "", "", "", "", (Criterion("x", ">=", threshold, source="test"),))
    scale = dataclasses.replace(SCALES["ci"], looks_in_regime=looks)
    values = draw(max(looks))
    measure = lambda pairs: xr.Dataset({"x": ("pair", values[:len(pairs)])})
    _, judgements, verdict, look, _, _ = sequential_judgements(claim, measure, scale, in_regime=True)
    return verdict, look


def test_the_sequential_rule_keeps_its_error_rate_at_the_boundary():
    """Under the null (true mean exactly at the threshold; the t statistic does not depend on the
    spread), PASS and FAIL are each errors; over all three looks each happens at most ALPHA of the
    time (Bonferroni over the looks)."""
    rng = np.random.default_rng(0)
    runs = [run_sequentially(lambda n: rng.normal(0.0, 1.0, n), 0.0)[0] for _ in range(4000)]
    for wrong in (PASS, FAIL):
        rate = runs.count(wrong) / len(runs)
        # 4,000 draws: the binomial standard error at 0.05 is 0.0034; 3 of them above ALPHA would be a fault.
        assert rate <= ALPHA + 3 * 0.0035, (wrong, rate)


def test_peeking_at_the_single_level_would_not_keep_it():
    """Why the level is split: looking three times at 5% each passes a true null more often."""
    rng = np.random.default_rng(1)
    wrong = 0
    for _ in range(4000):
        v = rng.normal(0.0, 1.0, 10)
        wrong += any(judge(Criterion("x", ">=", 0.0, source="t"), v[:n], 3, ALPHA).verdict == PASS for n in LOOKS)
    assert wrong / 4000 > ALPHA + 0.01


def test_an_effect_is_found_and_an_undecided_test_takes_more_samples():
    rng = np.random.default_rng(2)
    runs = [run_sequentially(lambda n: rng.normal(1.0, 1.0, n), 0.0) for _ in range(1000)]
    verdicts = [v for v, _ in runs]
    assert verdicts.count(PASS) / len(runs) > 0.7 and verdicts.count(FAIL) == 0
    looks = {k for _, k in runs}
    assert looks == {1, 2, 3}  # decided at every look, some only at the last
    # A large effect is decided at the first look; a test never looks again once decided.
    assert run_sequentially(lambda n: np.full(n, 5.0) + np.arange(n) * 1e-3, 0.0) == (PASS, 1)


def test_each_look_uses_the_split_level():
    assert alpha_per_look(3) == pytest.approx(ALPHA / 3) and alpha_per_look(1) == ALPHA
    v = np.array([0.9, 1.1, 1.0, 0.95])
    strict, single = (judge(Criterion("x", ">", 0.99, source="t"), v, 3, a) for a in (ALPHA / 3, ALPHA))
    assert strict.lower < single.lower and strict.alpha == ALPHA / 3
    assert strict.low95 == pytest.approx(single.low95)  # the reported 95% interval does not depend on the look


def premise_claim() -> Claim:
    return Claim("p", "", "", "", "", (Criterion("connected", "<=", 0.05, source="t", premise=True),
                                       Criterion("effect", ">=", 0.8, source="t")))


def test_a_premise_that_fails_gives_premise_not_met_never_fail():
    claim = premise_claim()
    far = [judge(c, v, 3) for c, v in zip(claim.criteria, ([1.4, 1.5, 1.45], [-0.1, 0.0, 0.05]))]
    assert far[1].verdict == FAIL and overall(far) == PREMISE_NOT_MET
    held = [judge(c, v, 3) for c, v in zip(claim.criteria, ([0.0, 0.01, 0.0], [0.9, 0.95, 0.92]))]
    assert overall(held) == PASS
    undecided = [judge(c, v, 3) for c, v in zip(claim.criteria, ([0.0, 0.2, 0.0], [0.9, 0.95, 0.92]))]
    assert overall(undecided) == INCONCLUSIVE  # the premise is not yet known: look again


def test_a_premise_not_met_decides_no_headline():
    from lmc_claims.report.summary import PREMISE_NOT_MET as SHOWN, deciding_test, headline_verdict, verdict_label

    tests = [{"verdict": PREMISE_NOT_MET, "in_regime": True}, {"verdict": PASS, "in_regime": True}]
    assert headline_verdict(tests) == PASS and deciding_test(tests, PASS) is tests[1]
    assert headline_verdict(tests[:1]) == SHOWN and verdict_label(SHOWN) == "premise not met"


def test_csiszarik_claims_about_aligned_models_declare_their_premise():
    for cid, statistic in (("csiszarik2023-combinability", "premise_wm_barrier_test"),
                           ("csiszarik2023-robustness", "premise_wm_barrier_test"),
                           ("csiszarik2023-transitivity", "premise_rebasin_barrier_train")):
        premises = [c for c in get_claim(cid).criteria if c.premise]
        assert [(c.statistic, c.op, c.threshold) for c in premises] == [(statistic, "<=", 0.05)]
        assert "ainsworth2023-wm-barrier" in premises[0].source


def test_a_corrected_criterion_records_its_change_and_the_report_shows_it(tmp_path):
    claim = get_claim("ito2024-ste-alignment")
    fixed = [c for c in claim.criteria if c.corrected]
    assert [c.text() for c in fixed] == ["ste_kept_alignment_gamma03 <= 0.5"]
    assert fixed[0].corrected.startswith("2026-12-07") and "r_wm_minus_ste_gamma03 > 0" in fixed[0].corrected
    # Every other criterion of the catalogue was fixed before measuring: none claims a correction it lacks.
    corrected = sorted(c.statistic for cl in CLAIMS.values() for c in cl.criteria if c.corrected)
    assert corrected == ["barrier_transitive_train", "ste_kept_alignment_gamma03"]

    from lmc_claims.report import write_report
    from lmc_claims.results import attach_verdict, write_netcdf

    values = {c.statistic: [0.2, 0.25, 0.3] for c in claim.criteria}
    ds = xr.Dataset({k: ("pair", np.array(v)) for k, v in values.items()})
    judgements = [judge(c, ds[c.statistic].values, 3) for c in claim.criteria]
    prov = {"config": {"params": {"arch": "mlp", "dataset": "mnist5k", "width": 512}}, "seeds": [0, 1]}
    ds = attach_verdict(ds, claim, judgements, overall(judgements), prov)
    write_netcdf(ds, tmp_path / "data" / "t.nc")
    write_report(tmp_path, [{"nodeid": "t", "id": claim.id, "data_file": "data/t.nc", "verdict": overall(judgements)}],
                 {"scale": "ci"})
    md, html = (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()
    assert "Corrected 2026-12-07" in md and "corrected 2026-12-07" in html


def plan_jobs(start: int):
    import torch

    from lmc_claims.lab import Lab
    from lmc_claims.plan import for_claims
    from lmc_claims.zoo import Zoo

    scale = dataclasses.replace(SCALES["smoke"], seed_start=start)
    lab = Lab(scale, torch.device("cpu"), Zoo(tempfile.mkdtemp()))
    return for_claims(scale).jobs(lab)


def test_claims_seeds_changes_every_model_seed_and_nothing_else():
    from lmc_claims.build.jobs import MergeJob, SearchJob, TrainJob

    default, fresh = plan_jobs(0), plan_jobs(1000)
    assert len(default) == len(fresh)
    for a, b in zip(default, fresh):
        assert type(a) is type(b)
        models = (a,) if isinstance(a, TrainJob) else (a.a, a.b) if isinstance(a, SearchJob) else a.models
        others = (b,) if isinstance(b, TrainJob) else (b.a, b.b) if isinstance(b, SearchJob) else b.models
        for m, o in zip(models, others):
            assert o.config.seed == m.config.seed + 1000
            assert dataclasses.replace(o.config, seed=m.config.seed) == m.config and o.data == m.data
        if isinstance(a, SearchJob):
            assert a.method == b.method and a.setting == b.setting
            if a.ste is not None:  # the search's own seed derives from the models' seeds, its recipe is the same
                assert dataclasses.replace(b.ste, seed=a.ste.seed) == a.ste
        if isinstance(a, MergeJob):
            assert a.setting == b.setting
