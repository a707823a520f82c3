"""ESM products of a run (pipeline.predict.esm) against an independent numpy oracle with exact areas."""

from __future__ import annotations

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline.aggregate import overlap_cells, source_edges
from pipeline.datasets import load_bats_table, load_pft_crosswalk
from pipeline.datasets.bats import DEFAULT_BATS_TABLE
from pipeline.errors import InputDataError
from pipeline.io import validate_dataset
from pipeline.predict import TYPE_FILL, lai_esm, lulc_esm, write_esm
from pipeline.sphere import sin_lat_diff

RES = 0.5
LAT0, LON0, NY, NX = 40.2, 5.3, 32, 40  # fine cells not aligned with the target cells
SCEN = ["ssp126", "ssp585"]
YEARS = pd.to_datetime(["2019-01-01", "2020-01-01"])
MONTHS = pd.date_range("2019-01-01", periods=24, freq="MS")


def _coords():
    lat = LAT0 + RES * (np.arange(NY) + 0.5)
    lon = LON0 + RES * (np.arange(NX) + 0.5)
    return {"lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
            "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east"})}


def _sea(shape):
    """NaN cells: a corner (the sea) and one scattered cell."""
    m = np.zeros(shape[-2:], bool)
    m[:6, :9] = True
    m[20, 30] = True
    return m


@pytest.fixture(scope="module")
def probability():
    rng = np.random.default_rng(1)
    raw = rng.gamma(0.4, size=(2, 2, 17, NY, NX))
    raw[:, :, [1, 2, 3, 4, 5, 8], 24:, :10] = 0.0  # a block without high vegetation
    p = raw / raw.sum(2, keepdims=True)
    p[..., _sea(p.shape)] = np.nan
    return xr.DataArray(p.astype(np.float32), dims=("scenario", "time", "igbp_class", "lat", "lon"), name="probability",
                        coords={"scenario": SCEN, "time": YEARS, "igbp_class": np.arange(17), **_coords()})


@pytest.fixture(scope="module")
def lai():
    rng = np.random.default_rng(2)
    v = (0.5 + 5 * rng.random((2, 24, NY, NX))).astype(np.float32)
    v[..., _sea(v.shape)] = np.nan
    return xr.DataArray(v, dims=("scenario", "time", "lat", "lon"), name="lai", attrs={"units": "m2 m-2"},
                        coords={"scenario": SCEN, "time": MONTHS, **_coords()})


def _boxes(ds):
    """Target cell boxes (lat0, lat1, lon0, lon1), flat in the output's cell order, from its bounds."""
    if "cell" in ds.dims:
        b, c = ds.lat_bnds.values, ds.lon_bnds.values
        return b[:, 0], b[:, 2], c[:, 0], c[:, 1]
    la, lo = ds.lat_bnds.values, ds.lon_bnds.values
    ny, nx = la.shape[0], lo.shape[0]
    return (np.repeat(la[:, 0], nx), np.repeat(la[:, 1], nx), np.tile(lo[:, 0], ny), np.tile(lo[:, 1], ny))


