"""`lmc-claims compare RUN_A RUN_B`: the table of changed verdicts and key figures, and its exit status."""

import copy
import json

import pytest

from lmc_claims.cli import main


def judgement(criterion: str, mean: float, verdict: str) -> dict:
    return {"criterion": criterion, "n": 3, "mean": mean, "std": 0.01, "lower": mean - 0.02, "upper": mean + 0.02,
            "verdict": verdict, "source": "ours"}


def record(claim: str, width: int, verdict: str, mean: float, **more) -> dict:
    js = [judgement("naive_barrier >= 0.3", 1.0, "pass"), judgement("wm_barrier <= 0.05", mean, verdict)]
    params = {"arch": "mlp", "dataset": "mnist5k", "width": width, **more}
    return {"nodeid": f"claims/test_x.py::test_x[mlp-mnist5k-w{width}]", "id": claim, "params": params, "verdict": verdict,
            "value": 1.0, "criterion": "; ".join(j["criterion"] for j in js), "n_seeds": 3, "judgements": js, "notes": [],
            "data_file": f"data/x-w{width}.nc"}


BASE = {"title": "lmc-claims verification report", "scale": "ci", "git_commit": "abc", "created": "2026-01-01T00:00:00+00:00",
        "claims": [record("ainsworth2023-wm-barrier", 128, "fail", 0.12), record("ainsworth2023-wm-barrier", 512, "pass", 0.01)]}


def write(tmp_path, name: str, report: dict):
    d = tmp_path / name
    d.mkdir()
    (d / "report.json").write_text(json.dumps(report))
    return d


def run(capsys, a, b) -> tuple[int, str, str]:
    rc = main(["compare", str(a), str(b)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_identical_runs_exit_zero_and_say_nothing_changed(tmp_path, capsys):
    rc, out, _ = run(capsys, write(tmp_path, "a", BASE), write(tmp_path, "b", BASE))
    assert rc == 0
    assert "0 verdicts changed, 0 key figures changed" in out and "0 regressions" in out
    assert "REGRESSION" not in out.split("\n\n")[1]


def test_a_pass_that_fails_in_b_is_a_regression_with_exit_one(tmp_path, capsys):
    b = copy.deepcopy(BASE)
    b["claims"][1] = record("ainsworth2023-wm-barrier", 512, "fail", 0.09)
    rc, out, _ = run(capsys, write(tmp_path, "a", BASE), write(tmp_path, "b", b))
    assert rc == 1
    row = next(line for line in out.splitlines() if "width=512" in line)
    assert "PASS -> FAIL" in row and "REGRESSION" in row and "wm_barrier" in row
    assert "0.01" in row and "0.09" in row and "+0.08" in row
    assert "1 regression (passed in A, fails in B)" in out


def test_a_crash_in_b_of_a_passing_claim_is_a_regression(tmp_path, capsys):
    b = copy.deepcopy(BASE)
    b["claims"][1] = {**b["claims"][1], "verdict": "error", "judgements": [], "message": "boom"}
    rc, _, _ = run(capsys, write(tmp_path, "a", BASE), write(tmp_path, "b", b))
    assert rc == 1


def test_improvements_and_changed_figures_are_shown_but_exit_zero(tmp_path, capsys):
    b = copy.deepcopy(BASE)
    b["claims"][0] = record("ainsworth2023-wm-barrier", 128, "pass", 0.03)  # fail -> pass
    b["claims"][1]["judgements"][1]["mean"] = 0.02  # same verdict, other figure
    rc, out, _ = run(capsys, write(tmp_path, "a", BASE), write(tmp_path, "b", b))
    assert rc == 0
    lines = {("128" if "width=128" in line else "512"): line for line in out.splitlines() if "width=" in line}
    assert "FAIL -> PASS" in lines["128"] and lines["128"].rstrip().endswith("verdict")
    assert lines["512"].rstrip().endswith("figure") and "+0.01" in lines["512"]
    assert "1 verdicts changed, 1 key figures changed" in out


def test_claim_tests_are_matched_by_claim_and_params_not_node_id(tmp_path, capsys):
    b = copy.deepcopy(BASE)
    for r in b["claims"]:
        r["nodeid"] = r["nodeid"].replace("test_x.py", "test_renamed.py")
    b["claims"].append(record("ainsworth2023-wm-barrier", 1024, "pass", 0.0))
    a = copy.deepcopy(BASE)
    a["claims"].append(record("ito2024-l2-distance", 128, "pass", 0.9))
    rc, out, _ = run(capsys, write(tmp_path, "a", a), write(tmp_path, "b", b))
    assert rc == 0  # a claim missing from B has not failed there
    assert "1 only in A, 1 only in B" in out
    assert next(line for line in out.splitlines() if "width=1024" in line).rstrip().endswith("only in B")
    assert next(line for line in out.splitlines() if "ito2024-l2-distance" in line).rstrip().endswith("only in A")


@pytest.mark.parametrize("make, message, fix", [
    (lambda d: None, "does not exist", "pytest -m claims"),
    (lambda d: d.mkdir(), "has no report.json", "pytest -m claims --claims-report-dir="),
    (lambda d: ((d / "data").mkdir(parents=True), (d / "data" / "t.nc").write_bytes(b"x")), "has no report.json",
     "lmc-claims report"),
    (lambda d: (d.mkdir(), (d / "report.json").write_text("{not json")), "not a readable lmc-claims report",
     "lmc-claims report"),
])
def test_missing_runs_get_a_clear_error_naming_the_fix(tmp_path, capsys, make, message, fix):
    good = write(tmp_path, "good", BASE)
    bad = tmp_path / "bad"
    make(bad)
    for a, b in ((bad, good), (good, bad)):
        rc, _, err = run(capsys, a, b)
        assert rc == 2
        assert message in err and fix in err and "How to fix" in err and "Traceback" not in err


def test_claims_whose_headline_verdict_changed_are_listed(tmp_path, capsys):
    b = copy.deepcopy(BASE)
    b["claims"][0] = record("ainsworth2023-wm-barrier", 128, "pass", 0.03)  # the claim now passes in every setting
    rc, out, _ = run(capsys, write(tmp_path, "a", BASE), write(tmp_path, "b", b))
    assert rc == 0
    assert "1 claim headline verdict changed:" in out and "  ainsworth2023-wm-barrier: FAIL -> PASS" in out
    # a failure beyond the paper's regime decides no headline verdict
    c = copy.deepcopy(BASE)
    c["claims"][0]["in_regime"] = False
    c["claims"][0]["regime_reason"] = "width 128 is below the paper's 512 for mlp"
    rc, out, _ = run(capsys, write(tmp_path, "a2", BASE), write(tmp_path, "c", c))
    assert "  ainsworth2023-wm-barrier: FAIL -> PASS" in out and "0 verdicts changed" in out


def test_a_pass_is_compared_on_its_criterion_closest_to_the_threshold(tmp_path, capsys):
    _, out, _ = run(capsys, write(tmp_path, "a", BASE), write(tmp_path, "b", BASE))
    row = next(line for line in out.splitlines() if "width=512" in line)
    assert "wm_barrier" in row and "naive_barrier" not in row  # 0.03 of 0.05 is closer than 0.98 of 0.3
