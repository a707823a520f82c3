"""The LULC task table from the real demo stores: rows, parents, areas and group fractions agree."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pipeline.datasets import load_class_table, write_demo_stores
from pipeline.errors import InputDataError
from pipeline.features import lulc_table
from pipeline.grids import parse_grid


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    out = tmp_path_factory.mktemp("lulc") / "inputs"
    paths = write_demo_stores(out, region="39,41,-4,-1", years="2019:2020", scenarios="ssp126", seed=0)
    return xr.open_zarr(paths["static"]).load(), xr.open_zarr(paths["lulc_coarse"]).load()


def test_rows_reproduce_the_coarse_group_fractions(stores):
    static, coarse = stores
    t = lulc_table(static, coarse["lulc_fraction_2019"])
    f = t.frame
    assert (f["igbp"] != 255).all() and f["cell"].is_monotonic_increasing
    assert len(f) == int((static["igbp"].values != 255).sum())
    group_of = load_class_table().frame["group"]
    g = group_of.reindex(f["igbp"].to_numpy()).to_numpy()
    n = int(np.prod(t.coarse_shape))
    den = np.bincount(f["parent"], weights=f["area"], minlength=n)
    for k, name in enumerate(t.groups):
        num = np.bincount(f["parent"], weights=f["area"] * (g == name), minlength=n)
        ref = coarse["lulc_fraction_2019"].values[k].ravel()
        ok = den > 0
        np.testing.assert_allclose(num[ok] / den[ok], ref[ok], atol=1e-6)
        # every row carries its parent's fraction
        np.testing.assert_allclose(f[t.group_columns[name]], ref[f["parent"]], rtol=1e-6)


def test_areas_are_the_exact_cell_areas(stores):
    static, coarse = stores
    t = lulc_table(static, coarse["lulc_fraction_2019"], valid=np.ones(static["igbp"].shape, bool))
    grid = parse_grid("0.05deg:-4,39,-1,41").cell_areas().ravel()
    np.testing.assert_allclose(t.frame["area"], grid, rtol=1e-12)


def test_a_scenario_year_gives_rows_to_downscale(stores):
    static, coarse = stores
    frac = coarse["lulc_fraction"].sel(scenario="ssp126").isel(time=-1)
    t = lulc_table(static, frac, target=None, valid=static["igbp"].values != 255)
    assert "igbp" not in t.frame and len(t.frame) > 0


def test_fractions_without_groups_are_refused(stores):
    static, coarse = stores
    with pytest.raises(InputDataError, match="group"):
        lulc_table(static, coarse["valid_area"])