def _oracle(values, ds):
    """Area-weighted mean of ``values`` (..., NY, NX) over the finite part of each target cell of ``ds``.

    Overlap areas of latitude-longitude boxes, exact on the sphere (R = 1): Δλ · Δ sin φ.
    """
    t_lat0, t_lat1, t_lon0, t_lon1 = _boxes(ds)
    f_lat = LAT0 + RES * np.arange(NY + 1)
    f_lon = LON0 + RES * np.arange(NX + 1)
    lo = np.maximum(t_lat0[:, None], f_lat[None, :-1])
    hi = np.minimum(t_lat1[:, None], f_lat[None, 1:])
    dsin = np.where(hi > lo, sin_lat_diff(lo, np.maximum(hi, lo)), 0.0)
    lo = np.maximum(t_lon0[:, None], f_lon[None, :-1])
    hi = np.minimum(t_lon1[:, None], f_lon[None, 1:])
    dlon = np.radians(np.maximum(hi - lo, 0.0))
    w = dsin[:, :, None] * dlon[:, None, :]  # (cell, NY, NX)
    v = np.asarray(values, np.float64)
    ok = np.isfinite(v)
    num = np.einsum("kyx,...yx->...k", w, np.where(ok, v, 0.0))
    den = np.einsum("kyx,...yx->...k", w, ok.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _flat(da):
    """(..., cells) values in the output's flat cell order."""
    grid = ("lat", "lon") if "lat" in da.dims else ("cell",)
    return da.values.reshape(da.shape[:da.ndim - len(grid)] + (-1,))


@pytest.fixture(scope="module", params=["5deg", "N32"])
def lulc(request, probability):
    return request.param, lulc_esm(probability, request.param)


def test_igbp_fractions_are_the_area_weighted_class_means(lulc, probability):
    _, ds = lulc
    frac = _flat(ds.igbp_fraction)
    np.testing.assert_allclose(frac, _oracle(probability.values, ds), rtol=2e-6, atol=1e-7, equal_nan=True)
    valid = np.isfinite(frac[:, :, 0])
    assert valid.sum() > 10 and (_flat(ds.land_area_fraction)[valid] < 1).any()  # cells with some sea
    np.testing.assert_allclose(frac.sum(2)[valid], 1.0, atol=1e-6)
    np.testing.assert_allclose(_flat(ds.pft_fraction).sum(2)[valid], 1.0, atol=1e-6)
    land = _oracle(np.isfinite(probability.values[:, :, 0]).astype(float), ds)
    np.testing.assert_allclose(_flat(ds.land_area_fraction), land, atol=1e-6)
    cw = load_pft_crosswalk().to_numpy()
    np.testing.assert_allclose(_flat(ds.pft_fraction), np.einsum("stck,cp->stpk", frac, cw), atol=1e-6)


def test_vegetation_cover_and_dominant_types(lulc):
    _, ds = lulc
    table = load_bats_table()
    frac = _flat(ds.igbp_fraction).astype(np.float64)
    valid = np.isfinite(frac[:, :, 0])
    cvh, cvl = _flat(ds.cvh), _flat(ds.cvl)
    np.testing.assert_allclose(cvh, frac[:, :, table.classes("high")].sum(2), atol=1e-6)
    np.testing.assert_allclose(cvl, frac[:, :, table.classes("low")].sum(2), atol=1e-6)
    assert np.all(cvh[valid] + cvl[valid] <= 1 + 1e-6)
    for kind, code in (("high", "tvh"), ("low", "tvl")):
        types = list(table.types(kind))
        area = np.zeros(frac.shape[:2] + (len(types),) + frac.shape[3:])
        for c in table.classes(kind):
            area[:, :, types.index(table.type_of(c))] += np.nan_to_num(frac[:, :, c])
        expected = np.where(area.max(2) > 0, np.asarray(types)[area.argmax(2)], 0)
        expected[~valid] = TYPE_FILL
        got = _flat(ds[code])
        np.testing.assert_array_equal(got, expected)
        assert ds[code].dtype == np.int16 and ds[code].encoding["_FillValue"] == TYPE_FILL
        assert list(ds[code].attrs["flag_values"]) == [0, *types]
    assert (_flat(ds.tvh)[valid] == 0).any() and set(np.unique(_flat(ds.tvh)[valid])) - {0} <= {3, 4, 5, 6, 18, 19}


def test_cropped_output_equals_the_global_subset(lulc, probability):
    spec, ds = lulc
    whole = lulc_esm(probability.isel(time=[0]), spec, global_output=True)
    part = ds.isel(time=[0])
    index = overlap_cells(spec, *source_edges(probability))
    assert dict(part.igbp_fraction.sizes)["igbp_class"] == 17
    for v in ("igbp_fraction", "pft_fraction", "cvh", "cvl", "tvh", "tvl", "land_area_fraction"):
        np.testing.assert_array_equal(part[v].values, whole[v].isel(index).values, err_msg=v)
    assert part.lat_bnds.shape[0] == index[next(iter(index))].size
    assert np.isnan(whole.cvh.values).sum() > np.isnan(part.cvh.values).sum()


def _check_lai_per_vegetation(ds, lai, probability):
    """lai_pft, lai_hv, lai_lv of ``ds`` against Σ lai·q·a / Σ q·a (the oracle), q the cover share."""
    # each month with the land cover of its year
    p = probability.values.astype(np.float64)[:, np.repeat([0, 1], 12)]  # (s, month, class, y, x)
    table = load_bats_table()
    shares = {"lai_hv": p[:, :, table.classes("high")].sum(2), "lai_lv": p[:, :, table.classes("low")].sum(2)}
    cw = load_pft_crosswalk().to_numpy()
    q_pft = np.einsum("stcyx,cp->stpyx", p, cw)
    for k, pft in enumerate(ds.pft.values):
        shares[("lai_pft", pft)] = q_pft[:, :, k]
    L = lai.values.astype(np.float64)
    for key, q in shares.items():
        q = np.where(np.isfinite(L), q, np.nan)
        num, den = _oracle(L * q, ds), _oracle(q, ds)
        expected = np.where(den > 1e-12, num / np.where(den > 0, den, 1), np.nan)
        got = _flat(ds[key] if isinstance(key, str) else ds[key[0]].sel(pft=key[1]))
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6, equal_nan=True, err_msg=str(key))


