import os

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

from lmc_claims.catalogue import get_claim
from lmc_claims.judging import judge, overall
from lmc_claims.errors import LmcClaimsError
from lmc_claims.results import attach_verdict, provenance, read_netcdf, sanitize_attrs, write_netcdf

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=20)
attr_values = st.one_of(st.booleans(), st.integers(-2**31, 2**31 - 1), st.floats(allow_nan=False, allow_infinity=False),
                        text, st.dictionaries(text, st.integers(), max_size=3), st.none())


@given(values=st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=8), attrs=st.dictionaries(
    st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True), attr_values, max_size=5))
def test_netcdf_round_trip_keeps_values_coordinates_and_attributes(tmp_path_factory, values, attrs):
    path = tmp_path_factory.mktemp("nc") / "r.nc"
    ds = xr.Dataset({"l2_ratio": ("pair", np.array(values))}, coords={"pair": [f"{i}-{i+1}" for i in range(len(values))]},
                    attrs=attrs)
    write_netcdf(ds, path)
    back = read_netcdf(path)
    np.testing.assert_array_equal(back.l2_ratio.values, ds.l2_ratio.values)
    assert list(back.pair.values) == list(ds.pair.values)
    expected = sanitize_attrs(attrs)
    for k, v in expected.items():
        assert np.all(back.attrs[k] == v)


def test_claim_dataset_with_verdict_round_trips(tmp_path):
    claim = get_claim("ito2024-l2-distance")
    ds = xr.Dataset({c.statistic: ("pair", [0.9, 0.91, 0.92]) for c in claim.criteria}, coords={"pair": ["0-1", "2-3", "4-5"]})
    js = [judge(c, ds[c.statistic].values, 3) for c in claim.criteria]
    out = attach_verdict(ds, claim, js, overall(js), provenance("cpu", {"scale": "ci", "flag": True}, [0, 1]))
    path = write_netcdf(out, tmp_path / "claim.nc")
    back = read_netcdf(path)
    assert back.attrs["verdict"] == "pass"
    assert back.attrs["claim_id"] == claim.id
    assert list(back.criterion_text.values) == [c.text() for c in claim.criteria]
    assert back.criterion_verdict.attrs["flag_meanings"] == "pass fail inconclusive premise-not-met"
    for key in ("package_version", "git_commit", "torch_version", "device", "config", "seeds", "created"):
        assert key in back.attrs


def test_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "r.nc"
    write_netcdf(xr.Dataset({"x": ("i", [1.0, 2.0])}), path)
    before = path.read_bytes()

    def boom(self, *a, **k):
        with open(a[0], "wb") as f:
            f.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(RuntimeError):
        write_netcdf(xr.Dataset({"x": ("i", [3.0])}), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.nc"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_directory_is_a_clear_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(LmcClaimsError, match="--claims-report-dir"):
        write_netcdf(xr.Dataset({"x": ("i", [1.0])}), ro / "sub" / "r.nc")


def test_a_file_in_the_way_is_a_clear_error(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    with pytest.raises(LmcClaimsError, match="--claims-report-dir"):
        write_netcdf(xr.Dataset({"x": ("i", [1.0])}), blocker / "r.nc")
