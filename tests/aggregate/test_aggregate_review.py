"""Regressions from the aggregation review: fill codes, spec sizes, chunk rows, sub-grid masks,
class/missing overlaps, error wording, GPU imports, the engine table and the NetCDF opens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import kernels
from pipeline import aggregate as agg
from pipeline.aggregate import (
    class_fractions,
    conservative_mean,
    majority_class,
    subgrid_stats,
)
from pipeline.aggregate.categorical import missing_codes
from pipeline.errors import ConfigError, InputDataError
from pipeline.grids import parse_grid, read_scrip_grid
from pipeline.weights import read_weights

ROOT = Path(__file__).resolve().parents[2]
NC_FLOAT_FILL = np.float32(9.96921e36)  # netCDF's default _FillValue for float


def _codes(dtype, seed=0, ny=36, nx=72, fill=None, fill_rows=6):
    """A class map 1..4 on a global 5° grid whose first ``fill_rows`` rows hold ``fill`` (NaN for float)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(1, 5, (ny, nx)).astype(dtype)
    if fill is not None:
        k[:fill_rows] = fill
    res = 180 / ny
    lat = -90 + res * (np.arange(ny) + 0.5)
    lon = -180 + res * (np.arange(nx) + 0.5)
    return xr.DataArray(k, dims=("lat", "lon"), coords={"lat": lat, "lon": lon}, name="lc")


def _reference_fractions(engine="numpy"):
    """Fractions of the same map as uint8 with no missing band, for comparison of the valid rows."""
    return class_fractions(_codes(np.uint8), "10deg", classes=[1, 2, 3, 4], engine=engine)


# ---- 1. fill codes: float NetCDF fill, huge integer fills ------------------------------------


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_float_map_with_netcdf_default_fill(tmp_path, engine):
    da = _codes(np.float32, fill=np.nan)
    path = tmp_path / "lc.nc"
    da.to_dataset().to_netcdf(path, encoding={"lc": {"_FillValue": NC_FLOAT_FILL}})
    lc = xr.open_dataset(path)["lc"]
    assert lc.encoding["_FillValue"] == NC_FLOAT_FILL and lc.dtype == np.float32
    frac = class_fractions(lc, "10deg", classes=[1, 2, 3, 4], engine=engine)
    vf = frac["valid_fraction"].values
    assert (vf[:3] == 0).all() and np.allclose(vf[3:], 1.0)
    ref = _reference_fractions(engine).values
    np.testing.assert_allclose(frac.values[:, 3:], ref[:, 3:], atol=1e-12)
    # the fill attribute also stays out of the LUT when it is an attribute (undecoded metadata)
    lc2 = lc.copy()
    lc2.attrs["missing_value"] = NC_FLOAT_FILL
    np.testing.assert_array_equal(class_fractions(lc2, "10deg", classes=[1, 2, 3, 4], engine=engine).values,
                                  frac.values)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", [np.uint32, np.int32, np.int64, np.uint64])
def test_huge_integer_fill_is_missing_without_a_huge_table(dtype, engine):
    fill = np.iinfo(dtype).max
    da = _codes(dtype, fill=fill)
    da.encoding["_FillValue"] = dtype(fill)
    frac = class_fractions(da, "10deg", classes=[1, 2, 3, 4], engine=engine)
    vf = frac["valid_fraction"].values
    assert (vf[:3] == 0).all() and np.allclose(vf[3:], 1.0)
    np.testing.assert_allclose(frac.values[:, 3:], _reference_fractions(engine).values[:, 3:], atol=1e-12)
    maj = majority_class(da, "10deg", classes=[1, 2, 3, 4], engine=engine)
    assert (maj.values[:3] == -1).all() and (maj.values[3:] >= 1).all()


def test_missing_codes_outside_the_dtype_are_dropped():
    da = _codes(np.uint8, fill=200)
    # 70000 and -3 cannot occur in uint8 data: no error, no table of 70001 entries
    frac = class_fractions(da, "10deg", classes=[1, 2, 3, 4], missing=[200, 70000, -3], engine="numpy")
    assert (frac["valid_fraction"].values[:3] == 0).all()
    assert missing_codes(da, [200, 70000, -3]) == [200]
    assert missing_codes(_codes(np.float32), [5, 2**40]) == [5]


def test_undeclared_huge_float_codes_are_named():
    da = _codes(np.float64, fill=3e9)
    with pytest.raises(InputDataError, match="3000000000"):
        class_fractions(da, "10deg", classes=[1, 2, 3, 4], engine="numpy")


# ---- 2. zero and negative grid sizes --------------------------------------------------------


@pytest.mark.parametrize("spec", ["r0x0", "r360x0", "r0x180", "0deg", "0.0deg", "0x1deg", "1x0deg",
                                  "0deg:-10,35,5,45", "F0", "O0", "-1deg", "r-1x10"])
def test_zero_or_negative_grid_sizes_are_config_errors(spec):
    with pytest.raises(ConfigError, match=repr(spec).replace(".", r"\.")):
        parse_grid(spec)


# ---- 3. chunk rows ----------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [0, -5, 2.5, True])
def test_bad_chunk_rows(rows):
    da = _codes(np.float64)
    with pytest.raises(ConfigError, match="chunk_rows"):
        conservative_mean(da, "10deg", chunk_rows=rows)
    with pytest.raises(ConfigError, match="chunk_rows"):
        class_fractions(da, "10deg", classes=[1, 2, 3, 4], chunk_rows=rows)


def test_chunk_rows_do_not_change_the_result():
    da = _codes(np.float64)
    ref = conservative_mean(da, "10deg").values
    for rows in (1, 5, 36, 1000):
        np.testing.assert_allclose(conservative_mean(da, "10deg", chunk_rows=rows).values, ref, rtol=1e-12)


