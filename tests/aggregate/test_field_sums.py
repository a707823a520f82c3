"""Plans bound to the target cells that overlap the source, and stacks of fields (FieldSums).

A plan bound to a subset of the target cells must give each kept cell exactly (bit for bit) its
value on the whole grid streamed in the same row bands, for every plan type (separable, row-wise reduced, sparse from a file with
a permuted cell order), also when the kept columns run across the target grid's seam.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import kernels
from pipeline.aggregate import (
    FieldSums,
    conservative_mean,
    crop_to_source,
    mean_of,
    overlap_cells,
    source_edges,
    to_dataset,
)
from pipeline.aggregate.plan import bind_plan
from pipeline.errors import InputDataError
from pipeline.grids import RectilinearGrid, parse_grid, source_axes
from pipeline.weights import SparseWeights, compute_weights


def _field(lon0=-7.3, lat0=38.1, res=0.3, ny=21, nx=47, nb=3, *, descending=True, seed=0):
    """A stack of ``nb`` fields on a regional grid (descending latitudes by default) with NaN cells."""
    lat = lat0 + res * (np.arange(ny) + 0.5)
    lon = lon0 + res * (np.arange(nx) + 0.5)
    if descending:
        lat = lat[::-1]
    rng = np.random.default_rng(seed)
    v = 1.0 + rng.random((nb, ny, nx))
    v[:, :4, :6] = np.nan  # a corner of sea
    v[1, 10, 20] = np.nan  # a gap in one field only
    return xr.DataArray(v, dims=("band", "lat", "lon"), name="x", attrs={"units": "1"},
                        coords={"band": np.arange(nb),
                                "lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
                                "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east"})})


def _g360(res=2.5):
    """A regular grid from 0 to 360°: a source around 0° runs across its seam."""
    return RectilinearGrid(name="g360", lat_edges=np.linspace(-90, 90, int(180 / res) + 1),
                           lon_edges=np.linspace(0, 360, int(360 / res) + 1))


def _sums(agg: FieldSums, da, *, budget=None):
    acc = agg.new(da.sizes["band"])
    for r0, r1 in agg.read_bands(da):
        x = agg.read(da, r0, r1)
        for b0, b1 in (agg.bands(r0, r1, x.shape[0], budget=budget) if budget else [(r0, r1)]):
            agg.add(x[:, b0 - r0:b1 - r0], b0, b1, acc)
    return agg.finish(acc)


def _subset(a, grid, index):
    """The kept cells of a whole-grid array (fields, *grid shape), in the crop's order."""
    if "cell" in index:
        return a[:, index["cell"]]
    return a[:, index["lat"]][:, :, index["lon"]]


@pytest.mark.parametrize("spec", ["5deg", "N32", "F16", "g360"])
def test_field_sums_on_the_overlap_equal_the_whole_grid_bit_for_bit(spec):
    da = _field()
    g = _g360() if spec == "g360" else parse_grid(spec)
    part = FieldSums(da, g)
    whole = FieldSums(da, g, global_output=True)
    index = overlap_cells(g, *source_edges(da))
    assert part.cells is not None and part.shape == tuple(ix.size for ix in index.values())
    assert whole.cells is None and whole.shape == tuple(g.shape) and part.size < whole.size
    budget = 2 * da.sizes["lon"] * 3  # bands of two rows
    num, den = _sums(part, da, budget=budget)
    wnum, wden = _sums(whole, da, budget=budget)
    np.testing.assert_array_equal(num, _subset(wnum, g, index))
    np.testing.assert_array_equal(den, _subset(wden, g, index))
    # other bands sum the rows in another order: equal to rounding, not bit for bit
    onum, oden = _sums(whole, da)
    np.testing.assert_allclose(onum, wnum, rtol=1e-14, atol=0)
    np.testing.assert_allclose(oden, wden, rtol=1e-14, atol=0)
    # the means are those of conservative_mean cut by crop_to_source, with the same coordinates
    full = to_dataset(conservative_mean(da, g), grid=g)
    ref = crop_to_source(full, g, *source_edges(da))
    np.testing.assert_array_equal(mean_of(*_sums(part, da)), ref["x"].values)  # one band, as conservative_mean
    frame = part.frame()
    for k in ("lat", "lon", "lat_bnds", "lon_bnds"):
        np.testing.assert_array_equal(frame[k].values, ref[k].values)
    if spec == "g360":  # the kept columns run across the seam: west to east, longitudes shifted
        assert np.all(np.diff(frame["lon"].values) > 0) and frame["lon"].values[0] < 0 < frame["lon"].values[-1]


