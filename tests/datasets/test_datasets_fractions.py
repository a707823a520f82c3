"""Class tables and coarse fractions: exact area conservation, sums to one, replaceable tables."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.datasets import (
    class_area_fractions,
    load_class_table,
    load_igbp,
    load_pft_crosswalk,
    lulc_fractions_2019,
)
from pipeline.datasets.classes import DEFAULT_CLASS_TABLE, DEFAULT_PFT_CROSSWALK
from pipeline.datasets.window import GridWindow
from pipeline.errors import InputDataError


@pytest.fixture(scope="module")
def global_igbp():
    return load_igbp("global")


@pytest.mark.parametrize("res", [0.25])
def test_coarse_fractions_reproduce_fine_class_areas_exactly(global_igbp, res):
    classes = global_igbp["igbp"].values
    win = GridWindow.from_bounds(-90, 90, -180, 180, 0.05)
    factor = round(res / 0.05)
    frac, valid_area = class_area_fractions(classes, win, factor, 17, 255)
    fine_area = win.cell_area_m2()
    valid = ~np.isnan(frac[0])
    np.testing.assert_allclose(frac.sum(axis=0)[valid], 1.0, rtol=0, atol=1e-12)
    for k in range(17):
        exact = fine_area[classes == k].sum()
        coarse = np.nansum(frac[k] * valid_area)
        assert coarse == pytest.approx(exact, rel=1e-12, abs=1.0), k
    # an invalid coarse cell is one without any valid fine cell
    nodata_blocks = (classes == 255).reshape(classes.shape[0] // factor, factor, -1, factor).all(axis=(1, 3))
    np.testing.assert_array_equal(~valid, nodata_blocks)


def test_area_weights_matter_for_fractions():
    """Two classes in the upper/lower halves of a high-latitude cell: fractions follow area, not counts."""
    win = GridWindow.from_bounds(80, 81, 0, 1, 0.05)
    classes = np.zeros((20, 20), np.uint8)
    classes[10:] = 1  # the northern half (smaller cells)
    frac, _ = class_area_fractions(classes, win, 20, 2)
    s = np.sin(np.deg2rad([80, 80.5, 81]))
    assert frac[1, 0, 0] == pytest.approx((s[2] - s[1]) / (s[2] - s[0]), rel=1e-12)
    assert frac[1, 0, 0] < 0.5


def test_lulc_fractions_2019_groups_sum_to_one():
    ds = lulc_fractions_2019("iberia", 0.25)
    g = ds["lulc_fraction_2019"]
    assert g.sizes == {"group": 10, "lat": 32, "lon": 56}
    assert "cropland" in list(g["group"].values)
    np.testing.assert_allclose(g.sum("group").values, 1.0, atol=1e-6)
    # groups are sums of classes: cropland = croplands (12) + mosaics (14)
    c = ds["igbp_fraction_2019"]
    np.testing.assert_allclose(g.sel(group="cropland"), c.sel(igbp_class=12) + c.sel(igbp_class=14), atol=1e-6)


def test_class_table_and_crosswalk():
    t = load_class_table()
    assert t.groups[:2] == ("water_snow_wetland", "needleleaf_forest") and len(t.groups) == 10
    lut = t.group_index()
    assert lut[12] == lut[14] == t.groups.index("cropland") and lut[255] == -1
    lo, hi, ev = t.lai_lookup()
    assert np.isnan(hi[0]) and np.isnan(hi[255]) and hi[2] == 6.0 and ev[1] == 1
    cw = load_pft_crosswalk()
    assert cw.shape[0] == 17 and np.allclose(cw.sum(axis=1), 1)
    assert cw.loc[12, "crop"] > 0.9


def test_replacement_tables_are_checked(tmp_path):
    bad = tmp_path / "crosswalk.csv"
    text = DEFAULT_PFT_CROSSWALK.read_text().replace("12,CRO,0,0,0,0,0,0.05,", "12,CRO,0,0,0,0,0,0.15,")
    bad.write_text(text)
    with pytest.raises(InputDataError, match=r"class value\(s\) \[12\] sum to \[1.1\]"):
        load_pft_crosswalk(bad)
    tab = tmp_path / "classes.csv"
    tab.write_text(DEFAULT_CLASS_TABLE.read_text().replace(",lai_max,", ",laimax,"))
    with pytest.raises(InputDataError, match="lacks the column"):
        load_class_table(tab)
    with pytest.raises(InputDataError, match="does not exist"):
        load_class_table(tmp_path / "nope.csv")
    # a valid replacement is used: regroup mosaics as grassland
    ok = tmp_path / "ok.csv"
    ok.write_text(DEFAULT_CLASS_TABLE.read_text().replace("#ff6d4c,cropland", "#ff6d4c,grassland"))
    assert load_class_table(ok).group_index()[14] == load_class_table(ok).groups.index("grassland")


@pytest.mark.parametrize("fine, coarse", [(0.0, 1.0), (0.25, 0.0), (-0.25, 1.0), (0.25, -1.0), (float("nan"), 1.0)])
def test_coarsen_factor_rejects_non_positive_resolutions(fine, coarse):
    from pipeline.datasets.fractions import coarsen_factor
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="positive"):
        coarsen_factor(fine, coarse)
