"""Coordinate values no stage can use, found at open and by validate: NaN, ±inf, beyond ±90°, gaps,
a meridian twice, curvilinear grids; and infinite data values."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from pipeline import io as tio
from pipeline.cli import app
from pipeline.errors import InputDataError
from tests.helpers.sample_grids import make_grid_dataset

runner = CliRunner()


def _with(ds: xr.Dataset, name: str, values) -> xr.Dataset:
    return ds.assign_coords({name: (name, np.asarray(values, dtype=np.float64), ds[name].attrs)})


def _grid(nlat=6, nlon=8, **coords) -> xr.Dataset:
    ds = make_grid_dataset(nlat=nlat, nlon=nlon)
    for name, values in coords.items():
        ds = _with(ds, name, values)
    return ds


# -- NaN, inf, out of range: errors at open, problems in validate --------------------------------


BAD_VALUES = [
    ("lat", 0, np.nan, r"latitude 'lat' is NaN at index 0"),
    ("lat", 3, np.nan, r"latitude 'lat' is NaN at index 3"),
    ("lon", 7, np.nan, r"longitude 'lon' is NaN at index 7"),
    ("lon", 2, np.inf, r"longitude 'lon' is infinite at index 2"),
    ("lat", 5, -np.inf, r"latitude 'lat' is infinite at index 5"),
    ("lat", 5, 90.5, r"latitude 'lat' has values outside \[-90, 90\] \(first 90.5 at index 5"),
    ("lat", 0, -91.0, r"latitude 'lat' has values outside \[-90, 90\] \(first -91 at index 0"),
]


@pytest.mark.parametrize("name, index, value, message", BAD_VALUES)
def test_bad_coordinate_value_is_named_with_its_index(tmp_path, name, index, value, message):
    ds = make_grid_dataset()
    values = ds[name].values.copy()
    values[index] = value
    if name == "lat" and abs(value) > 90 and np.isfinite(value):
        values = np.sort(values)  # sorted: the range, not the order, is what is wrong
    bad = _with(ds, name, values)
    res = tio.validate_dataset(bad, source="bad.nc")
    assert any(__import__("re").search(message, p) for p in res.problems), res.problems
    assert not any("monotonic" in p for p in res.problems)  # a NaN is no sorting problem
    path = tmp_path / "bad.nc"
    bad.to_netcdf(path)
    with pytest.raises(InputDataError, match=message):
        tio.open_dataset(path)
    for args in (["validate", str(path)], ["aggregate", str(path), "-v", "lai", "-g", "2deg", "-o",
                                           str(tmp_path / "o.nc")]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and isinstance(res.exception, SystemExit), res.output
        assert __import__("re").search(message, res.output) and "Traceback" not in res.output
    assert not (tmp_path / "o.nc").exists()


def test_poles_and_both_longitude_conventions_pass():
    lat = np.array([-90.0, -45.0, 0.0, 45.0, 90.0])
    for lon in (np.arange(0.0, 360.0, 45.0), np.arange(-180.0, 180.0, 45.0)):
        ds = make_grid_dataset(nlat=5, nlon=8)
        ds = _with(_with(ds, "lat", lat), "lon", lon)
        res = tio.validate_dataset(ds)
        assert res.ok, res.problems


def test_unstructured_cells_with_nan_or_inf():
    ds = xr.Dataset({"lai": ("cell", np.ones(4), {"units": "m2 m-2"})},
                    coords={"lat": ("cell", [10.0, np.nan, 30.0, 40.0], {"units": "degrees_north"}),
                            "lon": ("cell", [0.0, 10.0, np.inf, 30.0], {"units": "degrees_east"})})
    text = "; ".join(tio.validate_dataset(ds, source="cells.nc").problems)
    assert "latitude 'lat' is NaN at index 1" in text and "longitude 'lon' is infinite at index 2" in text


def test_axis_problems_unit():
    assert tio.axis_problems(np.arange(5.0), "lat", "lat") == []
    assert "no values" in tio.axis_problems(np.array([]), "lat", "lat")[0]
    assert "not numbers" in tio.axis_problems(np.array(["a", "b"]), "lon", "lon")[0]
    assert "beyond [-360, 720]" in tio.axis_problems(np.array([0.0, 800.0]), "lon", "lon")[0]
    two = tio.axis_problems(np.array([np.nan, 1.0, np.inf]), "y", "lat")
    assert len(two) == 2 and "NaN at index 0" in two[0] and "infinite at index 2" in two[1]


# -- the same meridian twice -------------------------------------------------------------------


@pytest.mark.parametrize("lon, dropped", [
    (np.arange(0.0, 361.0, 45.0), "360 repeats 0"),
    (np.arange(-180.0, 181.0, 45.0), "180 repeats -180"),
    (np.array([0.0, 90.0, 180.0, 270.0, 360.0, 450.0]), "360 repeats 0, 450 repeats 90"),
])
def test_same_meridian_twice_is_dropped_with_a_note(tmp_path, lon, dropped):
    ds = make_grid_dataset(nlat=4, nlon=lon.size)
    ds = _with(ds, "lon", lon)
    res = tio.validate_dataset(ds, source="cyclic.nc")
    assert res.ok, res.problems
    out = res.dataset["lon"].values
    assert np.unique(out).size == out.size and out.min() >= -180 and out.max() < 180
    assert np.all(np.diff(out) > 0)
    assert any(dropped in n and "dropped" in n for n in res.notes), res.notes
    # the data of each kept column moved with it
    for v in out:
        src = int(np.flatnonzero(np.mod(lon + 180, 360) - 180 == v)[0])
        np.testing.assert_array_equal(res.dataset["tas"].sel(lon=v).values, ds["tas"].isel(lon=src).values)
    np.testing.assert_allclose(np.diff(res.dataset["lon_bnds"].values, axis=1), np.diff(out).min())
    path = tmp_path / "cyclic.nc"
    ds.to_netcdf(path)
    res = runner.invoke(app, ["validate", str(path), "-o", str(tmp_path / "h.nc")])
    assert res.exit_code == 0 and "dropped" in res.output, res.output
    assert np.unique(xr.open_dataset(tmp_path / "h.nc")["lon"].values).size == out.size


# -- gaps ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, values, where", [
    ("lon", np.r_[np.arange(-5.5, -1.0), np.arange(1.5, 5.0)], "between -1.5 and 1.5"),  # two tiles
    ("lat", np.r_[np.arange(40.5, 43.0), np.arange(45.5, 48.0)], "between 42.5 and 45.5"),
    ("lon", np.r_[np.arange(0.5, 4.0), np.arange(6.5, 8.0), 9.5], "between 3.5 and 6.5"),
])
def test_gap_between_tiles_is_found_and_located(tmp_path, name, values, where):
    ds = make_grid_dataset(nlat=values.size if name == "lat" else 6, nlon=values.size if name == "lon" else 8)
    ds = _with(ds, name, values)
    res = tio.validate_dataset(ds, source="tiles.nc")
    text = "; ".join(res.problems)
    assert "gap " + where in text and "stretch" in text and "bounds" in text, res.problems
    # with cell bounds the gap is described by them: a note, no problem
    b = np.stack([values - 0.5, values + 0.5], axis=1)
    bounded = ds.assign({f"{name}_b": ((name, "nv"), b)})
    bounded[name].attrs["bounds"] = f"{name}_b"
    res = tio.validate_dataset(bounded, source="tiles.nc")
    assert res.ok, res.problems
    assert any(where in n for n in res.notes), res.notes
    path = tmp_path / "tiles.nc"
    ds.to_netcdf(path)
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 2 and "gap" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("lon", [
    np.arange(0.5, 360.0, 1.0),  # global, 0..360
    np.mod(np.arange(170.5, 190.0, 1.0) + 180.0, 360.0) - 180.0,  # regional across the antimeridian
    np.sort(np.mod(np.arange(-5.5, 2.0, 1.0), 360.0)),  # regional, 0..360, stored in 0..360 order
    np.arange(-179.0, 180.0, 2.0),
])
def test_no_gap_for_wraps_and_regions(lon):
    assert tio.axis_gaps(lon, "lon") == []


def test_no_gap_for_gaussian_or_stretched_axes():
    gauss = np.degrees(np.arcsin(np.polynomial.legendre.leggauss(64)[0]))
    assert tio.axis_gaps(gauss, "lat") == []
    stretched = np.cumsum(np.linspace(0.1, 1.0, 30))  # smoothly varying spacing: not regular-looking
    assert tio.axis_gaps(stretched, "lat") == []
    assert tio.axis_gaps(np.array([0.0, 1.0, 2.0]), "lat") == []  # too short to judge


def test_gap_in_gaussian_latitudes_is_found():
    gauss = np.degrees(np.arcsin(np.polynomial.legendre.leggauss(64)[0]))
    holed = np.delete(gauss, [30, 31])
    gaps = tio.axis_gaps(holed, "lat")
    assert len(gaps) == 1 and gaps[0][0] == pytest.approx(gauss[29])


# -- data values -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_data_values_are_a_problem(tmp_path, value):
    ds = make_grid_dataset()
    ds["lai"][0, 2, 3] = value
    ds["lai"][1, 2, 3] = value
    res = tio.validate_dataset(ds, source="inf.nc")
    assert any("'lai' holds 2 infinite value(s)" in p for p in res.problems), res.problems
    row = next(r for r in res.summary if r["variable"] == "lai")
    assert row["min"] != "nan" and row["max"] != "nan"  # the range of the finite values
    assert not any("ranges over" in p for p in res.problems)
    path = tmp_path / "inf.nc"
    ds.to_netcdf(path)
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 2 and "infinite" in res.output


def test_all_nan_variable_is_reported_with_its_name(tmp_path):
    ds = make_grid_dataset()
    ds["lai"][:] = np.nan
    res = tio.validate_dataset(ds, source="nan.nc")
    assert any("'lai' holds no valid value" in p for p in res.problems)
    row = next(r for r in res.summary if r["variable"] == "lai")
    assert row["nan_percent"] == "100.0"


def test_find_lat_lon_prefers_1d_axes_with_the_same_attributes():
    ds = make_grid_dataset()
    lat2d, lon2d = np.meshgrid(ds["lat"].values, ds["lon"].values, indexing="ij")
    ds = ds.assign_coords(lat2d=(("lat", "lon"), lat2d, {"standard_name": "latitude"}),
                          lon2d=(("lat", "lon"), lon2d, {"standard_name": "longitude"}))
    ds = ds[["lat2d", "lon2d", "lai", "tas"]]  # 2-D fields first
    assert tio.find_lat_lon(ds) == ("lat", "lon")
    assert tio.validate_dataset(ds).ok
