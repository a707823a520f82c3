"""Grids: Gaussian latitudes, point lists, bounds conventions, areas, spec strings, SCRIP files."""

import numpy as np
import pytest
import xarray as xr

from pipeline.errors import ConfigError, InputDataError
from pipeline.grids import (
    RectilinearGrid,
    ReducedGrid,
    gaussian_lat_bounds,
    gaussian_latitudes,
    list_grids,
    parse_grid,
    read_scrip_grid,
    source_axes,
    write_scrip,
)
from pipeline.sphere import edges_from_centres

FOUR_PI = 4 * np.pi


def test_gaussian_latitudes_are_legendre_roots():
    for n in (8, 48, 128):
        lat, w = gaussian_latitudes(n)
        x = np.sin(np.radians(lat))
        p = np.polynomial.legendre.Legendre.basis(2 * n)(x)
        assert np.abs(p).max() < 1e-10
        assert np.all(np.diff(lat) > 0) and lat.size == 2 * n
        assert abs(w.sum() - 2) < 1e-13
    # CDO's F8 first latitude (cdo griddes F8)
    assert abs(gaussian_latitudes(8)[0][-1] - 81.6505907503035) < 1e-12


def test_point_lists_from_eccodes():
    g = parse_grid("N128")
    assert isinstance(g, ReducedGrid)
    assert g.nrows == 256 and g.size == 88838 and g.pl.max() == 512
    assert np.array_equal(g.pl, g.pl[::-1])  # symmetric about the equator
    assert parse_grid("N80").nrows == 160 and parse_grid("N32").size == 6114
    assert parse_grid("tl255").size == 88838
    o = parse_grid("O96")
    assert o.size == 4 * 96**2 + 36 * 96 and o.pl[0] == 20 and o.pl[95] == 20 + 4 * 95


@pytest.mark.parametrize("spec", ["1deg", "0.25deg", "r360x180", "F48", "N128", "O96", "N32", "1x2deg"])
@pytest.mark.parametrize("bounds", ["midpoints", "weights"])
def test_global_areas_sum_to_sphere(spec, bounds):
    g = parse_grid(spec, gaussian_bounds=bounds)
    assert g.is_global
    assert abs(g.cell_areas(1.0).sum() / FOUR_PI - 1) < 1e-13
    r = 6371000.0
    assert abs(g.cell_areas(r).sum() / (FOUR_PI * r * r) - 1) < 1e-13


def test_regional_area_is_exact_box():
    g = parse_grid("0.5deg:-10,35,5,45")
    assert g.shape == (20, 30) and not g.is_global
    exact = np.radians(15) * (np.sin(np.radians(45)) - np.sin(np.radians(35)))
    assert abs(g.cell_areas(1.0).sum() / exact - 1) < 1e-13


def test_gaussian_bound_conventions():
    lat, w = gaussian_latitudes(16)
    mid = gaussian_lat_bounds(16, "midpoints")
    assert mid[0] == -90 and mid[-1] == 90 and np.allclose(mid[1:-1], 0.5 * (lat[1:] + lat[:-1]))
    wb = gaussian_lat_bounds(16, "weights")
    assert np.abs(np.diff(np.sin(np.radians(wb))) - w).max() < 1e-14
    assert np.all((wb[:-1] < lat) & (lat < wb[1:]))
    cdo = gaussian_lat_bounds(8, "cdo")  # cdo gencon,F8: first-row area = dlon * (sin 87.0586 - sin 76.2426)
    assert abs(cdo[-1] - 87.05856625029145) < 1e-9 and np.allclose(cdo[1:-1], gaussian_lat_bounds(8)[1:-1])
    with pytest.raises(ConfigError):
        gaussian_lat_bounds(8, "nonsense")


def test_corners_and_centres_consistent():
    for spec in ("2deg", "F8", "N32", "O16"):
        g = parse_grid(spec)
        clat, clon = g.centers()
        klat, klon = g.corners()
        assert klat.shape == (g.size, 4)
        assert np.all((klat.min(1) <= clat.ravel()) & (clat.ravel() <= klat.max(1)))
        assert np.all((klon.min(1) <= clon.ravel()) & (clon.ravel() <= klon.max(1)))


