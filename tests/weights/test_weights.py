"""Conservative weights: 1-D overlaps, conservation, non-overlap errors, SCRIP/ESMF files."""

import numpy as np
import pytest
import xarray as xr

from pipeline.aggregate import apply_weights
from pipeline.errors import InputDataError
from pipeline.grids import parse_grid
from pipeline.sphere import sin_lat_diff
from pipeline.weights import (
    RowwiseWeights,
    SeparableWeights,
    SparseWeights,
    compute_weights,
    lat_links,
    lon_links,
    read_weights,
    write_weights,
)


def test_lon_links_periodic_any_convention():
    src = np.arange(0, 361, 30.0)  # 0..360
    dst = np.arange(-180, 181, 45.0)  # -180..180
    i, j, w = lon_links(src, dst)
    assert np.allclose(np.bincount(i, weights=w), np.radians(30))
    assert np.allclose(np.bincount(j, weights=w, minlength=8), np.radians(45))
    # source cell 0..30 lies in destination cell 4 (0..45)
    assert set(j[i == 0]) == {4}
    # a source cell straddling the seam (-15..15 as 345..375) splits between two destination cells
    i2, j2, w2 = lon_links(np.array([165.0, 195.0]), dst)
    assert sorted(j2) == [0, 7] and np.allclose(w2, np.radians(15))


def test_lat_links_in_sin_lat():
    src = np.linspace(-90, 90, 7)
    dst = np.array([-90.0, 0.0, 90.0])
    i, j, w = lat_links(src, dst)
    assert np.allclose(np.bincount(i, weights=w), np.diff(np.sin(np.radians(src))))
    assert np.allclose(np.bincount(j, weights=w), [1.0, 1.0])
    # the product formula keeps relative precision in thin polar rows
    d = np.radians(90.0 - 89.999999)
    assert abs(sin_lat_diff(89.999999, 90.0) / (2 * np.sin(d / 2) ** 2) - 1) < 1e-7  # naive: ~50 % off


@pytest.mark.parametrize("src,dst,kind", [
    ("2deg", "F16", SeparableWeights), ("0.5deg", "5deg", SeparableWeights), ("r360x180", "1deg", SeparableWeights),
    ("1deg", "N32", RowwiseWeights), ("2deg", "O16", RowwiseWeights), ("N32", "3deg", SparseWeights),
])
def test_weights_conserve_area(src, dst, kind):
    s, d = parse_grid(src), parse_grid(dst)
    w = compute_weights(s, d)
    assert isinstance(w, kind)
    assert np.abs(w.src_cover() / s.cell_areas(1.0).ravel() - 1).max() < 1e-12
    assert np.abs(w.dst_cover() / d.cell_areas(1.0).ravel() - 1).max() < 1e-12
    sp = w.to_sparse()
    assert abs(sp.w.sum() / (4 * np.pi) - 1) < 1e-12 and (sp.w > 0).all()


def test_regional_source_partial_cover():
    w = compute_weights(parse_grid("0.5deg:-10,35,5,45"), parse_grid("5deg"))
    cover = w.dst_cover().reshape(36, 72)
    full = parse_grid("5deg").cell_areas(1.0)
    assert np.allclose(cover[25:27, 34:35], full[25:27, 34:35])  # inside
    assert cover[0].sum() == 0


def test_non_overlapping_grids():
    with pytest.raises(InputDataError, match="do not overlap"):
        compute_weights(parse_grid("0.5deg:-10,35,5,45"), parse_grid("1deg:100,-20,120,-10"))


@pytest.mark.parametrize("fmt", ["scrip", "esmf"])
@pytest.mark.parametrize("dst", ["4deg", "N32"])
def test_weight_file_roundtrip(tmp_path, fmt, dst):
    w = compute_weights(parse_grid("2deg"), parse_grid(dst))
    path = write_weights(w, tmp_path / "w.nc", format=fmt)
    r = read_weights(path)
    sp = w.to_sparse()
    a = sorted(zip(sp.dst, sp.src, sp.w))
    b = sorted(zip(r.dst, r.src, r.w))
    assert len(a) == len(b)
    assert all(x[:2] == y[:2] for x, y in zip(a, b))
    assert np.allclose([x[2] for x in a], [y[2] for y in b], rtol=1e-12, atol=0)
    assert r.dst_grid is not None and r.dst_grid.size == parse_grid(dst).size
    ds = xr.open_dataset(path)
    if fmt == "scrip":
        assert ds.attrs["normalization"] == "fracarea" and int(ds.dst_address.min()) == 1
        assert np.allclose(np.bincount(ds.dst_address.values - 1, weights=ds.remap_matrix.values[:, 0]), 1)
    else:
        assert {"row", "col", "S", "frac_a", "frac_b", "xc_b", "yv_b"} <= set(ds.variables)


def test_weights_file_for_other_sizes(tmp_path):
    w = compute_weights(parse_grid("4deg"), parse_grid("10deg"))
    path = write_weights(w, tmp_path / "w.nc")
    da = xr.DataArray(np.ones((90, 180)), dims=("lat", "lon"), name="tas",
                      coords={"lat": np.linspace(-89, 89, 90), "lon": np.linspace(-179, 179, 180)})
    with pytest.raises(InputDataError, match=r"45 x 90 = 4050 cells.*'tas' has 90 x 180"):
        apply_weights(da, path)
    with pytest.raises(InputDataError, match="neither SCRIP"):
        xr.Dataset({"a": ("x", [1.0])}).to_netcdf(tmp_path / "junk.nc")
        read_weights(tmp_path / "junk.nc")


@pytest.mark.parametrize("dst", ["N32", "O16"])
def test_rowwise_weights_make_each_groups_column_links_when_asked(dst):
    s, d = parse_grid("1deg"), parse_grid(dst)
    w = compute_weights(s, d)
    assert isinstance(w, RowwiseWeights)
    rows = np.sort(np.concatenate(w.groups))
    np.testing.assert_array_equal(rows, np.arange(d.nrows))  # every target row in one group
    for k, members in enumerate(w.groups):
        assert (d.pl[members] == w.group_ncols(k)).all()
        cs, cd, cw = w.group_cols(k)
        for r in members:  # every row of the group has the partition its links were made for
            s2, d2, w2 = lon_links(s.lon_edges, d.row_lon_bounds(int(r)))
            np.testing.assert_array_equal(s2, cs)
            np.testing.assert_array_equal(d2, cd)
            np.testing.assert_allclose(w2, cw, rtol=1e-15)
    # only row links and row indices are held: no column links per group
    held = sum(a.nbytes for a in w.rows) + sum(g.nbytes for g in w.groups)
    assert held < 24 * sum(w.group_cols(k)[0].size for k in range(len(w.groups)))