def test_lai_conservation_and_lai_per_vegetation(probability, lai):
    ds = lai_esm(lai, "5deg", land_cover=probability)
    np.testing.assert_allclose(_flat(ds.lai), _oracle(lai.values, ds), rtol=2e-6, equal_nan=True)
    _check_lai_per_vegetation(ds, lai, probability)
    # no high vegetation in a target cell: no LAI of the high vegetation there
    cover = lulc_esm(probability, "5deg")
    no_high = _flat(cover.cvh).repeat(12, axis=1) == 0
    assert no_high.any() and np.isnan(_flat(ds.lai_hv)[no_high]).all()
    assert np.isfinite(_flat(ds.lai_hv)[~no_high & np.isfinite(_flat(ds.lai))]).all()


_LAI_VARS = ("lai", "lai_pft", "lai_hv", "lai_lv")


@pytest.mark.parametrize("spec", ["5deg", "N32"])
def test_lai_cropped_output_equals_the_global_subset(spec, probability, lai):
    part = lai_esm(lai, spec, land_cover=probability)
    whole = lai_esm(lai, spec, land_cover=probability, global_output=True)
    index = overlap_cells(spec, *source_edges(lai))
    assert part.sizes[next(iter(index))] == index[next(iter(index))].size < whole.sizes[next(iter(index))]
    for v in _LAI_VARS:
        np.testing.assert_array_equal(part[v].values, whole[v].isel(index).values, err_msg=v)
    for k in ("lat_bnds", "lon_bnds"):
        np.testing.assert_array_equal(part[k].values, whole[k].isel(index, missing_dims="ignore").values)
    plain = lai_esm(lai, spec)  # without the land cover: the same total LAI
    np.testing.assert_array_equal(plain.lai.values, part.lai.values)
    assert plain.lai.attrs == part.lai.attrs and plain.lai.dtype == np.float32


def test_lai_with_gaps_in_single_months_and_streamed_in_row_bands(probability, lai):
    """Months whose valid cells differ (a cloud gap) get their own valid area; row bands change nothing."""
    gappy = lai.copy(data=lai.values.copy())
    gappy.values[0, 3, 8:14, 12:20] = np.nan  # one month of one scenario
    gappy.values[1, 17, 25:, 30:] = np.nan
    ds = lai_esm(gappy, "5deg", land_cover=probability)
    np.testing.assert_allclose(_flat(ds.lai), _oracle(gappy.values, ds), rtol=2e-6, equal_nan=True)
    _check_lai_per_vegetation(ds, gappy, probability)
    banded = lai_esm(gappy, "5deg", land_cover=probability, chunk_rows=5)
    lazy = lai_esm(gappy.chunk({"time": 5, "lat": 7}), "5deg", land_cover=probability.chunk({"lat": 9}))
    for v in _LAI_VARS:
        np.testing.assert_array_equal(banded[v].values, ds[v].values, err_msg=v)
        np.testing.assert_array_equal(lazy[v].values, ds[v].values, err_msg=v)
    frac = lulc_esm(probability, "5deg")
    np.testing.assert_array_equal(lulc_esm(probability.chunk({"lat": 9}), "5deg", chunk_rows=4).igbp_fraction.values,
                                  frac.igbp_fraction.values)


