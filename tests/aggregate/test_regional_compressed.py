"""Regional outputs (crop_to_source, --global) and compressed NetCDF outputs of the aggregation."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from pipeline.aggregate import (
    class_fractions,
    conservative_mean,
    crop_to_source,
    overlap_cells,
    source_edges,
    to_dataset,
)
from pipeline.cli import app
from pipeline.errors import ConfigError, InputDataError
from pipeline.grids import parse_grid
from pipeline.io import netcdf_chunks, write

runner = CliRunner()


def _regional(res=0.25, lon=(-10.0, 4.0), lat=(36.0, 44.0), *, codes=False, seed=0):
    """A smooth field (or class map) on a regional grid with a NaN corner (the sea)."""
    la = np.arange(lat[0] + res / 2, lat[1], res)
    lo = np.arange(lon[0] + res / 2, lon[1], res)
    y, x = np.meshgrid(la, lo, indexing="ij")
    v = 2.0 + np.sin(np.radians(8 * x)) * np.cos(np.radians(6 * y)) + 0.05 * np.random.default_rng(seed).random(x.shape)
    sea = (x < lon[0] + 2) & (y < lat[0] + 2)
    coords = {"lat": ("lat", la, {"standard_name": "latitude", "units": "degrees_north"}),
              "lon": ("lon", lo, {"standard_name": "longitude", "units": "degrees_east"})}
    if codes:
        k = (np.floor(v * 1.7) % 3 + 1).astype(np.float32)
        k[sea] = np.nan
        return xr.DataArray(k, dims=("lat", "lon"), coords=coords, name="lc",
                            attrs={"flag_values": [1, 2, 3], "flag_meanings": "a b c"})
    v[sea] = np.nan
    t = np.stack([v, 1.5 * v])
    return xr.DataArray(t, dims=("time", "lat", "lon"), coords={"time": [0, 1], **coords}, name="lai",
                        attrs={"units": "m2 m-2"})


@pytest.mark.parametrize("spec", ["1deg", "F32", "N32"])
@pytest.mark.parametrize("kind", ["mean", "fractions"])
def test_crop_equals_the_global_subset(spec, kind):
    da = _regional(codes=kind == "fractions")
    g = parse_grid(spec)
    full = conservative_mean(da, g) if kind == "mean" else class_fractions(da, g)
    ds = to_dataset(full, grid=g)
    edges = source_edges(da)
    crop = crop_to_source(ds, g, *edges)
    index = overlap_cells(g, *edges)
    ref = ds.isel(index)
    var = full.name
    np.testing.assert_array_equal(crop[var].values, ref[var].values)  # the same numbers, not recomputed
    np.testing.assert_array_equal(crop["lat_bnds"].values, ref["lat_bnds"].values)
    # the same meridians (a 0..360 grid's columns west of 0° are shifted to stay monotonic)
    np.testing.assert_array_equal((crop["lon_bnds"].values - ref["lon_bnds"].values) % 360.0, 0.0)
    if len(g.dims) == 2:
        assert np.all(np.diff(crop["lon"].values) > 0)
    # nothing is lost: every valid cell of the global result is inside the crop
    outside = np.ones(tuple(g.shape), bool)
    outside[np.ix_(*index.values())] = False
    assert np.isnan(full.values[..., outside]).all()
    assert np.isfinite(crop[var].values).any()
    assert crop[var].size < full.size / 20
    if len(g.dims) == 1:
        np.testing.assert_array_equal(crop["cell_index"].values, index["cell"])
        assert crop["lat_bnds"].dims == ("cell", "nv")


def test_crop_keeps_only_overlapping_cells_not_touching_ones():
    da = _regional()  # edges exactly -10..4, 36..44
    index = overlap_cells("1deg", *source_edges(da))
    g = parse_grid("1deg")
    np.testing.assert_array_equal(g.lat_edges[index["lat"][[0, -1]] + [0, 1]], [36, 44])
    np.testing.assert_array_equal(g.lon_edges[index["lon"][[0, -1]] + [0, 1]], [-10, 4])
    coarse = overlap_cells("5deg", *source_edges(da))  # cells that straddle the box are kept
    np.testing.assert_array_equal(parse_grid("5deg").lon_edges[coarse["lon"][[0, -1]] + [0, 1]], [-10, 5])


def test_crop_across_the_seam_of_a_0_360_grid():
    da = _regional()  # -10..4 on r360x180 (cells centred on 0..359): columns 350..359 and 0..4
    g = parse_grid("r360x180")
    ds = to_dataset(conservative_mean(da, g), grid=g)
    crop = crop_to_source(ds, g, *source_edges(da))
    np.testing.assert_array_equal(crop.lon.values, np.arange(-10.0, 5.0))
    assert np.all(np.diff(crop.lon_bnds.values[:, 0]) > 0) and np.allclose(crop.lon_bnds[:, 1] - crop.lon_bnds[:, 0], 1)
    ref = ds.isel(lat=overlap_cells(g, *source_edges(da))["lat"], lon=np.r_[350:360, 0:5])
    np.testing.assert_array_equal(crop.lai.values, ref.lai.values)


def test_crop_of_a_global_input_is_the_whole_grid_and_no_overlap_is_an_error():
    da = _regional(res=10.0, lon=(-180.0, 180.0), lat=(-90.0, 90.0))
    res = conservative_mean(da, "30deg")
    assert crop_to_source(res, "30deg", *source_edges(da)) is res
    small = _regional()
    elsewhere = xr.DataArray(np.zeros((10, 10)), dims=("lat", "lon"))  # a result on a grid far from the input
    with pytest.raises(InputDataError, match="overlap no cell of grid"):
        crop_to_source(elsewhere, "1deg:20,0,30,10", *source_edges(small))
    with pytest.raises(InputDataError, match="is not on grid 2deg"):
        crop_to_source(res, "2deg", *source_edges(da))


def test_netcdf_chunks_are_whole_maps():
    assert netcdf_chunks((2, 240, 8, 14), 8) == (2, 240, 8, 14)  # small: one chunk
    assert netcdf_chunks((2, 240, 180, 360), 8)[-2:] == (180, 360)
    assert netcdf_chunks((3600, 7200), 4) == (145, 7200)  # a huge map: bands of rows


def test_write_compresses_on_request_and_keeps_the_encoding_otherwise(tmp_path):
    da = _regional(res=0.1)
    ds = to_dataset(conservative_mean(da, "0.5deg"), grid="0.5deg")
    ds["lai"].encoding["_FillValue"] = np.float32(-9999.0)
    ds["lai"].encoding["dtype"] = "float32"
    plain, small = tmp_path / "plain.nc", tmp_path / "small.nc"
    write(ds, plain)
    write(ds, small, compression_level=4)
    with netCDF4.Dataset(small) as nc:
        f = nc["lai"].filters()
        assert f["zlib"] and f["shuffle"] and f["complevel"] == 4
        assert nc["lai"].chunking()[-2:] == [360, 720] and nc["lai"].dtype == np.float32
        assert nc["lai"].getncattr("_FillValue") == -9999.0  # the variable's own encoding is kept
    with netCDF4.Dataset(plain) as nc:
        assert not nc["lai"].filters()["zlib"]  # callers that do not ask keep their behaviour
    assert small.stat().st_size < plain.stat().st_size / 5
    np.testing.assert_array_equal(xr.open_dataset(small).lai.values, xr.open_dataset(plain).lai.values)
    with pytest.raises(ConfigError, match="compression level"):
        write(ds, tmp_path / "x.nc", compression_level=12)


def test_cli_regional_by_default_global_on_request_compressed(tmp_path):
    src = tmp_path / "iberia.nc"
    _regional(res=0.1).to_dataset().to_netcdf(src)
    out, whole, raw = tmp_path / "r.nc", tmp_path / "g.nc", tmp_path / "raw.nc"
    base = ["aggregate", str(src), "--var", "lai", "--grid", "0.5deg"]
    res = runner.invoke(app, [*base, "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "regional: 16 x 28 of 360 x 720" in " ".join(res.output.split())
    res = runner.invoke(app, [*base, "--global", "-o", str(whole)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, [*base, "--global", "--compression-level", "0", "-o", str(raw)])
    assert res.exit_code == 0, res.output
    r, g = xr.open_dataset(out), xr.open_dataset(whole)
    assert r.lai.shape == (2, 16, 28) and g.lai.shape == (2, 360, 720)
    np.testing.assert_array_equal(r.lai.values, g.lai.sel(lat=r.lat, lon=r.lon).values)
    np.testing.assert_array_equal(r.lat_bnds.values, g.lat_bnds.sel(lat=r.lat).values)
    assert r.lai.encoding["zlib"] and r.lai.encoding["shuffle"] and r.lai.encoding["complevel"] == 4
    assert g.lai.encoding["zlib"] and not xr.open_dataset(raw).lai.encoding.get("zlib", False)
    assert whole.stat().st_size < raw.stat().st_size / 20  # a mostly empty global grid compresses away
    res = runner.invoke(app, ["validate", str(out)])
    assert res.exit_code == 0, res.output


def test_cli_regional_reduced_gaussian_and_fractions_validate(tmp_path):
    src = tmp_path / "lc.nc"
    _regional(codes=True).to_dataset().to_netcdf(src)
    out = tmp_path / "f.nc"
    res = runner.invoke(app, ["aggregate", str(src), "--var", "lc", "--grid", "N32", "--method", "fractions",
                              "-o", str(out)])
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(out)
    assert ds.lc_fraction.dims == ("class", "cell") and ds.sizes["cell"] < 30 and "cell_index" in ds.coords
    assert ds.lat_bnds.dims == ("cell", "nv")
    tot = ds.lc_fraction.sum("class", skipna=False).values
    assert np.allclose(tot[np.isfinite(tot)], 1.0)
    res = runner.invoke(app, ["validate", str(out)])
    assert res.exit_code == 0, res.output
