"""The report files (report.json / .md / .html, figures/) rebuilt from netCDF files alone.

The claim files are synthetic but have the real schema: the measurement variables of
lmc_claims.measurements, judged against the catalogue's criteria and written with
results.attach_verdict / write_netcdf, as the `verify` fixture writes them.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from lmc_claims.judging import Claim, Criterion, Published, Regime, compare_published, judge, overall
from lmc_claims.cli import main
from lmc_claims.report import figures, format_table, plots, rebuild_report, summary_rows, write_report
from lmc_claims.report import kinds as figure_kinds
from lmc_claims.report.summary import (NEEDS_PAPER_SCALE, build_report, claims_summary, closeness, deciding_judgement,
                                       headline_verdict, key_figure, summary_cells)
from lmc_claims.results import attach_verdict, provenance, write_netcdf

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PAIRS = ["0-1", "2-3", "4-5"]
LAMS = np.linspace(0, 1, 9)


def make_claim(claim_id: str, *criteria: tuple[str, str, float], **more) -> Claim:
    return Claim(id=claim_id, paper=f"Paper of {claim_id}", section="§1", statement=f"The statement of {claim_id}.",
                 metric="a metric", criteria=tuple(Criterion(s, op, t, source="ours") for s, op, t in criteria), **more)


MLP_512 = Regime("MLP 3x512 on MNIST", "[paper] §3", min_width={"mlp": 512}, training="Adam, 10 epochs")
L2_PUBLISHED = (Published("r = 0.80-0.94 (Table 1)", "paper", "l2_ratio", 0.8, 0.94),
                Published("a long published statement with no number we measure, " * 4 + "(Figure 9)", "secondary"))


# The claims' criteria are fixed here, not taken from the catalogue, so that these tests follow
# the report's schema rather than the catalogue's current thresholds.
CLAIMS = {c.id: c for c in (
    make_claim("ainsworth2023-wm-barrier", ("naive_barrier", ">=", 0.3), ("wm_barrier", "<=", 0.05), regime=MLP_512,
               split="test", split_source="the paper's Figure 2 is on test loss"),
    make_claim("ito2024-l2-distance", ("l2_ratio", ">=", 0.7), ("barrier_reduction", ">=", 0.8), published=L2_PUBLISHED,
               headline=True),
    make_claim("ito2024-sv-alignment", ("top_gain_vs_naive", ">", 0), ("top_gain_vs_random", ">", 0), ("top_minus_tail_wm", ">", 0),
               headline=True),
    make_claim("ito2024-merge-wm-vs-ste", ("accuracy_gain_wm_over_ste", ">", 0), ("loss_gain_wm_over_ste", ">", 0),
               headline=True),
    make_claim("ito2024-singular-values", ("max_rel_sv_change", "<=", 1e-9), headline=True),
    make_claim("ainsworth2023-width", ("wm_barrier_slope", "<", 0)),
    make_claim("csiszarik2023-combinability", ("excess_removed", ">=", 0.8)),
)}


def write_claim(data_dir: Path, claim_id: str, ds: xr.Dataset, params: dict, name: str, **attrs) -> Path:
    claim = CLAIMS[claim_id]
    js = [judge(c, ds[c.statistic].values, claim.min_seeds) for c in claim.criteria]
    prov = provenance("cpu", {"scale": "ci", "params": params, **params}, list(range(6)))
    outside = claim.regime.check(params.get("arch", ""), params.get("width"), "adam")  # as session.verify judges it
    published = [compare_published(p, ds[p.statistic].values if p.statistic in ds else []) for p in claim.published]
    out = attach_verdict(ds, claim, js, overall(js), prov, regime_reason=outside, published=published)
    out.attrs.update(attrs)
    return write_netcdf(out, data_dir / f"{name}.nc")


def interpolation(rng, width: int, searches=("naive", "wm")) -> xr.Dataset:
    bump = 4 * LAMS * (1 - LAMS)
    height = {"naive": 1.5 * 128 / width, "wm": 0.02, "ste": 0.05}
    loss = np.array([[[0.1 + height[s] * bump + 0.01 * rng.random(len(LAMS)) for _ in ("train", "test")]
                      for s in searches] for _ in PAIRS])
    ds = xr.Dataset({"loss": (("pair", "search", "split", "lam"), loss),
                     "accuracy": (("pair", "search", "split", "lam"), 1 - loss / 3)},
                    coords={"pair": PAIRS, "search": list(searches), "split": ["train", "test"], "lam": LAMS})
    ds["loss_barrier"] = (ds.loss - ds.loss.isel(lam=0)).max("lam")
    ds["accuracy_barrier"] = (ds.accuracy.isel(lam=0) - ds.accuracy).max("lam")
    return ds


def barrier_claim(rng, width: int) -> xr.Dataset:
    ds = interpolation(rng, width)
    b = ds.loss_barrier.sel(split="test", drop=True)
    ds["naive_barrier"] = b.sel(search="naive", drop=True)
    ds["wm_barrier"] = b.sel(search="wm", drop=True)
    return ds


def l2_claim(rng) -> xr.Dataset:
    naive = 36 + rng.random(3)
    ds = xr.Dataset({"l2_naive": ("pair", naive), "l2_wm": ("pair", 0.9 * naive), "l2_random": ("pair", naive + 0.01)},
                    coords={"pair": PAIRS})
    ds["l2_ratio"] = ds.l2_wm / ds.l2_naive
    ds["barrier_reduction"] = ("pair", 0.95 + 0.01 * rng.random(3))
    return ds


def alignment_claim(rng) -> xr.Dataset:
    k = [0.02, 0.05, 0.1, 0.25, 0.5]
    gain = np.array([0.0, 0.0, 0.3])[None, :, None, None]  # only WM lifts the overlap above chance
    top = np.clip(np.array(k) + gain * (0.5 + rng.random((3, 3, 2, 5))), 0, 1)
    cos = rng.random((3, 3, 2, 16)) * np.array([0.05, 0.05, 0.6])[None, :, None, None]
    cos[:, :, 1, 10:] = np.nan  # a layer of lower rank, NaN-padded as measurements.ito2024.alignment stores it
    ds = xr.Dataset({"overlap_top": (("pair", "search", "layer", "k_fraction"), top),
                     "overlap_tail": (("pair", "search", "layer", "k_fraction"), np.broadcast_to(k, top.shape).copy()),
                     "rank_cosine": (("pair", "search", "layer", "rank"), cos)},
                    coords={"pair": PAIRS, "search": ["naive", "random", "wm"], "layer": ["layers.0.weight", "layers.1.weight"],
                            "k_fraction": k, "rank": np.arange(16)})
    at = lambda var, m: ds[var].sel(search=m, k_fraction=0.1, drop=True).mean("layer")
    ds["top_gain_vs_naive"] = at("overlap_top", "wm") - at("overlap_top", "naive")
    ds["top_gain_vs_random"] = at("overlap_top", "wm") - at("overlap_top", "random")
    ds["top_minus_tail_wm"] = at("overlap_top", "wm") - at("overlap_tail", "wm")
    return ds


def merge_claim(rng, n: int, wm_better: bool) -> xr.Dataset:
    acc = np.array([[0.3, 0.9, 0.85, 0.95]] * 3) - 0.02 * n + 0.005 * rng.random((3, 4))
    if not wm_better:
        acc[:, [1, 2]] = acc[:, [2, 1]]
    ds = xr.Dataset({"test_accuracy": (("model_set", "search"), acc), "test_loss": (("model_set", "search"), 2.2 - 2 * acc)},
                    coords={"model_set": ["0-1-2", "1-2-3", "2-3-4"], "search": ["naive", "wm", "ste", "endpoints"]})
    ds["accuracy_gain_wm_over_ste"] = ds.test_accuracy.sel(search="wm", drop=True) - ds.test_accuracy.sel(search="ste", drop=True)
    ds["loss_gain_wm_over_ste"] = ds.test_loss.sel(search="ste", drop=True) - ds.test_loss.sel(search="wm", drop=True)
    return ds


def sv_claim(rng) -> xr.Dataset:
    ds = xr.Dataset({"rel_sv_change": (("seed", "layer"), 1e-15 * (1 + rng.random((6, 2)))),
                     "top_vector_moved": (("seed", "layer"), rng.random((6, 2)))},
                    coords={"seed": np.arange(6), "layer": ["layers.0.weight", "layers.1.weight"]})
    ds["max_rel_sv_change"] = ds.rel_sv_change.max("layer")
    return ds


def width_claim(rng) -> xr.Dataset:
    widths = [1, 2, 4]
    barrier = np.array([1.0, 0.2])[None, :, None] / np.array(widths) + 0.01 * rng.random((3, 2, 3))
    ds = xr.Dataset({"barrier": (("pair", "search", "width"), barrier),
                     "dominant_share": (("pair", "width"), 0.5 - 0.1 * np.log2(widths) + 0.01 * rng.random((3, 3)))},
                    coords={"pair": PAIRS, "search": ["naive", "wm"], "width": widths})
    ds["wm_barrier_slope"] = ("pair", np.polyfit(np.log2(widths), barrier[:, 1].T, 1)[0])
    return ds


def combination_claim(rng) -> xr.Dataset:
    schemes = ["uniform", "bernoulli", "neuron", "layer"]
    loss = 0.3 + np.array([1.5, 0.1])[None, :, None, None] * rng.random((3, 2, 4, 8))
    ds = xr.Dataset({"combination_loss": (("pair", "search", "scheme", "sample"), loss),
                     "midpoint_loss": (("pair", "search"), loss.mean(axis=(2, 3))),
                     "endpoint_loss": (("pair", "endpoint"), 0.25 + 0.01 * rng.random((3, 2)))},
                    coords={"pair": PAIRS, "search": ["naive", "wm"], "scheme": schemes, "sample": np.arange(8),
                            "endpoint": ["A", "B"]})
    excess = ds.combination_loss.mean("sample") - ds.endpoint_loss.mean("endpoint")
    ds["excess_removed"] = (1 - excess.sel(search="wm") / excess.sel(search="naive")).min("scheme")
    return ds


def mlp(width: int, **more) -> dict:
    return {"arch": "mlp", "dataset": "mnist5k", "width": width, **more}


def write_run(report_dir: Path, seed: int = 0, merge_wm_better: bool = True) -> Path:
    """One synthetic run's data/*.nc: every claim, two widths for the barrier, two merge sizes."""
    rng = np.random.default_rng(seed)
    data = report_dir / "data"
    for w in (128, 512):  # the plugin's parameters: the claim and search repeat the claim id
        write_claim(data, "ainsworth2023-wm-barrier", barrier_claim(rng, w), mlp(w, claim="ainsworth2023-wm-barrier", search="wm"),
                    f"test_wm_removes_the_barrier_mlp-w{w}")
    write_claim(data, "ito2024-l2-distance", l2_claim(rng), mlp(128), "test_wm_barely_reduces_l2_distance_mlp-w128")
    write_claim(data, "ito2024-sv-alignment", alignment_claim(rng), mlp(128), "test_wm_aligns_mlp-w128")
    for n in (3, 4):
        write_claim(data, "ito2024-merge-wm-vs-ste", merge_claim(rng, n, merge_wm_better), mlp(128, n_models=n),
                    f"test_wm_beats_ste_when_merging_mlp-w128-N{n}")
    write_claim(data, "ito2024-singular-values", sv_claim(rng), mlp(128), "test_permutations_keep_singular_values_mlp-w128")
    write_claim(data, "ainsworth2023-width", width_claim(rng), {"arch": "resnet20", "dataset": "mnist5k"},
                "test_barrier_falls_with_width_resnet20-mnist5k")
    write_claim(data, "csiszarik2023-combinability", combination_claim(rng), mlp(128), "test_combinations_mlp-w128")
    return report_dir


