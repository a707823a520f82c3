"""Streaming options: chunk rows, and the valid-area mask of sub-grid statistics."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.aggregate import (
    class_fractions,
    conservative_mean,
    subgrid_stats,
)
from pipeline.errors import ConfigError
from tests.helpers.class_maps import class_map


@pytest.mark.parametrize("rows", [0, -5, 2.5, True])
def test_bad_chunk_rows(rows):
    da = class_map(np.float64)
    with pytest.raises(ConfigError, match="chunk_rows"):
        conservative_mean(da, "10deg", chunk_rows=rows)
    with pytest.raises(ConfigError, match="chunk_rows"):
        class_fractions(da, "10deg", classes=[1, 2, 3, 4], chunk_rows=rows)


def test_chunk_rows_do_not_change_the_result():
    da = class_map(np.float64)
    ref = conservative_mean(da, "10deg").values
    for rows in (1, 5, 36, 1000):
        np.testing.assert_allclose(conservative_mean(da, "10deg", chunk_rows=rows).values, ref, rtol=1e-12)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_subgrid_stats_min_valid_fraction(engine):
    rng = np.random.default_rng(1)
    da = class_map(np.float64) + rng.random((36, 72))
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
