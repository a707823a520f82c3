"""Plans (pipeline.aggregate.plan): the column links are bound as runs, made once."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from kernels.runs import ColumnRuns
from pipeline.aggregate import conservative_mean
from pipeline.aggregate.plan import RowwisePlan, SeparablePlan, bind_plan
from pipeline.grids import parse_grid
from pipeline.weights import compute_weights


def _field(res: str) -> xr.DataArray:
    g = parse_grid(res)
    lat = 0.5 * (g.lat_edges[1:] + g.lat_edges[:-1])
    lon = 0.5 * (g.lon_edges[1:] + g.lon_edges[:-1])
    values = np.cos(np.radians(lat))[:, None] * np.sin(np.radians(lon))[None, :]
    return xr.DataArray(values, dims=("lat", "lon"), coords={"lat": lat, "lon": lon}, name="t")


@pytest.mark.parametrize("target,kind", [("2deg", SeparablePlan), ("N32", RowwisePlan)])
def test_plans_hold_column_runs_not_links(target, kind):
    da = _field("0.25deg")
    plan = bind_plan(da, None, target, name="test", xp=np)
    assert isinstance(plan, kind)
    runs = [plan.cols_dev] if kind is SeparablePlan else plan.cols_dev
    assert all(isinstance(r, ColumnRuns) for r in runs)
    w = compute_weights(parse_grid("0.25deg"), parse_grid(target))
    n_links = w.cols[0].size if kind is SeparablePlan else sum(w.group_cols(k)[0].size for k in range(len(w.groups)))
    n_runs = sum(r.start.size for r in runs)
    assert n_runs < n_links / 3  # 1440 columns in runs of ~8 (2 deg) or ~6-22 (N32)


@pytest.mark.parametrize("target", ["2deg", "N32"])
def test_runs_give_the_reference_engines_answer_on_links(target):
    da = _field("0.25deg")
    w = compute_weights(parse_grid("0.25deg"), parse_grid(target))
    sp = w.to_sparse()  # sparse weights: the reference kernel on plain links
    want = conservative_mean(da, target, weights=sp, engine="numpy").values
    for engine in ("numpy", "numba"):
        np.testing.assert_allclose(conservative_mean(da, target, engine=engine).values, want, rtol=1e-12, atol=1e-15)
