"""Comparison with CDO 2.x ``remapcon`` / ``gencon`` / ``remap`` on tiny grids (skipped without cdo)."""

import shutil
import subprocess

import numpy as np
import pytest
import xarray as xr

from pipeline.aggregate import apply_weights, class_fractions, conservative_mean
from pipeline.grids import parse_grid, source_axes, write_scrip
from pipeline.weights import compute_weights, write_weights

CDO = shutil.which("cdo")
pytestmark = pytest.mark.skipif(CDO is None, reason="needs CDO (apt-get install cdo)")
TOL = 1e-6


def cdo(*args, cwd):
    res = subprocess.run([CDO, "-s", *map(str, args)], cwd=cwd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stderr


def _field(ny=90, nx=180, seed=1, descending=False, lon360=False):
    lat = np.linspace(-90 + 90 / ny, 90 - 90 / ny, ny)
    lon = np.linspace(-180 + 180 / nx, 180 - 180 / nx, nx)
    rng = np.random.default_rng(seed)
    x = 280 + 10 * np.cos(np.radians(lat))[:, None] * np.sin(np.radians(lon))[None, :] + rng.random((ny, nx))
    x[ny // 4:ny // 3, nx // 4:nx // 2] = np.nan  # a hole
    x[:3] = np.nan  # a missing polar cap
    x[rng.random((ny, nx)) < 0.05] = np.nan  # scattered gaps
    da = xr.DataArray(x, dims=("lat", "lon"), name="v", attrs={"units": "K"},
                      coords={"lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
                              "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"})})
    if descending:
        da = da.isel(lat=slice(None, None, -1))
    if lon360:
        da = da.roll(lon=nx // 2, roll_coords=True)
        da = da.assign_coords(lon=("lon", da.lon.values % 360, da.lon.attrs))
        da = da.sortby("lon")
    return da


def _write(da, path):
    da.to_dataset().to_netcdf(path, encoding={da.name: {"_FillValue": -9999.0}})
    return path


def _cdo_values(path, var="v"):
    return xr.open_dataset(path)[var].squeeze()


def _close(ours, ref, tol=TOL):
    ours, ref = np.asarray(ours, float), np.asarray(ref, float)
    assert ours.shape == ref.shape
    assert np.array_equal(np.isnan(ours), np.isnan(ref)), "different missing cells"
    m = np.isfinite(ref)
    assert m.sum() > 0.5 * m.size
    rel = np.abs(ours[m] - ref[m]) / np.maximum(np.abs(ref[m]), 1e-300)
    assert rel.max() < tol, rel.max()
    return rel.max()


def _sorted_latlon(c):
    return c.sortby("lat").values if "lat" in c.dims else c.values


@pytest.mark.parametrize("target", ["5deg", "F8", "N32", "O16"])
def test_continuous_with_holes_vs_remapcon_on_our_grid_file(tmp_path, target):
    """cdo remapcon onto our SCRIP grid file (regular, Gaussian, reduced Gaussian targets)."""
    da = _field()
    _write(da, tmp_path / "in.nc")
    g = parse_grid(target)
    write_scrip(g, tmp_path / "grid.nc")
    cdo("remapcon,grid.nc", "in.nc", "out.nc", cwd=tmp_path)
    ref = _cdo_values(tmp_path / "out.nc").values.reshape(g.shape)
    _close(conservative_mean(da, g).values, ref)


def test_latlon_to_latlon_vs_cdo_griddes(tmp_path):
    da = _field(seed=2)
    _write(da, tmp_path / "in.nc")
    g = parse_grid("6deg")
    (tmp_path / "grid.txt").write_text(g.cdo_griddes())
    cdo("remapcon,grid.txt", "in.nc", "out.nc", cwd=tmp_path)
    _close(conservative_mean(da, "6deg").values, _sorted_latlon(_cdo_values(tmp_path / "out.nc")))


def test_gaussian_vs_cdo_native_f_grid(tmp_path):
    """CDO's own F<N> grid: matches with the 'cdo' bounds convention (outer bounds extrapolated)."""
    da = _field(seed=3)
    _write(da, tmp_path / "in.nc")
    cdo("remapcon,F8", "in.nc", "out.nc", cwd=tmp_path)
    ref = _sorted_latlon(_cdo_values(tmp_path / "out.nc"))
    _close(conservative_mean(da, parse_grid("F8", gaussian_bounds="cdo")).values, ref)
    ours_default = conservative_mean(da, "F8").values  # poles at +-90: differs in the outer rows only
    _close(ours_default[1:-1], ref[1:-1])


@pytest.mark.parametrize("layout", [dict(descending=True), dict(lon360=True), dict(descending=True, lon360=True)])
def test_descending_lat_and_0_360_input(tmp_path, layout):
    da = _field(seed=4, **layout)
    _write(da, tmp_path / "in.nc")
    g = parse_grid("N32")
    write_scrip(g, tmp_path / "grid.nc")
    cdo("remapcon,grid.nc", "in.nc", "out.nc", cwd=tmp_path)
    _close(conservative_mean(da, g).values, _cdo_values(tmp_path / "out.nc").values)
    # and the same numbers as the ascending, -180..180 layout
    plain = conservative_mean(_field(seed=4), g).values
    _close(conservative_mean(da, g).values, plain, 1e-13)


@pytest.mark.parametrize("target", ["5deg", "N32"])
def test_class_fractions_vs_one_hot_remapcon(tmp_path, target):
    ny, nx = 90, 180
    rng = np.random.default_rng(5)
    lat = np.linspace(-89, 89, ny)
    lon = np.linspace(-179, 179, nx)
    cls = rng.integers(1, 5, (ny, nx)).astype(np.int16)
    cls[:, :40] = np.repeat(rng.integers(1, 5, (ny, 1)), 40, axis=1)  # some large patches
    cls[rng.random((ny, nx)) < 0.1] = 0  # no data
    coords = {"lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
              "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east"})}
    da = xr.DataArray(cls, dims=("lat", "lon"), coords=coords, name="k")
    onehot = xr.Dataset({f"c{c}": (("lat", "lon"), np.where(cls == 0, np.nan, (cls == c).astype(float)))
                         for c in (1, 2, 3, 4)}, coords=coords)
    onehot.to_netcdf(tmp_path / "onehot.nc", encoding={f"c{c}": {"_FillValue": -9999.0} for c in (1, 2, 3, 4)})
    g = parse_grid(target)
    write_scrip(g, tmp_path / "grid.nc")
    cdo("remapcon,grid.nc", "onehot.nc", "out.nc", cwd=tmp_path)
    out = xr.open_dataset(tmp_path / "out.nc")
    frac = class_fractions(da, g, classes=[1, 2, 3, 4], missing=[0])
    for i, c in enumerate((1, 2, 3, 4)):
        ref = out[f"c{c}"].squeeze().values.reshape(g.shape)
        ours = frac.isel({"class": i}).values
        m = np.isfinite(ref)
        assert np.array_equal(np.isnan(ours), ~m)
        assert np.abs(ours[m] - ref[m]).max() < TOL


def test_cdo_gencon_weights_applied_by_us(tmp_path):
    da = _field(seed=6)
    _write(da, tmp_path / "in.nc")
    cdo("gencon,F8", "in.nc", "w.nc", cwd=tmp_path)
    cdo("remapcon,F8", "in.nc", "out.nc", cwd=tmp_path)
    res = apply_weights(da, tmp_path / "w.nc")
    ref = _cdo_values(tmp_path / "out.nc")
    assert res.dims == ("lat", "lon") and np.allclose(res.lat, ref.lat)
    _close(res.values, ref.values)


def test_our_scrip_weights_used_by_cdo(tmp_path):
    da = _field(seed=7).fillna(281.0)  # CDO uses file weights only for inputs without missing values
    _write(da, tmp_path / "in.nc")
    g = parse_grid("N32")
    write_scrip(g, tmp_path / "grid.nc")
    write_weights(compute_weights(source_axes(da).grid, g), tmp_path / "w.nc")
    err = cdo("remap,grid.nc,w.nc", "in.nc", "out.nc", cwd=tmp_path)
    assert "not used" not in err, err
    _close(conservative_mean(da, g).values, _cdo_values(tmp_path / "out.nc").values, 1e-10)