# ---- 4. min_valid_fraction in subgrid_stats ----------------------------------------------------


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_subgrid_stats_min_valid_fraction(engine):
    rng = np.random.default_rng(1)
    da = _codes(np.float64) + rng.random((36, 72))
    da.values[rng.random(da.shape) < 0.4] = np.nan
    for thr in (0.0, 0.5, 0.8, 1.0):
        mean = conservative_mean(da, "10deg", min_valid_fraction=thr, engine=engine).values
        st = subgrid_stats(da, "10deg", stats=("mean", "std", "min", "max"), min_valid_fraction=thr, engine=engine)
        for v in st.data_vars.values():
            np.testing.assert_array_equal(np.isnan(v.values), np.isnan(mean), err_msg=f"{v.name} at {thr}")
        np.testing.assert_allclose(st["lc_mean"].values, mean, rtol=1e-12)
    # min/max only: the valid area is still measured for the mask
    st = subgrid_stats(da, "10deg", stats=("min",), min_valid_fraction=0.8, engine=engine)
    np.testing.assert_array_equal(np.isnan(st["lc_min"].values),
                                  np.isnan(conservative_mean(da, "10deg", min_valid_fraction=0.8).values))
    with pytest.raises(ConfigError, match="min_valid_fraction"):
        subgrid_stats(da, "10deg", min_valid_fraction=1.5)


# ---- 5. a code both class and missing -----------------------------------------------------------


def test_code_both_class_and_missing():
    da = _codes(np.uint8)
    with pytest.raises(ConfigError, match=r"\[2, 3\].*both classes and missing"):
        class_fractions(da, "10deg", classes=[1, 2, 3, 4], missing=[3, 2, 0])
    with pytest.raises(ConfigError, match=r"\[4\]"):
        majority_class(da, "10deg", classes=[1, 2, 3, 4], missing=[4])
    da.attrs["_FillValue"] = 1  # from the attributes too
    with pytest.raises(ConfigError, match=r"\[1\].*attributes"):
        class_fractions(da, "10deg", classes=[1, 2, 3, 4])


def test_no_data_flag_value_of_a_decoded_float_map_is_not_a_class(tmp_path):
    da = _codes(np.uint8, fill=255)
    da.attrs.update(flag_values=np.array([1, 2, 3, 4, 255], np.uint8), flag_meanings="a b c d no_data")
    path = tmp_path / "lc.nc"
    da.to_dataset().to_netcdf(path, encoding={"lc": {"_FillValue": np.uint8(255)}})
    lc = xr.open_dataset(path)["lc"]
    assert lc.dtype.kind == "f"  # decoded: the fill is NaN, flag_values still lists 255
    frac = class_fractions(lc, "10deg", engine="numpy")
    assert list(frac["class"].values) == [1, 2, 3, 4]


# ---- 6. the function named in the error ----------------------------------------------------------


def test_majority_without_classes_names_majority():
    da = _codes(np.uint8)
    with pytest.raises(ConfigError, match="majority_class of 'lc'") as err:
        majority_class(da, "10deg")
    assert "class_fractions" not in str(err.value)
    with pytest.raises(ConfigError, match="class_fractions of 'lc'"):
        class_fractions(da, "10deg")


# ---- 8. one device-array check (CuPy is imported only by kernels/gpu.py and pipeline/backend.py:
# an import-linter contract in pyproject.toml) ----------------------------------------------------


def test_device_array_detection_without_cupy():
    from kernels import array_module_of, is_device_array

    # a device array is anything exposing the CUDA array interface (CuPy, numba, cudf columns)
    fake = type("ndarray", (), {"__cuda_array_interface__": {}})()
    assert is_device_array(fake) and not is_device_array(np.zeros(2))
    assert array_module_of(np.zeros(2)) is np
    if "cupy" not in sys.modules:  # a device array while CuPy is not imported
        with pytest.raises(TypeError, match="cupy.asarray"):
            array_module_of(fake)


# ---- 9. one engine table ---------------------------------------------------------------------------


def test_aggregate_gets_kernels_from_kernels_get_engine(monkeypatch):
    calls = []
    real = kernels.get_engine

    def spy(name):
        calls.append(name)
        return real(name)

    monkeypatch.setattr(kernels, "get_engine", spy)
    da = _codes(np.float64)
    conservative_mean(da, "10deg", engine="numpy")
    conservative_mean(da, "10deg")  # auto: numba for numpy input
    assert calls == ["numpy", "numba"]
    assert not hasattr(agg, "_ENGINES")
    with pytest.raises(ConfigError, match="engine"):
        conservative_mean(da, "10deg", engine="fortran")


# ---- 10. grid and weights files that are not NetCDF -----------------------------------------------


@pytest.mark.parametrize("reader", [read_weights, read_scrip_grid, lambda p: parse_grid(f"file:{p}")])
def test_non_netcdf_grid_or_weights_file(reader, tmp_path):
    text = tmp_path / "README.md"
    text.write_text("# not a NetCDF file\n")
    with pytest.raises(InputDataError, match="neither NetCDF nor Zarr") as err:
        reader(text)
    msg = str(err.value)
    assert "README.md" in msg and "backends" not in msg and len(msg) < 300
    with pytest.raises(InputDataError, match="does not exist"):
        reader(tmp_path / "nope.nc")
    store = tmp_path / "w.zarr"
    store.mkdir()
    (store / ".zgroup").write_text('{"zarr_format": 2}')
    with pytest.raises(InputDataError, match="NetCDF"):
        reader(store)