EXPECTED_KINDS = {"interpolation", "barrier-vs-width", "l2-distance", "sv-alignment", "merged-models", "merge-vs-models",
                  "singular-values", "width-sweep", "combination-loss"}


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    """A report directory holding only data/*.nc, rebuilt by `lmc-claims report` in a fresh interpreter."""
    report_dir = write_run(tmp_path_factory.mktemp("run") / "reports")
    probe = ("import sys; from lmc_claims.cli import main; rc = main(['report', sys.argv[1]]); "
             "print('TORCH-IMPORTED' if 'torch' in sys.modules else 'NO-TORCH'); sys.exit(rc)")
    # The timeout only stops a hung child: this takes seconds, ten times as long on a loaded machine.
    proc = subprocess.run([sys.executable, "-c", probe, str(report_dir)], capture_output=True, text=True, timeout=600)
    return report_dir, proc


def all_figures(report: dict) -> list[dict]:
    return [f for r in report["claims"] for f in r.get("figures", [])] + \
           [f for fs in report["claim_figures"].values() for f in fs]


def test_report_is_rebuilt_from_netcdf_alone_without_torch(rebuilt):
    report_dir, proc = rebuilt
    assert proc.returncode == 0, proc.stderr
    assert "NO-TORCH" in proc.stdout and "rebuilt" in proc.stdout
    for name in ("report.json", "report.md", "report.html"):
        assert (report_dir / name).stat().st_size > 0
    report = json.loads((report_dir / "report.json").read_text())
    assert report["scale"] == "ci" and report["device"] == "cpu" and report["warnings"] == []
    assert len(report["claims"]) == 9
    for r in report["claims"]:
        ds = xr.load_dataset(report_dir / r["data_file"])
        for key in ("nodeid", "id", "paper", "section", "statement", "metric", "params", "verdict", "value", "criterion",
                    "n_seeds", "judgements", "notes", "data_file"):
            assert key in r, key
        assert r["id"] == ds.attrs["claim_id"] and r["verdict"] == ds.attrs["verdict"]
        assert r["value"] == pytest.approx(float(ds.criterion_mean[0]))
        assert r["criterion"] == "; ".join(map(str, ds.criterion_text.values))
        leading = [k for k in ("arch", "dataset", "width") if k in r["params"]]
        assert list(r["params"])[:len(leading)] == leading  # the plugin's order, not netCDF's sorted JSON
        assert r["n_seeds"] == int(ds.criterion_n.min())
        for j in r["judgements"]:
            assert len(j["values"]) == j["n"]
    merge = [r for r in report["claims"] if r["id"] == "ito2024-merge-wm-vs-ste"]
    assert [r["params"]["n_models"] for r in merge] == [3, 4] and all(r["verdict"] == "pass" for r in merge)