def test_spec_errors():
    for bad in ("2.5", "N33", "Q12", "0.7deg", "1deg:1,2,3", "file:/nonexistent.nc"):
        with pytest.raises((ConfigError, InputDataError)):
            parse_grid(bad)


def test_list_grids_has_tl255():
    rows = {r["name"]: r for r in list_grids()}
    assert rows["tl255"]["cells"] == 88838 and rows["tl159"]["spec"] == "N80"


@pytest.mark.parametrize("spec", ["3deg", "F8", "N32", "O16", "0.5deg:-10,35,5,45"])
def test_scrip_roundtrip(tmp_path, spec):
    g = parse_grid(spec)
    path = write_scrip(g, tmp_path / "g.nc")
    h = read_scrip_grid(path)
    assert type(h) is type(g) and h.shape == g.shape
    assert np.allclose(h.lat_bounds, g.lat_bounds, atol=1e-9)
    assert np.allclose(h.cell_areas(1.0), g.cell_areas(1.0), rtol=1e-9)
    if isinstance(g, ReducedGrid):
        assert np.array_equal(h.pl, g.pl)
    assert parse_grid(f"file:{path}").size == g.size


def test_scrip_non_box_grid_is_rejected(tmp_path):
    g = parse_grid("10deg")
    write_scrip(g, tmp_path / "g.nc")
    ds = xr.open_dataset(tmp_path / "g.nc").load()
    ds["grid_corner_lat"] = ds.grid_corner_lat + np.array([0, 1.0, 0, 0])  # skewed quadrilaterals
    ds.to_netcdf(tmp_path / "bad.nc")
    with pytest.raises(InputDataError, match="gencon"):
        read_scrip_grid(tmp_path / "bad.nc")


def test_edges_from_centres_midpoints_clip_and_single_cell():
    e = edges_from_centres(np.array([-89.0, 0.0, 90.0]))
    assert np.array_equal(e, [-133.5, -44.5, 45.0, 135.0])
    assert np.array_equal(edges_from_centres(np.array([-89.5, 0.0, 89.5]), clip=(-90.0, 90.0)), [-90.0, -44.75, 44.75, 90.0])
    with pytest.raises(InputDataError, match="single cell"):
        edges_from_centres(np.array([10.0]))
    np.testing.assert_allclose(edges_from_centres(np.array([89.8]), single_cell_width=1.0), [89.3, 90.3], rtol=1e-15)
    np.testing.assert_allclose(edges_from_centres(np.array([89.8]), clip=(-90.0, 90.0), single_cell_width=1.0), [89.3, 90.0], rtol=1e-15)
    with pytest.raises(ValueError):
        edges_from_centres(np.array([]))


def test_source_axes_single_latitude_needs_bounds():
    da = xr.DataArray(np.zeros((1, 3)), dims=("lat", "lon"), coords={"lat": [10.0], "lon": [0.5, 1.5, 2.5]}, name="x")
    with pytest.raises(InputDataError, match="single cell"):
        source_axes(da)


def test_source_axes_descending_and_0_360():
    lat = np.linspace(89.5, -89.5, 180)
    lon = np.arange(0.5, 360, 1.0)
    da = xr.DataArray(np.zeros((180, 360)), dims=("lat", "lon"), coords={"lat": lat, "lon": lon}, name="x")
    ax = source_axes(da)
    assert isinstance(ax.grid, RectilinearGrid)
    assert ax.row_index[0] == 179 and np.all(np.diff(ax.grid.lat_edges) > 0)
    assert ax.grid.lon_edges[0] == 0 and ax.grid.lon_edges[-1] == 360
    rolled = da.roll(lon=90, roll_coords=True)  # 270.5 .. 359.5, 0.5 .. 269.5
    ax2 = source_axes(rolled)
    assert np.allclose(np.diff(ax2.grid.lon_edges), 1.0) and abs(np.ptp(ax2.grid.lon_edges) - 360) < 1e-9
    with pytest.raises(InputDataError, match="latitude"):
        source_axes(xr.DataArray(np.zeros((3, 3)), dims=("a", "b"), name="x"))
