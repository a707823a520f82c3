"""Input validation and harmonisation."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pipeline.errors import InputDataError
from pipeline.io import derive_bounds, find_lat_lon, validate_dataset
from tests.helpers.sample_grids import make_grid_dataset


def test_clean_dataset_passes_and_gets_bounds(grid_dataset):
    res = validate_dataset(grid_dataset, source="tiny.nc")
    assert res.ok, res.problems
    ds = res.dataset
    assert ds["lat"].attrs["bounds"] == "lat_bnds" and ds["lon"].attrs["bounds"] == "lon_bnds"
    np.testing.assert_allclose(ds["lat_bnds"].values[:, 1] - ds["lat_bnds"].values[:, 0], 1.0)
    assert {r["variable"] for r in res.summary} == {"lai", "tas"}
    lai = next(r for r in res.summary if r["variable"] == "lai")
    assert float(lai["nan_percent"]) == pytest.approx(100 / 48, abs=0.1)


def test_harmonises_descending_lat_and_0_360_lon():
    ref = make_grid_dataset()
    messy = ref.assign_coords(lon=("lon", np.mod(ref["lon"].values, 360.0), ref["lon"].attrs))
    messy = messy.sortby("lon").isel(lat=slice(None, None, -1))
    assert messy["lon"].values[0] > 0 and messy["lat"].values[0] > messy["lat"].values[-1]
    res = validate_dataset(messy, source="messy.nc")
    assert res.ok, res.problems
    ds = res.dataset
    assert np.all(np.diff(ds["lat"].values) > 0)
    assert ds["lon"].values.min() >= -180 and ds["lon"].values.max() < 180
    np.testing.assert_array_equal(ds["lon"].values, ref["lon"].values)
    np.testing.assert_array_equal(ds["tas"].values, ref["tas"].values)
    assert any("flipped" in n for n in res.notes) and any("[-180, 180)" in n for n in res.notes)


def test_existing_bounds_follow_the_longitude_wrap():
    ds = make_grid_dataset()
    ds = ds.assign_coords(lon=("lon", np.mod(ds["lon"].values, 360.0), ds["lon"].attrs)).sortby("lon")
    lon = ds["lon"].values
    ds = ds.assign(lon_b=(("lon", "nv"), np.stack([lon - 0.5, lon + 0.5], 1)))
    ds["lon"].attrs["bounds"] = "lon_b"
    out = validate_dataset(ds).dataset
    np.testing.assert_allclose(out["lon_b"].values[:, 0], out["lon"].values - 0.5)


def test_find_lat_lon_by_attributes():
    ds = make_grid_dataset().rename({"lat": "northing", "lon": "easting"})
    assert find_lat_lon(ds) == ("northing", "easting")
    ds2 = make_grid_dataset().rename({"lat": "latitude", "lon": "longitude"})
    for name in ("latitude", "longitude"):
        ds2[name].attrs = {}
    assert find_lat_lon(ds2) == ("latitude", "longitude")


def test_no_lat_lon_is_a_clear_error():
    ds = xr.Dataset({"v": (("a", "b"), np.zeros((2, 3)))}, coords={"a": [0, 1], "b": [0, 1, 2]})
    with pytest.raises(InputDataError, match=r"nofile.nc: no latitude and longitude found among .*standard_name"):
        find_lat_lon(ds, "nofile.nc")


def test_non_monotonic_coordinate():
    ds = make_grid_dataset()
    lat = ds["lat"].values.copy()
    lat[[2, 3]] = lat[[3, 2]]
    ds = ds.assign_coords(lat=("lat", lat, ds["lat"].attrs))
    res = validate_dataset(ds, source="shuffled.nc")
    with pytest.raises(InputDataError, match=r"shuffled.nc: .*'lat' is not strictly monotonic"):
        res.raise_if_problems()


def test_units_range_nan_and_missing_var_reported_together():
    ds = make_grid_dataset()
    ds["tas"] = ds["tas"] - 273.15
    ds["tas"].attrs["units"] = "degC"
    ds["lai"] = ds["lai"] * 100
    ds["lai"].attrs["units"] = "m2 m-2"
    res = validate_dataset(ds, source="bad.nc", variables=["tas", "lai", "gpp"], max_nan_fraction=0.01)
    text = "; ".join(res.problems)
    assert "'tas' has units 'degC'" in text and "addc,273.15" in text
    assert "'lai' ranges over" in text
    assert "'lai' is 2.1% NaN" in text
    assert "gpp not found; the file has: lai, tas" in text
    with pytest.raises(InputDataError, match=r"bad.nc: 5 problem\(s\)"):
        res.raise_if_problems()


def test_all_nan_variable():
    ds = make_grid_dataset()
    ds["lai"][:] = np.nan
    res = validate_dataset(ds)
    assert any("holds no valid value" in p for p in res.problems)


def test_derive_bounds_clips_latitude():
    b = derive_bounds(np.array([-89.5, 0.0, 89.5]), clip=(-90, 90))
    assert b[0, 0] == -90 and b[-1, 1] == 90


def test_derive_bounds_single_centre_is_one_degree():
    assert np.array_equal(derive_bounds(np.array([10.0])), [[9.5, 10.5]])
    np.testing.assert_allclose(derive_bounds(np.array([89.8]), clip=(-90, 90)), [[89.3, 90.0]], rtol=1e-15)


def test_unstructured_grid_is_checked_not_sorted():
    cells = 5
    ds = xr.Dataset(
        {"lai": (("cell",), np.array([0.5, 1.0, np.nan, 2.0, 3.0]), {"units": "m2 m-2"})},
        coords={
            "lat": ("cell", np.array([60.0, 60.0, 20.0, 20.0, -40.0]), {"units": "degrees_north"}),
            "lon": ("cell", np.array([0.0, 180.0, 0.0, 90.0, 270.0]), {"units": "degrees_east"}),
        },
    )
    res = validate_dataset(ds, source="n32.nc")
    assert res.ok, res.problems
    assert res.summary[0]["nan_percent"] == "20.0" and "unstructured grid: 5 cells" in res.notes[0]
    bad = ds.assign_coords(lat=("cell", np.array([95.0] * cells), {"units": "degrees_north"}))
    assert any("outside [-90, 90]" in p for p in validate_dataset(bad).problems)


def test_coordinate_and_variable_problems_reported_together():
    ds = make_grid_dataset()
    lat = ds["lat"].values.copy()
    lat[[2, 3]] = lat[[3, 2]]
    ds = ds.assign_coords(lat=("lat", lat, ds["lat"].attrs))
    ds["tas"].attrs["units"] = "degC"
    res = validate_dataset(ds, source="two.nc")
    text = "; ".join(res.problems)
    assert "not strictly monotonic" in text and "'tas' has units 'degC'" in text
    assert "lat_bnds" not in res.dataset  # not harmonised