def test_every_expected_figure_is_a_real_png(rebuilt):
    report_dir, _ = rebuilt
    report = json.loads((report_dir / "report.json").read_text())
    figs = all_figures(report)
    assert {f["kind"] for f in figs} == EXPECTED_KINDS
    pngs = sorted((report_dir / "figures").glob("*.png"))
    assert sorted(report_dir / f["file"] for f in figs) == pngs
    from PIL import Image

    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000, png.name
        with Image.open(png) as im:
            im.verify()
            assert im.size[0] >= 800 and im.size[1] >= 300
    # across-width and across-N figures are drawn once per claim and setting
    assert [f["kind"] for f in report["claim_figures"]["ainsworth2023-wm-barrier"]] == ["barrier-vs-width"]
    assert [f["kind"] for f in report["claim_figures"]["ito2024-merge-wm-vs-ste"]] == ["merge-vs-models"]


def test_markdown_embeds_the_figures_by_relative_link(rebuilt):
    report_dir, _ = rebuilt
    md = (report_dir / "report.md").read_text()
    assert md.startswith("# lmc-claims verification report")
    assert "| claim | architecture | dataset | setting | verdict | key figure | criterion |" in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    report = json.loads((report_dir / "report.json").read_text())
    assert sorted(links) == sorted(f["file"] for f in all_figures(report))
    assert all(not Path(link).is_absolute() and (report_dir / link).is_file() for link in links)


