"""Tidy metric tables by Köppen zone, land-cover group and season."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluate.breakdown import COLUMNS, SEASONS, breakdown, season_of
from pipeline.evaluate.categorical import categorical_metrics, macro_f1
from pipeline.evaluate.continuous import CONTINUOUS_METRICS, rmse


def test_season_of_puts_december_with_january():
    times = np.array(["2011-12-15", "2012-01-15", "2012-02-29", "2012-03-01", "2012-07-16", "2012-11-30", "NaT"],
                     dtype="datetime64[ns]")
    s = season_of(times)
    assert list(s.categories) == list(SEASONS)
    assert list(s[:-1]) == ["DJF", "DJF", "DJF", "MAM", "JJA", "SON"]
    assert pd.isna(s[-1])


def _frame(n=2_000, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.gamma(2.0, 1.5, n)
    y[::101] = np.nan
    return pd.DataFrame({
        "lai": y,
        "lai_pred": y + rng.normal(0.0, 0.5, n),
        "area": rng.uniform(0.5, 1.5, n),
        "koppen": pd.array(rng.integers(1, 4, n), dtype="Int64"),
        "lc_group": pd.Categorical(rng.choice(["forest", "grass", "crop"], n)),
        "time": pd.to_datetime("2015-01-15") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
        "block": rng.integers(0, 40, n),
    })


def test_breakdown_table_matches_the_metrics_on_each_group():
    df = _frame()
    df.loc[:9, "koppen"] = pd.NA  # rows without a zone: in "all", in no zone
    table = breakdown(df, CONTINUOUS_METRICS, truth="lai", pred="lai_pred", task="lai", model="xgb", split="test",
                      weights="area", groups={"koppen": "koppen", "land_cover": "lc_group"}, season="time",
                      blocks="block", n_boot=50, seed=0)
    assert tuple(table.columns) == COLUMNS
    assert (table[["task", "model", "split"]] == ["lai", "xgb", "test"]).all().all()
    kinds = table.drop_duplicates(["group_kind", "group"])
    assert list(kinds["group_kind"]) == ["all"] + ["koppen"] * 3 + ["land_cover"] * 3 + ["season"] * 4
    assert list(kinds["group"]) == ["all", "1", "2", "3", "crop", "forest", "grass", *SEASONS]
    assert len(table) == len(kinds) * len(CONTINUOUS_METRICS)

    row = table[(table.group_kind == "koppen") & (table.group == "2") & (table.metric == "rmse")].iloc[0]
    sel = (df["koppen"] == 2).fillna(False).to_numpy()
    assert row.value == pytest.approx(rmse(df.lai[sel], df.lai_pred[sel], df.area[sel]))
    assert row.n_rows == int((sel & df.lai.notna().to_numpy()).sum())
    assert row.lo <= row.value <= row.hi
    total = table[(table.group_kind == "all") & (table.metric == "rmse")].iloc[0]
    assert total.n_rows == int(df.lai.notna().sum())
    assert (table.lo <= table.hi).all()


def test_without_blocks_the_table_has_no_intervals():
    df = _frame(500)
    table = breakdown(df, {"rmse": rmse}, truth="lai", pred="lai_pred", task="lai", model="m", split="test")
    assert len(table) == 1 and table.lo.isna().all() and table.hi.isna().all()


def test_categorical_breakdown():
    rng = np.random.default_rng(1)
    n = 1_000
    t = rng.integers(0, 5, n)
    df = pd.DataFrame({
        "lulc": pd.Categorical(t, categories=range(5)),
        "lulc_pred": np.where(rng.random(n) < 0.7, t, rng.integers(0, 5, n)),
        "koppen": rng.integers(1, 3, n).astype(float),
        "block": rng.integers(0, 25, n),
    })
    table = breakdown(df, categorical_metrics(range(5)), truth="lulc", pred="lulc_pred", task="lulc", model="rf",
                      split="test", groups={"koppen": "koppen"}, blocks="block", n_boot=30)
    assert set(table.group) == {"all", "1", "2"}
    assert set(table.metric) == {"accuracy", "macro_f1", "miou"}
    row = table[(table.group == "1") & (table.metric == "macro_f1")].iloc[0]
    sel = df.koppen.to_numpy() == 1
    assert row.value == pytest.approx(macro_f1(t[sel], df.lulc_pred[sel], labels=range(5)))
