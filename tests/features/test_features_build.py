"""The feature table: columns against hand computations, dask = pandas, missing policy, bad inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline.config import load_config
from pipeline.errors import ConfigError, InputDataError
from pipeline.features import (
    FeatureBuilder,
    apply_missing,
    find_stores,
    fit_missing,
    make_broadcast,
    make_cell_index,
    missing_policies,
    open_stores,
    read_feature_table,
    unflatten,
    write_feature_table,
)


def _cfg(root, *extra):
    return load_config(None, ["data.source=stores", f"data.root={root}", "data.years=2001:2002",
                              "splits.test_years=[2002,2002]", "splits.block_size_deg=0.5", "splits.n_folds=3",
                              "features.partition_rows=5000", *extra])


def _builder(root, *extra, stores=None):
    cfg = _cfg(root, *extra)
    paths = find_stores(root)
    return FeatureBuilder(stores or open_stores(paths), cfg.features, cfg.splits, target="lai",
                          scenarios=cfg.data.scenarios, years=cfg.data.years, seed=cfg.seed, backend="cpu",
                          paths=paths), cfg


@pytest.fixture(scope="module")
def built(synth_root):
    b, cfg = _builder(synth_root)
    return b, b.to_frame(), open_stores(find_stores(synth_root))


def test_columns_and_dtypes(built):
    b, df, _ = built
    assert list(df.columns[:4]) == ["scenario", "time", "cell", "lai"]
    for c in ("koppen", "scenario", "split"):
        assert isinstance(df[c].dtype, pd.CategoricalDtype), c
    assert list(df["koppen"].cat.categories) == [1, 2, 3, 4, 5]  # flag_values, nodata 0 excluded
    for c in ("tas", "pr_mean3m", "tas_mean3m", "pr_sum3m", "lulc_crops", "lulc_grass_shrub_se", "month_sin"):
        assert df[c].dtype == np.float32, c
    assert df["fold"].dtype == np.int8 and df["year"].dtype == np.int16
    assert len(df) == b.nrows == 2 * 24 * b.index.nvalid


def test_static_time_and_target_columns(built):
    b, df, st = built
    r = b.index.nvalid * 30 + 17  # scenario 1 (24 steps per scenario), time step 6, 18th valid cell
    row = df.iloc[r]
    s, t = divmod(r // b.index.nvalid, 24)
    cell = int(row["cell"])
    iy, ix = divmod(cell, st["static"].sizes["lon"])
    assert row["scenario"] == ["ssp126", "ssp585"][s]
    assert row["lai"] == st["target"]["lai"].values[s, t, iy, ix]
    assert row["land_fraction"] == st["static"]["land_fraction"].values[iy, ix]
    assert row["lat"] == np.float32(st["static"].lat.values[iy])
    month = pd.Timestamp(row["time"]).month
    assert row["month_sin"] == pytest.approx(np.sin(2 * np.pi * (month - 1) / 12), abs=1e-6)
    assert row["year"] == pd.Timestamp(row["time"]).year
    assert (df.loc[df["cell"] == 3 * 40 + 30, "koppen"].isna()).all()  # nodata 0 → missing


def test_coarse_parent_bilinear_and_lags_by_hand(synth_root):
    b, _ = _builder(synth_root, "features.coarse_broadcast=parent", "features.lulc_variable=null", "splits.kind=spatial")
    bb, _ = _builder(synth_root, "features.lulc_variable=null", "splits.kind=spatial")
    dfp, dfb = b.partition(0), bb.partition(0)
    st = open_stores(find_stores(synth_root))
    clim = st["climate"]
    tas = clim["tas"].isel(scenario=0).values
    ct = pd.DatetimeIndex(clim.time.values)
    assert dfp["time"].nunique() > 1  # the partition spans several months
    lat, lon = st["static"].lat.values, st["static"].lon.values
    for r in (0, 123, len(dfp) // 2, len(dfp) - 1):
        row = dfp.iloc[r]
        t = pd.Timestamp(row["time"])
        k = int(np.flatnonzero((ct.year == t.year) & (ct.month == t.month))[0])
        y, x = lat[int(row["cell"]) // 40], lon[int(row["cell"]) % 40]
        jy, jx = int(np.floor(y - 39.0)), int(np.floor(x + 3.0))  # 1° cells from 39N, 3W
        assert row["tas"] == tas[k, jy, jx]
        assert row["pr_mean3m"] == pytest.approx(clim["pr"].isel(scenario=0).values[k - 3:k, jy, jx].mean(), rel=1e-6)
        assert row["pr_sum3m"] == pytest.approx(clim["pr"].isel(scenario=0).values[k - 3:k, jy, jx].sum(), rel=1e-6)
        ref = xr.DataArray(tas[k], dims=("lat", "lon"), coords={"lat": clim.lat, "lon": clim.lon}).interp(lat=y, lon=x)
        assert dfb.iloc[r]["tas"] == pytest.approx(float(ref), rel=1e-6)


def test_lulc_parent_and_neighbours(built):
    b, df, st = built
    frac = st["lulc"]["lulc_fraction"].isel(scenario=0, time=0).values  # (group, 8, 8) at 0.25°
    part = df.iloc[: b.index.nvalid]
    lat, lon = st["static"].lat.values, st["static"].lon.values
    for r in (5, 200, len(part) - 3):
        c = int(part.iloc[r]["cell"])
        jy, jx = int((lat[c // 40] - 40.0) // 0.25), int((lon[c % 40] + 2.0) // 0.25)
        assert part.iloc[r]["lulc_forest"] == frac[1, jy, jx]
        ny, nx = jy + 1, jx - 1  # north-west neighbour
        exp = frac[2, ny, nx] if 0 <= ny < 8 and 0 <= nx < 8 else np.nan
        np.testing.assert_equal(part.iloc[r]["lulc_grass_shrub_nw"], exp)


def test_dask_table_equals_pandas_and_unflattens(built):
    b, df, st = built
    ddf = b.to_dask()
    assert ddf.npartitions == b.npartitions > 2
    got = ddf.compute(scheduler="sync").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, df)
    back = unflatten(ddf, like=b.grid_like(), columns=["lai"])
    exp = st["target"]["lai"].where(b.index.mask).values
    np.testing.assert_array_equal(back["lai"].values, exp)


def test_missing_policy_fit_apply_and_record(built):
    b, df, _ = built
    feats = _cfg(".", "features.missing.tas.action=mean", "features.missing.koppen.action=constant",
                 "features.missing.koppen.value=3", "features.missing.lulc_crops_nw.action=drop").features
    pol = missing_policies(df.columns, feats, "lai", ["koppen"])
    assert pol["lai"]["action"] == "drop" and pol["pr"]["action"] == "keep"
    rec = fit_missing(b.iter_partitions(), pol)
    train = df[df["split"] == "train"]
    assert rec["columns"]["tas"]["value"] == pytest.approx(float(train["tas"].astype(np.float64).mean()), rel=1e-9)
    out, counts = apply_missing(df, rec)
    assert counts["lai"] == int(df["lai"].isna().sum()) > 0
    assert not out["lai"].isna().any() and not out["lulc_crops_nw"].isna().any()
    assert not out["koppen"].isna().any() and isinstance(out["koppen"].dtype, pd.CategoricalDtype)
    assert len(out) == int((df["lai"].notna() & df["lulc_crops_nw"].notna()).sum())
    assert out["lulc_crops_se"].isna().any()  # keep
    with pytest.raises(ConfigError, match="not have"):
        missing_policies(df.columns, _cfg(".", "features.missing.nope.action=drop").features, "lai")
    with pytest.raises(ConfigError, match="categorical"):
        missing_policies(df.columns, _cfg(".", "features.missing.koppen.action=mean").features, "lai", ["koppen"])


def test_written_table_reads_back_with_categories(built, tmp_path):
    b, df, _ = built
    meta = write_feature_table(b, tmp_path / "features")
    assert len(meta["partitions"]) == b.npartitions
    back = read_feature_table(tmp_path / "features")
    exp = df.dropna(subset=["lai"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(back, exp)
    lazy = read_feature_table(tmp_path / "features", lazy=True)
    assert lazy.npartitions == b.npartitions
    assert list(lazy.partitions[1].compute()["koppen"].cat.categories) == [1, 2, 3, 4, 5]
    assert meta["missing"]["columns"]["lai"]["n_missing"] == int(df["lai"].isna().sum())
    assert not list(tmp_path.glob(".features.tmp-*"))


def test_non_nesting_grid_without_rule_is_an_error(tmp_path):
    from tests.helpers.feature_stores import write_synthetic_stores

    write_synthetic_stores(tmp_path, climate_res=0.27, lulc_res=0.27, years=(2001, 2001))  # 0.27 is no multiple of 0.05
    with pytest.raises(InputDataError) as err:
        _builder(tmp_path, "features.coarse_broadcast=parent", "data.years=2001:2001",
                 "splits.kind=spatial")
    msg = str(err.value)
    assert "'tas' in climate.zarr" in msg and "do not nest" in msg and "features.broadcast.tas" in msg
    with pytest.raises(InputDataError, match="features.broadcast.lulc_fraction"):
        _builder(tmp_path, "features.broadcast.tas=bilinear", "features.broadcast.pr=nearest",
                 "features.broadcast.rsds=nearest", "features.coarse_broadcast=parent",
                 "data.years=2001:2001", "splits.kind=spatial")
    b, _ = _builder(tmp_path, "features.broadcast.lulc_fraction=nearest", "data.years=2001:2001",
                    "splits.kind=spatial")
    assert b.partition(0)["lulc_crops"].notna().all()


def test_missing_predictor_and_target_name_what_exists(synth_root):
    with pytest.raises(InputDataError) as err:
        _builder(synth_root, "features.coarse=[tas,tmax]")
    msg = str(err.value)
    assert "'tmax'" in msg and "climate.zarr" in msg and all(v in msg.split("holds:")[1] for v in ("tas", "pr", "rsds"))
    with pytest.raises(InputDataError) as err:
        _builder(synth_root, "features.static=[land_fraction,soil]")
    assert "'soil'" in str(err.value) and "koppen" in str(err.value)
    cfg = _cfg(synth_root)
    with pytest.raises(InputDataError, match="'gpp' is not in lai.zarr; it holds: lai"):
        FeatureBuilder(open_stores(find_stores(synth_root)), cfg.features, cfg.splits, target="gpp")


def test_empty_mask_and_bad_years(synth_root):
    with pytest.raises(InputDataError, match="leaves no cell"):
        _builder(synth_root, "features.mask_min=1.5")
    with pytest.raises(InputDataError, match="data.years"):
        _builder(synth_root, "data.years=1990:1991")


def test_missing_store_lists_directory(tmp_path):
    (tmp_path / "static.zarr").mkdir()
    with pytest.raises(InputDataError, match="lacks lulc_coarse.zarr, climate.zarr, lai.zarr"):
        find_stores(tmp_path)


def test_broadcast_wraps_longitude_on_global_grid():
    lon = np.round(np.arange(-180, 180, 0.05) + 0.025, 6)
    mask = np.zeros((2, lon.size), bool)
    mask[0, [0, -1]] = True  # the westernmost and easternmost cells of the first row
    idx = make_cell_index(np.array([0.025, 0.075]), lon, mask)
    coarse = xr.Dataset(coords={"lat": np.array([-0.5, 0.5]), "lon": np.arange(-179.5, 180, 1.0)})
    bc = make_broadcast(idx, coarse, "parent", var="v", store="c", neighbours=True)
    west = dict(zip(bc.labels, bc.idx[:, 0]))
    assert west[""] == 1 * 360 + 0 and west["w"] == 1 * 360 + 359  # wraps to the last column
    bil = make_broadcast(idx, coarse, "bilinear", var="v", store="c")
    field = np.zeros((1, 2, 360), np.float32)
    field[0, :, 0], field[0, :, 359] = 1.0, 3.0
    out = bil.apply(field)[0, 0]
    # -179.975 lies 0.525° east of the wrapped centre 179.5 (value 3) and 0.475° west of -179.5 (value 1)
    assert out[0] == pytest.approx(0.475 * 3.0 + 0.525 * 1.0, abs=1e-5)
    assert out[1] == pytest.approx(0.525 * 3.0 + 0.475 * 1.0, abs=1e-5)


def test_broadcast_single_coarse_row_needs_bounds():
    idx = make_cell_index(np.array([0.025, 0.075]), np.array([0.025, 0.075]), np.ones((2, 2), bool))
    coarse = xr.Dataset(coords={"lat": np.array([0.5]), "lon": np.array([-0.5, 0.5])})
    with pytest.raises(InputDataError, match="coordinate 'lat' has a single value and no 'lat_bnds'"):
        make_broadcast(idx, coarse, "nearest", var="v", store="c")
    coarse = coarse.assign(lat_bnds=(("lat", "bnds"), np.array([[0.0, 1.0]])))
    bc = make_broadcast(idx, coarse, "nearest", var="v", store="c")
    assert bc.idx.tolist() == [[1, 1, 1, 1]]  # every fine cell in the coarse cell lat 0..1, lon 0..1


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("pipeline.backend", fromlist=["probe_gpu"]).probe_gpu().usable, reason="no usable GPU")
def test_gpu_table_matches_cpu(synth_root):  # pragma: no cover - needs a GPU
    import cupy

    cpu, cfg = _builder(synth_root)
    paths = find_stores(synth_root)
    gpu = FeatureBuilder(open_stores(paths), cfg.features, cfg.splits, target="lai", scenarios=cfg.data.scenarios,
                         years=cfg.data.years, seed=cfg.seed, backend="gpu", paths=paths)
    g = gpu.partition(1)
    assert isinstance(g["lai"].values, cupy.ndarray)  # read from Zarr into device memory
    pd.testing.assert_frame_equal(g.to_pandas(), cpu.partition(1), check_categorical=False, rtol=1e-6)


def test_lagged_drivers_need_a_gapless_monthly_climate_axis(synth_root):
    stores = open_stores(find_stores(synth_root))
    gappy = stores["climate"].isel(time=[t for t in range(stores["climate"].sizes["time"]) if t != 5])
    stores = {**stores, "climate": gappy}
    # a driver as plain predictor first, then the lagged ones: the check must still see the lags
    with pytest.raises(InputDataError, match="not monthly without gaps"):
        _builder(synth_root, "features.coarse=[tas]", "features.lag_variables=[pr]", "features.lags=[2]",
                 "data.years=2002:2002", stores=stores)


@pytest.mark.parametrize("extra, which, words", [
    # held-out years outside the table's years: no test rows
    (["splits.test_years=[2030,2031]"], "test", ["splits.test_years 2030-2031", "2001-2002", "data.years"]),
    (["splits.kind=temporal", "splits.test_years=[2030,2031]"], "test", ["splits.test_years 2030-2031"]),
    # every year held out: no train rows
    (["splits.test_years=[2001,2002]"], "train", ["splits.test_years 2001-2002", "widen data.years"]),
    (["splits.kind=temporal", "splits.test_years=[2000,2003]"], "train", ["every one of"]),
    # the region lies in a single block, which is the test fold: no train rows
    (["splits.kind=spatial", "splits.block_size_deg=30"], "train",
     ["1 block(s) of splits.block_size_deg 30°", "lower splits.block_size_deg", "data.region"]),
    # one block but test_fold 2: no test rows
    (["splits.block_size_deg=30", "splits.test_fold=2"], "test", ["splits.test_fold 2", "data.region"]),
])
def test_split_without_train_or_test_rows_is_an_error(synth_root, extra, which, words):
    with pytest.raises(InputDataError, match=f"leaves no {which} rows") as err:
        _builder(synth_root, *extra)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_split_with_train_and_test_rows_is_accepted(synth_root):
    b, _ = _builder(synth_root, "splits.kind=temporal", "splits.test_years=[2002,2005]")
    assert b.cell_split is not None