def test_html_is_self_contained_with_summary_and_one_img_per_figure(rebuilt):
    report_dir, _ = rebuilt
    page = (report_dir / "report.html").read_text()
    report = json.loads((report_dir / "report.json").read_text())
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    assert 'id="summary-table"' in page
    assert page.count('<tr class="') >= len(report["claims"])
    imgs = re.findall(r"<img [^>]*src=\"([^\"]+)\"", page)
    assert len(imgs) == len(all_figures(report))
    assert all(src.startswith("data:image/png;base64,") for src in imgs)
    for r in report["claims"]:
        assert r["statement"] in page.replace("&#x27;", "'").replace("&quot;", '"')


def test_run_only_fields_survive_a_rebuild(tmp_path):
    report_dir = tmp_path / "reports"
    rng = np.random.default_rng(1)
    write_claim(report_dir / "data", "ito2024-singular-values", sv_claim(rng), mlp(64), "test_sv_mlp-w64")
    run = {"data_file": "data/test_sv_mlp-w64.nc", "nodeid": "claims/test_x.py::test_sv[mlp-mnist5k-w64]",
           "notes": ["a note only the run knows"], "duration_s": 1.5}
    crashed = {"nodeid": "claims/test_y.py::test_crash", "id": "test_crash", "verdict": "error", "message": "boom"}
    first = write_report(report_dir, [run, crashed], {"scale": "ci", "device": "cpu", "git_commit": "abc"})
    again = rebuild_report(report_dir)
    assert first["claims"] == again["claims"]  # the plugin and `lmc-claims report` write the same records
    sv = next(r for r in again["claims"] if r["id"] == "ito2024-singular-values")
    assert sv["nodeid"] == run["nodeid"] and sv["notes"] == run["notes"] and sv["duration_s"] == 1.5
    assert any(r["verdict"] == "error" and r["message"] == "boom" for r in again["claims"])


def test_without_a_previous_report_the_node_id_falls_back_to_the_file_name(tmp_path):
    report_dir = tmp_path / "reports"
    write_claim(report_dir / "data", "ito2024-singular-values", sv_claim(np.random.default_rng(2)), mlp(64), "test_sv_mlp-w64")
    report = rebuild_report(report_dir)
    assert report["claims"][0]["nodeid"] == "test_sv_mlp-w64" and report["claims"][0]["notes"] == []


def test_what_the_paper_reports_is_shown_beside_the_measurement(tmp_path):
    report_dir = tmp_path / "reports"
    write_claim(report_dir / "data", "ito2024-singular-values", sv_claim(np.random.default_rng(7)), mlp(64), "test_sv",
                paper_figure="Table 1: identical singular values")
    report = rebuild_report(report_dir)
    assert report["claims"][0]["paper_figure"] == "Table 1: identical singular values"
    assert "The paper reports:</strong> Table 1: identical singular values" in (report_dir / "report.html").read_text()
    assert "The paper reports: Table 1: identical singular values" in (report_dir / "report.md").read_text()


def test_records(*verdicts: tuple[str, bool | None]) -> list[dict]:
    """Synthetic records of one claim: (verdict, in_regime), None leaving the key out (an old record)."""
    out = []
    for i, (verdict, inside) in enumerate(verdicts):
        r = {"id": "c", "nodeid": f"t{i}", "params": {"width": i}, "verdict": verdict, "judgements": []}
        if inside is not None:
            r["in_regime"] = inside
            r["regime_reason"] = "" if inside else f"width {i} is below the paper's 512 for mlp"
        out.append(r)
    return out


test_records.__test__ = False  # a helper, not a test


@pytest.mark.parametrize("verdicts, expected", [
    ([("pass", True), ("pass", True)], "pass"),
    ([("pass", True), ("fail", False), ("error", False)], "pass"),  # beyond the regime decides nothing
    ([("pass", True), ("fail", True)], "fail"),
    ([("pass", True), ("error", True)], "fail"),  # a crash inside the regime is a failure
    ([("inconclusive", True), ("fail", True)], "fail"),
    ([("pass", True), ("inconclusive", True), ("pass", False)], "inconclusive"),
    ([("pass", False), ("pass", False)], NEEDS_PAPER_SCALE),  # never a verdict from the wrong regime
    ([("fail", False)], NEEDS_PAPER_SCALE),
    ([("pass", None), ("pass", None)], "pass"),  # old records count as inside the regime
    ([("inconclusive", None), ("fail", False)], "inconclusive"),
])
def test_a_claims_headline_verdict_is_decided_inside_its_regime_only(verdicts, expected):
    assert headline_verdict(test_records(*verdicts)) == expected


def test_a_claim_with_no_test_inside_its_regime_needs_the_paper_scale():
    report = build_report(test_records(("pass", False), ("fail", False)), {"scale": "smoke"})
    [claim] = report["claims_summary"]
    assert claim["headline_verdict"] == NEEDS_PAPER_SCALE and claim["verdict_text"] == "needs the paper scale"
    assert (claim["n_in_regime"], claim["n_beyond"]) == (0, 2) and claim["key_figure"]["in_regime"] is False
    assert report["headline_counts"] == {NEEDS_PAPER_SCALE: 1}


