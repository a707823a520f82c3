"""Class and no-data codes of categorical fields: fills, huge codes, codes both class and missing, wording."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pipeline.aggregate import (
    class_fractions,
    majority_class,
)
from pipeline.aggregate.categorical import missing_codes
from pipeline.errors import ConfigError, InputDataError
from tests.helpers.class_maps import NC_FLOAT_FILL, class_map


def _reference_fractions(engine="numpy"):
    """Fractions of the same map as uint8 with no missing band, for comparison of the valid rows."""
    return class_fractions(class_map(np.uint8), "10deg", classes=[1, 2, 3, 4], engine=engine)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_float_map_with_netcdf_default_fill(tmp_path, engine):
    da = class_map(np.float32, fill=np.nan)
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
    da = class_map(dtype, fill=fill)
    da.encoding["_FillValue"] = dtype(fill)
    frac = class_fractions(da, "10deg", classes=[1, 2, 3, 4], engine=engine)
    vf = frac["valid_fraction"].values
    assert (vf[:3] == 0).all() and np.allclose(vf[3:], 1.0)
    np.testing.assert_allclose(frac.values[:, 3:], _reference_fractions(engine).values[:, 3:], atol=1e-12)
    maj = majority_class(da, "10deg", classes=[1, 2, 3, 4], engine=engine)
    assert (maj.values[:3] == -1).all() and (maj.values[3:] >= 1).all()


def test_missing_codes_outside_the_dtype_are_dropped():
    da = class_map(np.uint8, fill=200)
    # 70000 and -3 cannot occur in uint8 data: no error, no table of 70001 entries
    frac = class_fractions(da, "10deg", classes=[1, 2, 3, 4], missing=[200, 70000, -3], engine="numpy")
    assert (frac["valid_fraction"].values[:3] == 0).all()
    assert missing_codes(da, [200, 70000, -3]) == [200]
    assert missing_codes(class_map(np.float32), [5, 2**40]) == [5]


def test_undeclared_huge_float_codes_are_named():
    da = class_map(np.float64, fill=3e9)
    with pytest.raises(InputDataError, match="3000000000"):
        class_fractions(da, "10deg", classes=[1, 2, 3, 4], engine="numpy")


def test_code_both_class_and_missing():
    da = class_map(np.uint8)
    with pytest.raises(ConfigError, match=r"\[2, 3\].*both classes and missing"):
        class_fractions(da, "10deg", classes=[1, 2, 3, 4], missing=[3, 2, 0])
    with pytest.raises(ConfigError, match=r"\[4\]"):
        majority_class(da, "10deg", classes=[1, 2, 3, 4], missing=[4])
    da.attrs["_FillValue"] = 1  # from the attributes too
    with pytest.raises(ConfigError, match=r"\[1\].*attributes"):
        class_fractions(da, "10deg", classes=[1, 2, 3, 4])


def test_no_data_flag_value_of_a_decoded_float_map_is_not_a_class(tmp_path):
    da = class_map(np.uint8, fill=255)
    da.attrs.update(flag_values=np.array([1, 2, 3, 4, 255], np.uint8), flag_meanings="a b c d no_data")
    path = tmp_path / "lc.nc"
    da.to_dataset().to_netcdf(path, encoding={"lc": {"_FillValue": np.uint8(255)}})
    lc = xr.open_dataset(path)["lc"]
    assert lc.dtype.kind == "f"  # decoded: the fill is NaN, flag_values still lists 255
    frac = class_fractions(lc, "10deg", engine="numpy")
    assert list(frac["class"].values) == [1, 2, 3, 4]


def test_majority_without_classes_names_majority():
    da = class_map(np.uint8)
    with pytest.raises(ConfigError, match="majority_class of 'lc'") as err:
        majority_class(da, "10deg")
    assert "class_fractions" not in str(err.value)
    with pytest.raises(ConfigError, match="class_fractions of 'lc'"):
        class_fractions(da, "10deg")