def _kernel():
    return kernels.get_engine("numba")


def _plan_sums(plan, x):
    acc = plan.new_acc(x.shape[0], 2)
    plan.weighted_sum(_kernel(), x, 0, x.shape[1], acc, False)
    return plan.finish(acc)


@pytest.mark.parametrize("permuted", [False, True])
def test_sparse_plans_from_files_keep_the_subset_exactly(permuted):
    da = _field(lon0=3.1, descending=False)
    g = parse_grid("2deg")
    src = source_axes(da).grid
    sp = compute_weights(src, g).to_sparse()
    if permuted:  # file cell order differs from the grid's: grid cell k is file cell perm[k]
        perm = np.random.default_rng(3).permutation(g.size)
        sp = SparseWeights(src, g, src=sp.src, dst=perm[sp.dst], w=sp.w, dst_perm=perm)
    cells = overlap_cells(g, *source_edges(da))
    x = np.ascontiguousarray(da.values)
    num, den = _plan_sums(bind_plan(da, sp, None, name="t", xp=np, cells=cells), x)
    wnum, wden = _plan_sums(bind_plan(da, sp, None, name="t", xp=np), x)
    shape = (x.shape[0],) + g.shape
    np.testing.assert_array_equal(num.reshape((x.shape[0], -1)),
                                  _subset(wnum.reshape(shape), g, cells).reshape((x.shape[0], -1)))
    np.testing.assert_array_equal(den.reshape((x.shape[0], -1)),
                                  _subset(wden.reshape(shape), g, cells).reshape((x.shape[0], -1)))
    # per-cell quantities of the subset are the whole grid's, selected
    sub = bind_plan(da, sp, None, name="t", xp=np, cells=cells).weights
    flat = (cells["lat"][:, None] * g.shape[1] + cells["lon"][None, :]).ravel()
    np.testing.assert_array_equal(sub.dst_area(), sp.dst_area()[flat])
    assert sub.n_dst == flat.size and sub.dst_shape == (cells["lat"].size, cells["lon"].size)


def test_subset_plans_report_the_subset_areas():
    da = _field()
    for spec in ("5deg", "N32"):
        g = parse_grid(spec)
        cells = overlap_cells(g, *source_edges(da))
        plan = bind_plan(da, None, g, name="t", xp=np, cells=cells)
        whole = bind_plan(da, None, g, name="t", xp=np)
        flat = (np.ravel_multi_index(np.ix_(cells["lat"], cells["lon"]), g.shape).ravel() if "lat" in cells
                else cells["cell"])
        np.testing.assert_array_equal(plan.weights.dst_cover(), whole.weights.dst_cover()[flat])
        np.testing.assert_array_equal(plan.weights.dst_area(), whole.weights.dst_area()[flat])
        assert plan.n_dst == flat.size


def test_bands_keep_the_budget_and_skip_rows_without_links():
    da = _field(descending=False)  # rows 38.1 .. 44.4 N
    agg = FieldSums(da, "1deg:-8,40,8,42", global_output=True)  # covers only the source rows in 40..42 N
    rows = [(a, b) for a, b in agg.bands(0, agg.ny, 4, budget=4 * agg.nx * 3)]
    assert all(b - a <= 3 for a, b in rows)
    lat = da["lat"].values
    linked = np.flatnonzero((lat > 40) & (lat < 42))
    covered = np.concatenate([np.arange(a, b) for a, b in rows])
    assert set(linked) <= set(covered) and covered.min() >= linked.min() - 2 and covered.max() <= linked.max() + 2
    assert covered.size < agg.ny  # the rows north and south of the target are not read
    assert agg.read_bands(da, chunk_rows=5) == [(a, b) for a, b in [(0, 5), (5, 10), (10, 15), (15, 20), (20, 21)]
                                                if set(range(a, b)) & set(linked)]
    with pytest.raises(InputDataError, match=r"expected \(fields, 3, 47\)"):
        agg.add(np.zeros((2, 4, agg.nx)), 0, 3, agg.new(2))


def test_a_target_that_misses_the_source_is_a_clear_error():
    da = _field()
    with pytest.raises(InputDataError, match="overlap no cell"):
        FieldSums(da, "1deg:100,-10,110,0")
