"""Scenario drift: PSI and outside-range share flag a shifted feature and not an identical one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipeline.evaluate.drift import (
    COLUMNS,
    OUTSIDE_THRESHOLD,
    PSI_THRESHOLD,
    drift_table,
    numeric_bins,
    outside_share,
    psi,
)


def _tables(n=5_000, seed=0):
    rng = np.random.default_rng(seed)
    train = pd.DataFrame({
        "tas": rng.normal(285.0, 8.0, n),
        "pr": rng.gamma(2.0, 1.0, n),
        "igbp": pd.Categorical(rng.choice(["forest", "grass", "crop"], n, p=[0.5, 0.3, 0.2])),
    })
    scenario = pd.DataFrame({
        "tas": rng.normal(285.0, 8.0, n) + 6.0,  # +6 K warming
        "pr": rng.gamma(2.0, 1.0, n),  # unchanged
        "igbp": pd.Categorical(rng.choice(["forest", "grass", "crop"], n, p=[0.5, 0.3, 0.2])),
    })
    return train, scenario


def test_shifted_feature_is_flagged_identical_ones_are_not():
    train, scenario = _tables()
    table = drift_table(train, scenario).set_index("feature")
    assert tuple(drift_table(train, scenario).columns) == COLUMNS
    assert table.loc["tas", "flag"] and table.loc["tas", "psi"] > PSI_THRESHOLD
    assert not table.loc["pr", "flag"] and table.loc["pr", "psi"] < 0.05
    assert table.loc["igbp", "kind"] == "categorical" and not table.loc["igbp", "flag"]
    assert table.loc["tas", "kind"] == "numeric" and table.loc["tas", "n_scenario"] == len(scenario)
    dated = train.assign(time=pd.Timestamp("2000-01-01"))
    assert "time" not in set(drift_table(dated, dated.assign(time=pd.Timestamp("2090-01-01"))).feature)
    assert drift_table(dated, dated.assign(time=pd.Timestamp("2090-01-01")), columns=["time"]).flag.all()
    same = drift_table(train, train)
    assert (same.psi == 0).all() and (same.outside_share == 0).all() and not same.flag.any()


def test_values_outside_the_training_range_are_flagged():
    train = pd.DataFrame({"x": np.linspace(0.0, 1.0, 1_000)})
    scenario = pd.DataFrame({"x": np.r_[np.linspace(0.0, 1.0, 900), np.full(100, 1.5)]})
    assert outside_share(train.x, scenario.x) == pytest.approx(0.1)
    row = drift_table(train, scenario).iloc[0]
    assert row.outside_share > OUTSIDE_THRESHOLD and row.flag


def test_categorical_drift_new_category_and_integer_codes():
    train = pd.DataFrame({"lc": np.repeat([1, 2, 3], 100)})
    scenario = pd.DataFrame({"lc": np.r_[np.repeat([1, 2, 3], 90), np.repeat(9, 30)]})
    row = drift_table(train, scenario, categorical=["lc"]).iloc[0]
    assert row.kind == "categorical" and row.outside_share == pytest.approx(0.1) and row.flag
    assert psi(train.lc, scenario.lc, categorical=True) > 0


def test_missing_values_are_dropped_and_constant_features_binned():
    train = np.r_[np.full(10, 2.0), np.nan]
    assert numeric_bins(train).tolist() == [2.0]
    assert psi(train, [2.0, 2.0, np.nan]) == 0.0
    assert psi(train, [3.0, 3.0]) > PSI_THRESHOLD
    assert np.isnan(psi([np.nan], [1.0]))


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(1, 200), elements=finite), arrays(np.float64, st.integers(1, 200), elements=finite))
def test_psi_is_non_negative_and_zero_against_itself(x, y):
    assert psi(x, y) >= 0.0
    assert psi(x, x) == 0.0
    assert psi(y, x) >= 0.0


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=50),
       st.lists(st.sampled_from(["a", "b", "c", "e"]), min_size=1, max_size=50))
def test_categorical_psi_is_non_negative_and_zero_against_itself(x, y):
    assert psi(x, y, categorical=True) >= 0.0
    assert psi(x, x, categorical=True) == 0.0