def judgement(criterion: str, verdict: str, mean: float, std: float, lower: float, upper: float) -> dict:
    return {"criterion": criterion, "n": 3, "mean": mean, "std": std, "lower": lower, "upper": upper, "verdict": verdict,
            "source": "ours"}


def test_a_pass_shows_the_criterion_closest_to_its_threshold():
    wide = judgement("naive_barrier >= 0.3", "pass", 1.2, 0.1, 1.1, 1.3)  # (1.1 - 0.3) / 0.3 = 2.7
    tight = judgement("wm_barrier <= 0.05", "pass", 0.03, 0.005, 0.025, 0.04)  # (0.05 - 0.04) / 0.05 = 0.2
    assert closeness(wide) == pytest.approx(0.8 / 0.3) and closeness(tight) == pytest.approx(0.2)
    record = {"id": "c", "params": {}, "verdict": "pass", "judgements": [wide, tight]}
    assert deciding_judgement(record) is tight
    assert key_figure(record) == "wm_barrier = 0.03 ± 0.005 (n=3) vs <= 0.05"
    # A threshold of 0 is measured in standard deviations: 0.5 / 0.25 = 2 beats 0.9 / 0.3 = 3.
    gain = judgement("gain > 0", "pass", 0.8, 0.25, 0.5, 1.1)
    other = judgement("other > 0", "pass", 1.0, 0.3, 0.9, 1.1)
    assert deciding_judgement({"judgements": [other, gain]}) is gain
    # An exact criterion's bounds are its seeds' extremes: the worst seed (upper for <=) is the one held against it.
    exact = judgement("max_rel_sv_change <= 1e-09", "pass", 1e-10, 1e-10, 1e-16, 5e-10)
    assert closeness(exact) == pytest.approx(0.5)
    assert deciding_judgement({"judgements": [wide, exact]}) is exact


def test_a_fail_or_inconclusive_shows_the_first_criterion_that_did_not_pass():
    tight = judgement("wm_barrier <= 0.05", "pass", 0.049, 0.001, 0.048, 0.0499)
    failing = judgement("naive_barrier >= 0.3", "fail", 0.1, 0.1, 0.0, 0.2)
    unsure = judgement("l2_ratio >= 0.7", "inconclusive", 0.7, 0.1, 0.6, 0.8)
    assert deciding_judgement({"judgements": [tight, failing, unsure]}) is failing
    assert deciding_judgement({"judgements": [tight, unsure, failing]}) is unsure


def test_claims_lead_the_summary_with_the_headline_claims_first(rebuilt):
    report_dir, _ = rebuilt
    report = json.loads((report_dir / "report.json").read_text())
    order = [c["id"] for c in report["claims_summary"]]
    assert order[:4] == ["ito2024-singular-values", "ito2024-l2-distance", "ito2024-sv-alignment", "ito2024-merge-wm-vs-ste"]
    from lmc_claims.catalogue import CLAIMS as CATALOGUE

    rest = order[4:]
    assert rest == sorted(rest, key=list(CATALOGUE).index) and set(rest) == {
        "ainsworth2023-wm-barrier", "ainsworth2023-width", "csiszarik2023-combinability"}
    wm = next(c for c in report["claims_summary"] if c["id"] == "ainsworth2023-wm-barrier")
    assert (wm["n_in_regime"], wm["n_beyond"]) == (1, 1)
    assert wm["headline_verdict"] == next(r["verdict"] for r in report["claims"] if r["params"].get("width") == 512)
    assert wm["regime"]["text"] == "MLP 3x512 on MNIST" and wm["split"] == "test"
    assert wm["key_figure"]["setting"] == "mlp · mnist5k · width=512"
    md = (report_dir / "report.md").read_text()
    claim_table = md.index("| claim | verdict | tests in / beyond regime | the paper reports | ours | agrees | key figure |")
    assert claim_table < md.index("### Claim tests inside the paper's regime") < md.index("### Claim tests beyond the paper's regime")
    positions = [md.index(f"| {cid} |", claim_table) for cid in order]
    assert positions == sorted(positions)


def test_the_setting_column_shows_only_what_tells_the_settings_apart(rebuilt):
    report_dir, _ = rebuilt
    report = json.loads((report_dir / "report.json").read_text())
    cells = {(r["id"], r["params"].get("width"), r["params"].get("n_models")): summary_cells(r) for r in report["claims"]}
    assert cells[("ainsworth2023-wm-barrier", 512, None)][1:4] == ("mlp", "mnist5k", "width=512")  # no claim=, search=
    assert cells[("ito2024-merge-wm-vs-ste", 128, 3)][3] == "width=128, N=3"
    md = (report_dir / "report.md").read_text()
    summary = md[:md.index("\n## ", md.index("## Summary") + 1)]
    assert "claim=ainsworth2023" not in summary and "search=wm" not in summary


