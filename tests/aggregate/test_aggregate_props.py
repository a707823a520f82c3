"""Properties of the aggregation (hypothesis), engines, categorical API and bad input."""

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.aggregate import (
    class_fractions,
    conservative_mean,
    majority_class,
    subgrid_stats,
    to_dataset,
)
from pipeline.errors import BackendError, ConfigError, InputDataError
from pipeline.grids import parse_grid, source_axes

SETTINGS = dict(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RES = st.sampled_from([2.0, 3.0, 4.0, 5.0, 6.0, 7.5])
TARGETS = st.sampled_from(["10deg", "12deg", "F4", "F6", "N32", "O8", "6deg:-30,-12,30,24"])


def field(res, seed, nan_frac=0.0, lead=None):
    ny, nx = int(round(180 / res)), int(round(360 / res))
    lat = -90 + res * (np.arange(ny) + 0.5)
    lon = -180 + res * (np.arange(nx) + 0.5)
    rng = np.random.default_rng(seed)
    shape = ((lead,) if lead else ()) + (ny, nx)
    x = rng.normal(10, 3, shape)
    x[rng.random(shape) < nan_frac] = np.nan
    dims = (("time",) if lead else ()) + ("lat", "lon")
    return xr.DataArray(x, dims=dims, coords={"lat": lat, "lon": lon}, name="x", attrs={"units": "m2 m-2"})


@settings(**SETTINGS)
@given(res=RES, target=TARGETS, c=st.floats(-1e6, 1e6, allow_nan=False), nan=st.floats(0, 0.6), seed=st.integers(0, 99))
def test_constant_stays_constant(res, target, c, nan, seed):
    da = field(res, seed, nan) * 0 + c
    out = conservative_mean(da, target).values
    ok = np.isfinite(out)
    assert ok.any()
    assert np.allclose(out[ok], c, rtol=1e-12, atol=1e-9)


@settings(**SETTINGS)
@given(res=RES, target=st.sampled_from(["10deg", "F4", "F6", "N32", "O8"]), seed=st.integers(0, 99))
def test_area_integral_conserved(res, target, seed):
    da = field(res, seed)
    src_area = source_axes(da).grid.cell_areas(1.0)
    dst_area = parse_grid(target).cell_areas(1.0)
    out = conservative_mean(da, target).values
    a, b = float((da.values * src_area).sum()), float((out * dst_area).sum())
    assert abs(a - b) <= 1e-12 * abs(a)


@settings(**SETTINGS)
@given(res=RES, nan=st.floats(0, 0.5), seed=st.integers(0, 99))
def test_identity_on_own_grid(res, nan, seed):
    da = field(res, seed, nan, lead=2)
    own = parse_grid(f"{res:g}deg")
    out = conservative_mean(da, own)
    np.testing.assert_array_equal(np.isnan(out.values), np.isnan(da.values))
    np.testing.assert_allclose(out.values, da.values, rtol=1e-13)


@settings(**SETTINGS)
@given(res=RES, target=TARGETS, seed=st.integers(0, 99), ncls=st.integers(1, 6))
def test_class_fractions_sum_to_one_and_areas_preserved(res, target, seed, ncls):
    rng = np.random.default_rng(seed)
    base = field(res, seed)
    k = rng.integers(1, ncls + 1, base.shape).astype(np.uint8)
    k[rng.random(base.shape) < 0.2] = 0
    da = base.copy(data=k)
    f = class_fractions(da, target, classes=list(range(1, ncls + 1)), missing=[0])
    tot = f.sum("class", skipna=False).values
    valid = f.valid_fraction.values > 0
    assert np.allclose(tot[valid], 1, atol=1e-12) and np.isnan(tot[~valid]).all()
    if parse_grid(target).is_global:
        src_area = source_axes(da).grid.cell_areas(1.0)
        dst_area = parse_grid(target).cell_areas(1.0)
        for i, c in enumerate(range(1, ncls + 1)):
            a = src_area[k == c].sum()
            b = np.nansum(f.isel({"class": i}).values * f.valid_fraction.values * dst_area)
            assert abs(a - b) <= 1e-10 * a


@pytest.mark.parametrize("target", ["10deg", "N32", "O8"])
def test_engines_agree(target):
    da = field(3.0, 1, 0.2, lead=3)
    a = conservative_mean(da, target, engine="numpy").values
    b = conservative_mean(da, target, engine="numba").values
    np.testing.assert_allclose(a, b, rtol=1e-12)
    k = da.isel(time=0).copy(data=np.nan_to_num(da.isel(time=0).values).astype(int) % 4)
    fa = class_fractions(k, target, classes=[0, 1, 2, 3], engine="numpy").values
    fb = class_fractions(k, target, classes=[0, 1, 2, 3], engine="numba").values
    np.testing.assert_allclose(fa, fb, rtol=1e-12)
    sa, sb = subgrid_stats(da, target, engine="numpy"), subgrid_stats(da, target, engine="numba")
    for v in sa:  # one-pass variance: ~sqrt(eps) * |x - shift| absolute noise where the std is ~0
        np.testing.assert_allclose(sa[v].values, sb[v].values, rtol=1e-9, atol=1e-6)


def test_chunking_and_layout_do_not_change_results():
    da = field(2.0, 3, 0.3, lead=2)
    ref = conservative_mean(da, "N32").values
    for chunk in (4, 45):
        np.testing.assert_allclose(conservative_mean(da, "N32", chunk_rows=chunk).values, ref, rtol=1e-13)
    flipped = da.isel(lat=slice(None, None, -1))
    np.testing.assert_allclose(conservative_mean(flipped, "N32", chunk_rows=11).values, ref, rtol=1e-13)
    dask = da.chunk({"lat": 13})
    np.testing.assert_allclose(conservative_mean(dask, "N32").values, ref, rtol=1e-13)


def test_subgrid_stats_match_numpy_on_nested_blocks():
    da = field(2.0, 4, 0.0)  # 2 deg -> 10 deg: 5 x 5 blocks of cells
    st_ = subgrid_stats(da, "10deg", stats=("mean", "std", "min", "max"))
    blocks = da.values.reshape(18, 5, 36, 5).transpose(0, 2, 1, 3).reshape(18, 36, 25)
    w = source_axes(da).grid.cell_areas(1.0).reshape(18, 5, 36, 5).transpose(0, 2, 1, 3).reshape(18, 36, 25)
    mean = (blocks * w).sum(-1) / w.sum(-1)
    std = np.sqrt((w * (blocks - mean[..., None]) ** 2).sum(-1) / w.sum(-1))
    np.testing.assert_allclose(st_.x_mean.values, mean, rtol=1e-12)
    np.testing.assert_allclose(st_.x_std.values, std, rtol=1e-8)
    np.testing.assert_array_equal(st_.x_min.values, blocks.min(-1))
    np.testing.assert_array_equal(st_.x_max.values, blocks.max(-1))
    assert st_.x_std.attrs["cell_methods"] == "area: standard_deviation"


def test_min_valid_fraction_and_skipna():
    da = field(2.0, 5, 0.0)
    x = da.values.copy()
    x[0, 0] = np.nan  # 1 of the 25 cells of target (0, 0)
    x[5:10, 5:10] = np.nan
    x[5:10, 5:7] = 1.0
    da = da.copy(data=x)
    out = conservative_mean(da, "10deg")
    assert np.isfinite(out.values[0, 0]) and np.isfinite(out.values[1, 1])
    strict = conservative_mean(da, "10deg", skipna=False)
    assert np.isnan(strict.values[0, 0]) and np.isnan(strict.values[1, 1]) and np.isfinite(strict.values[2, 2])
    half = conservative_mean(da, "10deg", min_valid_fraction=0.5)
    assert np.isnan(half.values[1, 1]) and np.isfinite(half.values[0, 0])
    with pytest.raises(ConfigError):
        conservative_mean(da, "10deg", min_valid_fraction=2)


def test_majority_and_crosswalk(tmp_path):
    da = field(2.0, 6).copy(data=np.ones((90, 180), dtype=np.uint8))
    k = da.values
    k[:5, :5] = 2
    k[:5, :2] = 3  # target (0,0): 15 cells class 2, 10 class 3
    k[5:10, :5] = 0  # target (1,0): no data
    da = da.copy(data=k)
    da.attrs.update(flag_values=[1, 2, 3], flag_meanings="forest grass crop")
    maj = majority_class(da, "10deg", missing=[0])
    assert maj.values[0, 0] == 2 and maj.values[0, 1] == 1 and maj.values[1, 0] == -1
    assert maj.attrs["flag_meanings"] == "forest grass crop"
    table = tmp_path / "pft.csv"
    table.write_text("class,tree,herb\n1,1.0,0.0\n2,0.0,1.0\n3,0.25,0.75\n")
    pft = class_fractions(da, "10deg", missing=[0], crosswalk=table)
    assert list(pft.pft.values) == ["tree", "herb"]
    # target (0,0) holds areas of classes 2 and 3 with cos-lat weights: check against class fractions
    f = class_fractions(da, "10deg", missing=[0])
    np.testing.assert_allclose(pft.sel(pft="tree").values, f.values[0] + 0.25 * f.values[2], rtol=1e-12)
    np.testing.assert_allclose(pft.sum("pft").values[0], 1.0)
    with pytest.raises(ConfigError, match=r"classes \[3\]"):
        class_fractions(da, "10deg", missing=[0], crosswalk={1: {"tree": 1.0}, 2: {"herb": 1.0}})
    ds = to_dataset(f, grid="10deg")
    assert "lat_bnds" in ds and ds.lat.attrs["bounds"] == "lat_bnds" and f.attrs["standard_name"] == "area_fraction"


def test_undeclared_classes_are_named():
    da = field(4.0, 7).copy(data=np.ones((45, 90), dtype=np.uint8))
    k = da.values
    k[3, 3], k[4, 4], k[5, 5] = 7, 9, 200
    with pytest.raises(InputDataError, match=r"\[7, 9, 200\]"):
        class_fractions(da.copy(data=k), "10deg", classes=[1, 2])
    big = da.copy(data=k.astype(np.int32) * 1000)
    with pytest.raises(InputDataError, match="7000"):
        class_fractions(big, "10deg", classes=[1000])
    with pytest.raises(InputDataError, match="non-integer"):
        class_fractions(da.copy(data=k + 0.5), "10deg", classes=[1])


def test_bad_inputs():
    da = field(4.0, 8)
    with pytest.raises(InputDataError, match="do not overlap"):
        conservative_mean(da.sel(lat=slice(0, 40), lon=slice(0, 40)), "1deg:100,-40,120,-20")
    with pytest.raises(InputDataError, match="latitude and longitude"):
        conservative_mean(xr.DataArray(np.zeros((4, 4)), dims=("a", "b"), name="q"), "10deg")
    with pytest.raises(ConfigError, match="engine"):
        conservative_mean(da, "10deg", engine="fortran")
    try:
        import cupy

        has_gpu = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001
        has_gpu = False
    if not has_gpu:
        with pytest.raises(BackendError, match="cupy"):
            conservative_mean(da, "10deg", engine="cupy")
