"""Spatial blocks, buffers, temporal holdout, both; reproducibility; summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError, InputDataError
from pipeline.features.splits import (
    BUFFER,
    EXCLUDED,
    SPLIT_LABELS,
    TEST,
    TRAIN,
    SplitSummary,
    block_ids,
    cell_areas_km2,
    make_cell_split,
)


def _grid(res=0.1, s=36.0, n=40.0, w=-8.0, e=-2.0):
    lat = np.round(np.arange(s, n, res) + res / 2, 8)
    lon = np.round(np.arange(w, e, res) + res / 2, 8)
    return lat, lon


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([0.25, 0.5, 1.0]), st.integers(2, 6), st.floats(0.0, 0.6), st.integers(0, 10_000),
       st.floats(0.3, 1.0))
def test_buffer_is_never_straddled(block, n_folds, buffer, seed, keep):
    lat, lon = _grid()
    rng = np.random.default_rng(seed)
    valid = rng.random((lat.size, lon.size)) < keep
    valid[0, 0] = True
    cs = make_cell_split(lat, lon, valid, kind="spatial", block_size_deg=block, n_folds=n_folds,
                         test_fold=seed % n_folds, buffer_deg=buffer, seed=seed)
    lab = np.where(valid, cs.label, -1)
    test = np.argwhere(lab == TEST)
    train = np.argwhere(lab == TRAIN)
    if len(test) and len(train):
        dy = np.abs(lat[train[:, 0]][:, None] - lat[test[:, 0]][None, :])
        dx = np.abs(lon[train[:, 1]][:, None] - lon[test[:, 1]][None, :])
        # no training cell within buffer_deg (Chebyshev, centre to centre) of a test cell
        assert np.maximum(dy, dx).min() > buffer + 1e-9
    # a block is wholly test or wholly not test: test never straddles a block edge
    blocks = block_ids(lat, lon, block)
    for b in np.unique(blocks[valid]):
        in_b = valid & (blocks == b)
        assert len(np.unique(cs.fold[in_b])) == 1
        assert (cs.label[in_b] == TEST).all() or not (cs.label[in_b] == TEST).any()
    # the buffer is exactly the non-test cells within reach (nothing needlessly thrown away)
    if buffer > 0 and len(test):
        for y, x in np.argwhere(lab == BUFFER)[:20]:
            d = np.maximum(np.abs(lat[y] - lat[test[:, 0]]), np.abs(lon[x] - lon[test[:, 1]]))
            assert d.min() <= buffer + 1e-9


def test_same_seed_same_folds_other_seed_other_folds():
    lat, lon = _grid()
    valid = np.ones((lat.size, lon.size), bool)
    kw = dict(kind="spatial", block_size_deg=0.5, n_folds=5, buffer_deg=0.2)
    a = make_cell_split(lat, lon, valid, seed=7, **kw)
    b = make_cell_split(lat, lon, valid, seed=7, **kw)
    c = make_cell_split(lat, lon, valid, seed=8, **kw)
    np.testing.assert_array_equal(a.fold, b.fold)
    np.testing.assert_array_equal(a.label, b.label)
    assert (a.fold != c.fold).any()
    # folds are balanced in blocks: 8 x 12 = 96 blocks over 5 folds → 19 or 20 each
    blocks = block_ids(lat, lon, 0.5)
    per_fold = [len(np.unique(blocks[a.fold == f])) for f in range(5)]
    assert sorted(per_fold) == [19, 19, 19, 19, 20]


def test_blocks_are_anchored_globally():
    lat, lon = _grid()
    sub = make_cell_split(lat[:20], lon[:30], np.ones((20, 30), bool), kind="spatial", block_size_deg=1.0, n_folds=3, seed=1)
    assert block_ids(lat[:20], lon[:30], 1.0)[0, 0] == block_ids(lat, lon, 1.0)[0, 0]
    assert sub.fold.min() >= 0


def test_buffer_wraps_the_dateline_on_global_grids():
    lat = np.array([-0.5, 0.5])
    lon = np.arange(-179.5, 180, 1.0)
    test = np.zeros((2, 360), bool)
    test[:, 0] = True
    from pipeline.features.splits import buffer_cells

    buf = buffer_cells(test, lat, lon, 1.0)
    assert buf[:, 359].all() and buf[:, 1].all() and not buf[:, 2].any()


def test_temporal_and_both_row_codes():
    lat, lon = _grid()
    valid = np.ones((lat.size, lon.size), bool)
    cs = make_cell_split(lat, lon, valid, kind="both", block_size_deg=1.0, n_folds=3, buffer_deg=0.15,
                         test_years=(2010, 2011), seed=3)
    cells = np.arange(valid.size)
    for year in (2009, 2010, 2011, 2012):
        fold, split = cs.row_codes(cells, np.full(cells.size, year))
        place = cs.label.ravel()
        in_test = 2010 <= year <= 2011
        assert (split[place == BUFFER] == BUFFER).all()
        assert (split[place == TEST] == (TEST if in_test else EXCLUDED)).all()
        assert (split[place == TRAIN] == (EXCLUDED if in_test else TRAIN)).all()
        np.testing.assert_array_equal(fold, cs.fold.ravel())
    tcs = make_cell_split(lat, lon, valid, kind="temporal", test_years=(2010, 2010))
    fold, split = tcs.row_codes(cells[:3], np.array([2009, 2010, 2011]))
    assert split.tolist() == [TRAIN, TEST, TRAIN] and (fold == -1).all()


def test_bad_split_settings():
    lat, lon = _grid()
    valid = np.ones((lat.size, lon.size), bool)
    with pytest.raises(ConfigError, match="test_years"):
        make_cell_split(lat, lon, valid, kind="temporal")
    with pytest.raises(ConfigError, match="test_fold"):
        make_cell_split(lat, lon, valid, kind="spatial", n_folds=3, test_fold=3)
    with pytest.raises(InputDataError, match="no valid cell"):
        make_cell_split(lat, lon, np.zeros_like(valid), kind="spatial")


def test_cell_areas_single_cell_axis_is_one_degree_clipped_at_the_pole():
    # one centre per axis: a 1° cell, its latitude edges clipped to ±90°
    r = 6371.0
    a = cell_areas_km2(np.array([0.0]), np.array([10.0]))
    assert a.shape == (1, 1)
    assert a[0, 0] == pytest.approx(r**2 * np.deg2rad(1.0) * 2 * np.sin(np.deg2rad(0.5)), rel=1e-12)
    polar = cell_areas_km2(np.array([89.8]), np.array([0.0]))[0, 0]
    assert polar == pytest.approx(r**2 * np.deg2rad(1.0) * (1 - np.sin(np.deg2rad(89.3))), rel=1e-12)


def test_summary_rows_and_areas():
    lat, lon = _grid(res=1.0, s=0, n=2, w=0, e=2)  # 4 cells of 1°
    area = cell_areas_km2(lat, lon)
    assert area.sum() == pytest.approx(4 * 111.195**2, rel=2e-3)  # near the equator
    # the summary's km² are the areas of the ESM grids and aggregation weights (one Earth radius)
    from pipeline.grids import parse_grid

    np.testing.assert_allclose(area * 1e6, parse_grid("1deg:0,0,2,2").cell_areas(), rtol=1e-12)
    df = pd.DataFrame({
        "time": pd.to_datetime(["2001-01-01"] * 4 + ["2002-01-01"] * 4),
        "cell": np.array([0, 1, 2, 3] * 2, np.int32),
        "split": pd.Categorical.from_codes(np.array([0, 0, 1, 2, 1, 1, 1, 3], np.int8), categories=list(SPLIT_LABELS)),
    })
    t = SplitSummary(lat, lon).add(df.iloc[:4]).add(df.iloc[4:]).table().set_index("split")
    assert list(t.index) == list(SPLIT_LABELS)
    assert t.loc["train", "rows"] == 2 and t.loc["test", "rows"] == 4 and t.loc["excluded", "rows"] == 1
    assert t.loc["test", "cells"] == 3 and t.loc["train", "years"] == "2001-2001"
    assert t.loc["train", "area_km2"] == pytest.approx(area.ravel()[[0, 1]].sum())
    assert t["row_fraction"].sum() == pytest.approx(1.0)
