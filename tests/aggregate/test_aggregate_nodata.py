"""A no-data code listed among flag_values (as the demo's IGBP map does) is not a class."""

from __future__ import annotations

import numpy as np
import xarray as xr

from pipeline.aggregate import class_fractions, majority_class
from pipeline.grids import parse_grid


def _igbp_like() -> xr.DataArray:
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 4, (40, 60)).astype("uint8")
    codes[:5, :] = 255  # a no-data band
    lat = -9.875 + 0.25 * np.arange(40)
    lon = 0.125 + 0.25 * np.arange(60)
    return xr.DataArray(
        codes, dims=("lat", "lon"), name="igbp",
        coords={"lat": ("lat", lat, {"units": "degrees_north"}), "lon": ("lon", lon, {"units": "degrees_east"})},
        attrs={"flag_values": [0, 1, 2, 3, 255], "flag_meanings": "w a b c no_data", "no_data_value": 255},
    )


def test_no_data_flag_is_skipped_and_fractions_sum_to_one():
    da = _igbp_like()
    frac = class_fractions(da, parse_grid("1deg"), engine="numpy")
    assert list(frac["class"].values) == [0, 1, 2, 3]
    total = frac.sum("class", skipna=False)
    valid = np.isfinite(total.values)
    assert valid.sum() > 0
    np.testing.assert_allclose(total.values[valid], 1.0, atol=1e-12)
    # the no-data band covers -10 .. -8.75: row -10..-9 has no valid area, row -9..-8 a quarter less
    covered = dict(lon=slice(0, 15))
    vf = frac["valid_fraction"]
    np.testing.assert_array_equal(vf.sel(lat=-9.5, **covered).values, 0.0)
    np.testing.assert_allclose(vf.sel(lat=-8.5, **covered).values, 0.75, atol=2e-3)
    np.testing.assert_allclose(vf.sel(lat=-7.5, **covered).values, 1.0, atol=1e-12)


def test_majority_never_picks_no_data():
    out = majority_class(_igbp_like(), parse_grid("1deg"), engine="numpy")
    values = out.values[np.isfinite(out.values.astype(float)) & (out.values >= 0)]
    assert values.size and set(np.unique(values)) <= {0, 1, 2, 3}


def test_shipped_igbp_crosswalk_csv_gives_pft_fractions():
    from pipeline.datasets.classes import DEFAULT_PFT_CROSSWALK, load_pft_crosswalk

    da = _igbp_like()
    pft = class_fractions(da, parse_grid("1deg"), crosswalk=DEFAULT_PFT_CROSSWALK, engine="numpy")
    table = load_pft_crosswalk()
    assert pft.name == "pft_fraction"
    assert list(pft["pft"].values) == list(table.columns)  # the label column short_name is not a PFT
    cls = class_fractions(da, parse_grid("1deg"), engine="numpy")
    expected = np.einsum("kyx,kp->pyx", np.nan_to_num(cls.values), table.loc[[0, 1, 2, 3]].to_numpy())
    ok = np.isfinite(pft.values)
    np.testing.assert_allclose(pft.values[ok], expected[ok], atol=1e-12)
    np.testing.assert_allclose(pft.sum("pft", skipna=False).values[ok[0]], 1.0, atol=1e-12)
