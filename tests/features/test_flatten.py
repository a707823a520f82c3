"""flatten / unflatten: exact round trips (pandas and dask), row order, dtypes, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.backend import probe_gpu
from pipeline.errors import InputDataError
from pipeline.features import (
    CellIndex,
    flatten,
    flatten_dask,
    make_cell_index,
    unflatten,
)


def _grid_ds(rng, nscen, nt, ny, nx, nan_frac, dtype="float32"):
    lat = np.sort(rng.uniform(-60, 60, ny)) if ny > 1 else np.array([10.0])
    lat = np.unique(lat) if np.unique(lat).size == ny else np.linspace(-60, 60, ny)
    lon = np.linspace(-180, 179, nx)
    a = rng.standard_normal((nscen, nt, ny, nx)).astype(dtype)
    a[rng.random(a.shape) < nan_frac] = np.nan
    b = rng.standard_normal((nt, ny, nx))  # float64, no scenario dim
    k = rng.integers(1, 6, (ny, nx)).astype(np.uint8)  # static integer
    return xr.Dataset(
        {"y": (("scenario", "time", "lat", "lon"), a), "x": (("time", "lat", "lon"), b), "k": (("lat", "lon"), k)},
        coords={"scenario": [f"s{i}" for i in range(nscen)],
                "time": pd.date_range("2000-01-01", periods=nt, freq="MS"), "lat": lat, "lon": lon},
    )


grids = st.tuples(
    st.integers(1, 2), st.integers(1, 4), st.integers(1, 6), st.integers(1, 7),
    st.floats(0, 0.5), st.floats(0.05, 1.0), st.integers(0, 2**31 - 1),
)


def _mask(rng, ny, nx, keep):
    m = rng.random((ny, nx)) < keep
    m.flat[rng.integers(m.size)] = True  # at least one cell
    return m


def _expected(ds, mask):
    full = ds.broadcast_like(ds["y"]).transpose("scenario", "time", "lat", "lon")
    return {v: full[v].where(mask) for v in ("y", "x", "k")}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grids)
def test_round_trip_pandas_is_exact(params):
    nscen, nt, ny, nx, nan_frac, keep, seed = params
    rng = np.random.default_rng(seed)
    ds = _grid_ds(rng, nscen, nt, ny, nx, nan_frac)
    mask = _mask(rng, ny, nx, keep)
    df = flatten(ds, target="y", mask=mask)
    assert len(df) == nscen * nt * mask.sum()
    assert list(df.columns) == ["scenario", "time", "cell", "y", "x", "k"]
    assert df["y"].dtype == np.float32 and df["x"].dtype == np.float64 and df["k"].dtype == np.uint8
    back = unflatten(df, like=ds)
    exp = _expected(ds, mask)
    assert back["y"].dtype == np.float32
    np.testing.assert_array_equal(back["y"].values, exp["y"].values)  # NaN == NaN, bit for bit
    np.testing.assert_array_equal(back["x"].values, exp["x"].values)
    np.testing.assert_array_equal(back["k"].values, exp["k"].values.astype(np.float64))
    assert back["y"].dims == ("scenario", "time", "lat", "lon")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grids, st.integers(1, 50))
def test_round_trip_dask_equals_pandas(params, partition_rows):
    nscen, nt, ny, nx, nan_frac, keep, seed = params
    rng = np.random.default_rng(seed)
    ds = _grid_ds(rng, nscen, nt, ny, nx, nan_frac).chunk({"time": 1})
    mask = _mask(rng, ny, nx, keep)
    ddf = flatten_dask(ds, target="y", mask=mask, categorical=["k"], partition_rows=partition_rows)
    eager = flatten(ds, target="y", mask=mask, categorical=["k"])
    # partitions: one per block of max(1, rows // cells) time steps, per scenario
    step = max(1, partition_rows // int(mask.sum()))
    assert ddf.npartitions == nscen * -(-nt // step)
    got = ddf.compute(scheduler="sync").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, eager)
    back = unflatten(ddf, like=ds)
    np.testing.assert_array_equal(back["y"].values, _expected(ds, mask)["y"].values)


def test_row_order_is_documented_order():
    rng = np.random.default_rng(1)
    ds = _grid_ds(rng, 2, 3, 4, 5, 0.0)
    mask = np.zeros((4, 5), bool)
    mask[0, 4] = mask[2, 1] = mask[3, 0] = True
    df = flatten(ds, target="y", mask=mask)
    cells = [4, 11, 15]  # i_lat * nlon + i_lon, ascending
    assert df["cell"].tolist() == cells * 6
    assert df["scenario"].astype(str).tolist() == ["s0"] * 9 + ["s1"] * 9
    assert df["time"].tolist() == [t for t in ds.time.values.astype("datetime64[ns]") for _ in cells] * 2
    assert df["y"].tolist() == [float(ds["y"].values[s, t, c // 5, c % 5]) for s in range(2) for t in range(3) for c in cells]
    assert isinstance(df.index, pd.RangeIndex)


def test_unflatten_after_dropping_and_shuffling_rows():
    rng = np.random.default_rng(2)
    ds = _grid_ds(rng, 1, 3, 5, 6, 0.3)
    df = flatten(ds, target="y")
    kept = df.dropna(subset=["y"]).sample(frac=1.0, random_state=0)
    back = unflatten(kept, like=ds, columns=["y"])
    np.testing.assert_array_equal(back["y"].values, ds["y"].values)  # NaN where no row = NaN where NaN


def test_unflatten_array_with_index_frame():
    rng = np.random.default_rng(3)
    ds = _grid_ds(rng, 1, 2, 3, 4, 0.0)
    mask = _mask(rng, 3, 4, 0.5)
    df = flatten(ds, target="y", mask=mask)
    pred = df["x"].to_numpy() * 2
    out = unflatten(pred, like=ds, index=df[["scenario", "time", "cell"]], name="pred")
    assert out.name == "pred"
    exp = (2 * ds["x"]).where(mask).broadcast_like(ds["y"]).transpose(*out.dims)
    np.testing.assert_array_equal(out.values, exp.values)


def test_integer_fill_value_keeps_dtype():
    rng = np.random.default_rng(4)
    ds = _grid_ds(rng, 1, 1, 3, 3, 0.0)
    mask = np.eye(3, dtype=bool)
    back = unflatten(flatten(ds, target="y", mask=mask), like=ds, columns=["k"], fill_value=0)
    assert back["k"].dtype == np.uint8
    np.testing.assert_array_equal(back["k"].values[0, 0], np.where(mask, ds["k"].values, 0))


def test_categorical_dtype_preserved_and_round_trips():
    rng = np.random.default_rng(5)
    ds = _grid_ds(rng, 1, 2, 4, 4, 0.0)
    mask = _mask(rng, 4, 4, 0.7)
    df = flatten(ds, target="y", mask=mask, categorical=["k"], categories={"k": [1, 2, 3, 4, 5, 6]})
    assert isinstance(df["k"].dtype, pd.CategoricalDtype)
    assert list(df["k"].cat.categories) == [1, 2, 3, 4, 5, 6]  # unused categories kept
    assert isinstance(df["scenario"].dtype, pd.CategoricalDtype)
    back = unflatten(df, like=ds, columns=["k"])
    np.testing.assert_array_equal(back["k"].values[0, 0], np.where(mask, ds["k"].values, np.nan))


def test_all_valid_mask_is_zero_copy_for_float_columns():
    ds = _grid_ds(np.random.default_rng(6), 1, 1, 3, 4, 0.0)
    df = flatten(ds, predictors=["x"])
    assert np.shares_memory(df["x"].to_numpy(), ds["x"].values)


def test_empty_mask_is_an_input_error():
    ds = _grid_ds(np.random.default_rng(7), 1, 1, 3, 4, 0.0)
    with pytest.raises(InputDataError, match="leaves no cell"):
        flatten(ds, target="y", mask=np.zeros((3, 4), bool))
    with pytest.raises(InputDataError, match="leaves no cell"):
        make_cell_index(ds.lat, ds.lon, xr.DataArray(np.full((3, 4), np.nan), dims=("lat", "lon")))


def test_missing_predictor_names_it_and_lists_what_exists():
    ds = _grid_ds(np.random.default_rng(8), 1, 1, 3, 4, 0.0)
    with pytest.raises(InputDataError) as err:
        flatten(ds, target="y", predictors=["x", "tmax"], source="climate.zarr")
    msg = str(err.value)
    assert "'tmax'" in msg and "climate.zarr" in msg and "y, x, k" in msg


def test_mask_of_wrong_shape_and_missing_coords():
    ds = _grid_ds(np.random.default_rng(9), 1, 1, 3, 4, 0.0)
    with pytest.raises(InputDataError, match="shape"):
        flatten(ds, target="y", mask=np.ones((4, 3), bool))
    with pytest.raises(InputDataError, match="no lat"):
        flatten(ds.rename({"lat": "latitude"}), target="y")


def test_gather_matches_numpy_reference():
    rng = np.random.default_rng(10)
    m = rng.random((7, 9)) < 0.4
    idx = CellIndex(np.arange(7.0), np.arange(9.0), m)
    for dtype in (np.float32, np.float64, np.uint8, np.int16):
        a = (rng.random((3, 7, 9)) * 100).astype(dtype)
        np.testing.assert_array_equal(idx.gather(a), a.reshape(3, -1)[:, m.ravel()])


@pytest.mark.gpu
@pytest.mark.skipif(not probe_gpu().usable, reason="no usable GPU")
def test_gpu_flatten_matches_cpu():  # pragma: no cover - needs a GPU
    import cupy

    rng = np.random.default_rng(11)
    ds = _grid_ds(rng, 2, 3, 5, 6, 0.2)
    mask = _mask(rng, 5, 6, 0.6)
    cpu = flatten(ds, target="y", mask=mask, categorical=["k"])
    gpu = flatten(ds, target="y", mask=mask, categorical=["k"], backend="gpu")
    assert isinstance(gpu["y"].values, cupy.ndarray)
    pd.testing.assert_frame_equal(gpu.to_pandas(), cpu, check_categorical=False)
    back = unflatten(gpu, like=ds)
    np.testing.assert_array_equal(back["y"].values, _expected(ds, mask)["y"].values)