def test_published_figures_are_shown_beside_ours_in_json_markdown_and_html(rebuilt):
    report_dir, _ = rebuilt
    report = json.loads((report_dir / "report.json").read_text())
    l2 = next(c for c in report["claims_summary"] if c["id"] == "ito2024-l2-distance")
    first, second = l2["published"]
    record = next(r for r in report["claims"] if r["id"] == "ito2024-l2-distance")
    ours = record["judgements"][0]
    assert first["text"] == "r = 0.80-0.94 (Table 1)" and first["tag"] == "paper" and first["agrees"] is True
    assert first["mean"] == pytest.approx(ours["mean"]) and first["n"] == 3
    assert first["ours"] == f"l2_ratio = {ours['mean']:.4g} ± {ours['std']:.2g} (n=3)"
    assert second["agrees"] is None and second["ours"] == "not measured"
    md = (report_dir / "report.md").read_text()
    assert f"| ito2024-l2-distance | PASS | 1 / 0 | r = 0.80-0.94 (Table 1) [paper] | {first['ours']} | yes |" in md
    assert "[secondary] | not measured | — |" in md
    page = (report_dir / "report.html").read_text().replace("&#x27;", "'")
    assert "r = 0.80-0.94 (Table 1) <span class=\"source\">[paper]</span>" in page
    assert f'<td class="num">{first["ours"]}</td><td>yes</td>' in page
    # a claim that states no published figure still has its row
    assert "| csiszarik2023-combinability |" in md


def test_claim_tests_beyond_the_regime_have_their_own_part_of_the_summary(rebuilt):
    report_dir, _ = rebuilt
    md = (report_dir / "report.md").read_text()
    beyond = md[md.index("### Claim tests beyond the paper's regime"):md.index("\n## ", md.index("## Summary") + 1)]
    inside = md[md.index("### Claim tests inside the paper's regime"):md.index("### Claim tests beyond the paper's regime")]
    assert "| ainsworth2023-wm-barrier | mlp | mnist5k | width=128 |" in beyond
    assert "width 128 is below the paper's 512 for mlp" in beyond
    assert "width=128" not in inside.split("ainsworth2023-wm-barrier")[1].split("\n")[0]
    assert "| ainsworth2023-wm-barrier | mlp | mnist5k | width=512 |" in inside
    assert "(beyond the paper's regime: width 128 is below the paper's 512 for mlp)" in md
    page = (report_dir / "report.html").read_text().replace("&#x27;", "'")
    assert 'id="beyond-table"' in page and "Claim tests beyond the paper's regime" in page
    assert "width 128 is below the paper's 512 for mlp" in page
    report = json.loads((report_dir / "report.json").read_text())
    lines = format_table(summary_rows(report), ("claim", "parameters", "verdict", "key figure vs criterion"))
    text = "\n".join(lines)
    assert lines[0].startswith("claims") and lines[1].split()[:2] == ["claim", "verdict"]
    assert lines[3].startswith("ito2024-singular-values")
    assert text.index("claim tests inside the paper's regime") < text.index("claim tests beyond the paper's regime")
    beyond_rows = text[text.index("claim tests beyond the paper's regime"):]
    assert "width 128 is below the paper's 512 for mlp" in beyond_rows and "claim=" not in text


def test_records_without_regime_published_or_split_still_render(tmp_path):
    report_dir = tmp_path / "reports"
    path = write_claim(report_dir / "data", "ainsworth2023-wm-barrier", barrier_claim(np.random.default_rng(8), 128),
                       mlp(128), "test_old_record")
    ds = xr.load_dataset(path)
    del ds.attrs["claim_context"]  # written before claims declared a regime
    path.unlink()
    write_netcdf(ds, path)
    report = rebuild_report(report_dir)
    [record] = report["claims"]
    assert not {"in_regime", "published", "split", "headline"} & set(record)
    [claim] = report["claims_summary"]
    assert claim["headline_verdict"] == record["verdict"] and (claim["n_in_regime"], claim["n_beyond"]) == (1, 0)
    assert claim["published"] == [] and claim["split"] == "" and claim["headline"] is False
    md = (report_dir / "report.md").read_text()
    assert "None: every claim test ran inside its paper's regime." in md
    assert f"| ainsworth2023-wm-barrier | {record['verdict'].upper()} | 1 / 0 | — | — | — |" in md
    # a report.json written before claims_summary existed still prints its summary
    old = {k: v for k, v in report.items() if k not in ("claims_summary", "headline_counts")}
    assert any("ainsworth2023-wm-barrier" in line for line in format_table(summary_rows(old), ("a", "b", "c", "d")))
    assert claims_summary(old) == report["claims_summary"]


def test_figures_of_claim_tests_no_longer_reported_are_removed(tmp_path):
    report_dir = tmp_path / "reports"
    write_claim(report_dir / "data", "ito2024-singular-values", sv_claim(np.random.default_rng(3)), mlp(64), "test_sv")
    stale = report_dir / "figures" / "gone.singular-values.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(PNG_MAGIC)
    rebuild_report(report_dir)
    assert not stale.exists() and (report_dir / "figures" / "test_sv.singular-values.png").is_file()


def test_a_new_figure_kind_is_chosen_by_the_variables_a_dataset_holds(tmp_path, monkeypatch):
    monkeypatch.setattr(figure_kinds, "_KINDS", {k.name: k for k in figures.kinds()})  # built-ins first
    drawn = []

    @figures.figure("corner-loss", needs={"corner_loss": ("corner",)}, caption="loss at every corner of the hypercube")
    def corner_loss(fig, ds):
        drawn.append(ds.attrs["claim_id"])
        fig.subplots().hist(ds.corner_loss.values)

    report_dir = tmp_path / "reports"
    ds = sv_claim(np.random.default_rng(4))
    ds["corner_loss"] = ("corner", np.linspace(0, 1, 8))
    write_claim(report_dir / "data", "ito2024-singular-values", ds, mlp(64), "test_with_corners")
    write_claim(report_dir / "data", "ito2024-singular-values", sv_claim(np.random.default_rng(5)), mlp(32), "test_without")
    report = rebuild_report(report_dir)
    kinds = {r["data_file"]: [f["kind"] for f in r["figures"]] for r in report["claims"]}
    assert kinds == {"data/test_with_corners.nc": ["singular-values", "corner-loss"],
                     "data/test_without.nc": ["singular-values"]}
    assert drawn == ["ito2024-singular-values"]