def test_written_files_are_cf_valid_and_compressed(tmp_path, probability, lai):
    lc = lulc_esm(probability, "N32")
    out = write_esm(lc, tmp_path / "lulc.nc", history="terrascale test")
    res = validate_dataset(xr.open_dataset(out), source=str(out))
    assert res.ok, res.problems
    with netCDF4.Dataset(out) as nc:
        assert nc.Conventions == "CF-1.10" and "terrascale test" in nc.history and nc.terrascale_version
        f = nc["igbp_fraction"].filters()
        assert f["zlib"] and f["shuffle"] and f["complevel"] == 4
        assert nc["tvh"].getncattr("_FillValue") == TYPE_FILL and nc["lat"].bounds == "lat_bnds"
        assert "cell_index" in nc.variables and nc["cvh"].cell_methods == "area: mean"
    la = write_esm(lai_esm(lai, "5deg"), tmp_path / "lai.nc", compression_level=9)
    res = validate_dataset(xr.open_dataset(la), source=str(la))
    assert res.ok, res.problems
    assert xr.open_dataset(la).lai.attrs["standard_name"] == "leaf_area_index"
    with pytest.raises(InputDataError, match="name it lulc.nc"):
        write_esm(lc, tmp_path / "lulc.zarr")


def test_bad_inputs_are_clear_errors(probability, lai):
    with pytest.raises(InputDataError, match=r"expected \(scenario, time, igbp_class, lat, lon\)"):
        lulc_esm(probability.isel(scenario=0), "5deg")
    with pytest.raises(InputDataError, match=r"no year \[2020\]"):
        lai_esm(lai, "5deg", land_cover=probability.isel(time=[0]))
    with pytest.raises(InputDataError, match="no scenario"):
        lai_esm(lai, "5deg", land_cover=probability.assign_coords(scenario=["a", "b"]))


def test_bats_table_loads_and_a_corrupted_copy_names_the_file(tmp_path):
    t = load_bats_table()
    assert sorted(t.frame.index) == list(range(17))
    assert set(t.types("high")) == {3, 4, 5, 6, 18, 19}  # IFS: the tree types are high vegetation
    assert set(t.types("low")) <= {1, 2, 7, 9, 10, 11, 13, 16, 17, 20}
    assert t.type_of(12) == 1 and t.type_of(1) == 3 and t.frame.loc[16, "vegetation"] == "none"
    text = DEFAULT_BATS_TABLE.read_text()
    cases = {
        "dup.csv": (text.replace("16,BAR,8,Desert,none", "15,BAR,8,Desert,none"), "repeated [15]; missing [16]"),
        "code.csv": (text.replace("10,GRA,2,", "10,GRA,25,"), "column 'bats_type' holds 25"),
        "kind.csv": (text.replace("10,GRA,2,Short grass,low", "10,GRA,2,Short grass,short"),
                     "column 'vegetation' holds 'short'"),
        "split.csv": (text.replace("14,CVM,1,Crops/mixed farming,low", "14,CVM,1,Crops/mixed farming,high"),
                      "vegetation type 1 is 'Crops/mixed farming' (low)"),
        "cols.csv": (text.replace("vegetation\n", "veg\n"), "lacks the column(s) vegetation"),
    }
    for name, (content, expected) in cases.items():
        bad = tmp_path / name
        bad.write_text(content)
        with pytest.raises(InputDataError) as err:
            load_bats_table(bad)
        assert f"BATS table {bad}" in str(err.value) and expected in str(err.value), (name, str(err.value))