def test_a_figure_that_cannot_be_drawn_is_a_warning_not_a_lost_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(figure_kinds, "_KINDS", {k.name: k for k in figures.kinds()})  # built-ins first

    @figures.figure("broken", needs={"rel_sv_change": ("seed",)}, caption="never drawn")
    def broken(fig, ds):
        raise ValueError("no way to draw this")

    report_dir = tmp_path / "reports"
    write_claim(report_dir / "data", "ito2024-singular-values", sv_claim(np.random.default_rng(6)), mlp(64), "test_sv")
    assert main(["report", str(report_dir)]) == 0
    report = json.loads((report_dir / "report.json").read_text())
    assert any("broken" in w and "no way to draw this" in w for w in report["warnings"])
    assert "no way to draw this" in capsys.readouterr().err
    assert "Warning: figure broken" in (report_dir / "report.md").read_text()


def sv_items(n: int) -> list[tuple[dict, xr.Dataset]]:
    rng = np.random.default_rng(9)
    return [({"id": "ito2024-singular-values", "params": mlp(16 * (i + 1)), "data_file": f"data/test_sv_{i}.nc"}, sv_claim(rng))
            for i in range(n)]


@pytest.fixture
def idle_machine(monkeypatch):
    """As if no other work ran: the figures are drawn by one process per CPU."""
    monkeypatch.setattr(figures, "_load", lambda: 0.0)


def test_figures_drawn_in_parallel_are_the_serial_figures_in_the_same_order(monkeypatch, idle_machine):
    started = []

    class Counting(figures.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            started.append(kwargs["max_workers"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(figures, "ProcessPoolExecutor", Counting)
    items = sv_items(5)
    parallel = figures.render_figures(items)
    monkeypatch.setattr(figures, "MIN_PARALLEL", 10**9)
    serial = figures.render_figures(items)
    drawn = lambda fs: [(f.file, f.title, f.png) for f in fs.all()]
    assert len(serial.all()) == 5 and drawn(parallel) == drawn(serial)
    assert [f.file for f in parallel.all()] == [f"figures/test_sv_{i}.singular-values.png" for i in range(5)]
    if figures.worker_count(5) >= 2:  # this process draws too: one worker fewer
        assert started == [figures.worker_count(5) - 1] and started[0] < os.cpu_count()
    else:
        assert started == []  # one CPU: no pool


def test_a_busy_machine_draws_the_figures_in_this_process(monkeypatch):
    monkeypatch.setattr(figures, "_load", lambda: 0.0)
    assert figures.worker_count(10**6) == min(os.cpu_count(), len(os.sched_getaffinity(0)))  # one per CPU
    assert figures.worker_count(3) <= 3
    monkeypatch.setattr(figures, "_load", lambda: 1.0 + 2 * os.cpu_count())
    assert figures.worker_count(10**6) == 1  # every CPU already busy: no workers to start


def test_the_load_is_what_runs_now_not_the_last_minute_of_this_run(monkeypatch, tmp_path):
    """At the end of a claims run the one-minute load average still counts the run's own work; the
    processes running now (Linux) decide when they are fewer, and never more than the average."""
    import builtins

    real_open = builtins.open
    fake = tmp_path / "loadavg"
    fake.write_text("1.90 1.70 1.60 1/120 4242\n")
    monkeypatch.setattr(figures.os, "getloadavg", lambda: (1.9, 1.7, 1.6))
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: real_open(fake if path == "/proc/loadavg" else path, *a, **k))
    assert figures._load() == 1.0  # only this process runs: the idle CPUs draw
    fake.write_text("0.20 0.30 0.40 3/120 4242\n")
    monkeypatch.setattr(figures.os, "getloadavg", lambda: (0.2, 0.3, 0.4))
    assert figures._load() == pytest.approx(0.2)  # a busy instant on a quiet minute starts no extra work
    fake.write_text("garbled\n")
    monkeypatch.setattr(figures.os, "getloadavg", lambda: (1.9, 1.7, 1.6))
    assert figures._load() == pytest.approx(1.9)  # unreadable: the average


def test_a_figure_a_worker_cannot_draw_is_a_warning_too(monkeypatch, idle_machine):
    monkeypatch.setattr(figure_kinds, "_KINDS", {k.name: k for k in figures.kinds()})
    # a module-level drawing function (so it travels to the workers) given a dataset it cannot draw
    figure_kinds._KINDS["not-drawable"] = figure_kinds.FigureKind(
        "not-drawable", {"rel_sv_change": ("seed",)}, plots.l2_distance, "never drawn")
    out = figures.render_figures(sv_items(4))
    assert [f.kind for f in out.all()] == ["singular-values"] * 4
    assert len(out.warnings) == 4 and all("figure not-drawable for ito2024-singular-values" in w for w in out.warnings)


def test_figures_are_drawn_here_when_no_worker_pool_can_start(monkeypatch, idle_machine):
    def refuse(*args, **kwargs):
        raise OSError("no semaphores here")

    monkeypatch.setattr(figures, "ProcessPoolExecutor", refuse)
    out = figures.render_figures(sv_items(4))
    assert len(out.all()) == 4 and out.warnings == []


def test_workers_do_not_run_an_unguarded_calling_script_again(tmp_path):
    report_dir = tmp_path / "reports"
    rng = np.random.default_rng(10)
    for w in (16, 32, 64, 128):
        write_claim(report_dir / "data", "ito2024-singular-values", sv_claim(rng), mlp(w), f"test_sv_mlp-w{w}")
    script = tmp_path / "rebuild.py"  # no `if __name__ == "__main__":` guard
    script.write_text("import sys\nfrom lmc_claims.report import figures, rebuild_report\nprint('SCRIPT-RAN', flush=True)\n"
                      "figures._load = lambda: 0.0  # as if the machine were idle: workers draw\n"
                      "report = rebuild_report(sys.argv[1])\nprint('FIGURES', sum(len(r['figures']) for r in report['claims']))\n")
    out = subprocess.run([sys.executable, str(script), str(report_dir)], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("SCRIPT-RAN") == 1 and "FIGURES 4" in out.stdout


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "does not exist"),
    (lambda d: d.mkdir(), "has no data/*.nc files"),
    (lambda d: ((d / "data").mkdir(parents=True), (d / "data" / "bad.nc").write_text("not netcdf")), "bad.nc cannot be read"),
    (lambda d: ((d / "data").mkdir(parents=True), xr.Dataset({"x": ("i", [1.0])}).to_netcdf(d / "data" / "other.nc")),
     "not a claim-test file"),
])
def test_report_command_errors_say_how_to_fix_them(tmp_path, capsys, setup, message):
    report_dir = tmp_path / "reports"
    setup(report_dir)
    assert main(["report", str(report_dir)]) == 2
    err = capsys.readouterr().err
    assert message in err and "How to fix" in err and "Traceback" not in err


def test_plugin_import_stays_cheap():
    code = "import sys, lmc_claims.plugin; print(sorted(m for m in ('matplotlib', 'torch', 'xarray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)

WINDOW = 1400  # the report must fit a window this wide, tables and all

# Injected into a copy of the page only: report.html itself has no scripts.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || (e.target && e.target.outerHTML.slice(0, 80)))), true);
window.addEventListener('load', () => {
  const root = document.documentElement, edge = root.clientWidth + 0.5;
  const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '');
  const pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify({
    images: [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
    scroll_width: root.scrollWidth, client_width: root.clientWidth, inner_width: window.innerWidth,
    overflow: root.scrollWidth - root.clientWidth,
    past_the_edge: [...document.body.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > edge).map(name).slice(0, 10),
    cut_cells: [...document.querySelectorAll('td, th')].filter(c => c.scrollWidth > c.clientWidth + 1)
      .map(c => c.textContent.slice(0, 60)).slice(0, 10),
    broken_words: [...document.querySelectorAll('th, td.verdict')].filter(c => !/\\s/.test(c.textContent.trim())).filter(c => {
      const r = document.createRange(); r.selectNodeContents(c);
      return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size > 1; }).map(c => c.textContent),
    wide_tables: [...document.querySelectorAll('table')].filter(t => t.scrollWidth > t.parentElement.clientWidth + 1).map(name),
    rows: document.querySelectorAll('table.settings tbody tr').length,
    claim_rows: document.querySelectorAll('#claims-table tbody tr:not(.more)').length,
    errors: window.__errors});
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install chromium)")
def test_report_renders_in_headless_chromium_and_fits_1400_pixels(rebuilt, tmp_path):
    report_dir, _ = rebuilt
    report = json.loads((report_dir / "report.json").read_text())
    probe = tmp_path / "probe.html"
    probe.write_text((report_dir / "report.html").read_text().replace("<head>", "<head>" + PROBE, 1))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", f"--window-size={WINDOW},3000"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=90)
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="probe">([^<]*)</pre>', dom.stdout)
    assert found, "the page did not finish loading: " + dom.stdout[-1000:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["errors"] == []
    assert result["inner_width"] == WINDOW
    assert result["scroll_width"] <= WINDOW and result["overflow"] <= 0, result  # no horizontal scrolling at 1400 px
    assert result["past_the_edge"] == [] and result["wide_tables"] == [], result
    assert result["cut_cells"] == [], result  # every cell's text wraps inside its column
    assert result["broken_words"] == [], result  # and verdicts and headers are wide enough not to break inside a word
    assert result["rows"] == len(report["claims"])  # inside and beyond the regime together
    assert result["claim_rows"] == len(report["claims_summary"])
    assert len(result["images"]) == len(all_figures(report))
    assert all(complete and w >= 800 and h >= 300 for complete, w, h in result["images"])

    shot = tmp_path / "page.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", (report_dir / "report.html").as_uri()],
                   capture_output=True, text=True, timeout=90)
    assert shot.read_bytes()[:8] == PNG_MAGIC and shot.stat().st_size > 50_000
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size[0] == WINDOW
