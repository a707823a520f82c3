"""The statistical baselines: their exact behaviour on hand-made tables, and that they beat a constant."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ConfigError
from pipeline.models import TaskSpec, model_class
from pipeline.models.baselines import Bilinear, Climatology, CoarsePrior, ParentMajority
from tests.helpers.synthetic_tasks import (
    GROUP_COLUMNS,
    LULC_CLASSES,
    LULC_GROUPS,
    constant_probabilities,
    log_loss,
    make_lai_task,
    make_lulc_task,
    rmse,
)

# ---------------------------------------------------------------------------- hand-made LULC table
# classes 1, 2 form group "a", classes 3, 4 group "b"; zone Z1 counts (3, 1, 1, 0), zone Z2
# (0, 2, 1, 3), zone Z3 (1, 0, 0, 0); global (4, 3, 2, 3)
SPEC = TaskSpec(task="lulc", target="igbp", features=("fa", "fb"), classes=(1, 2, 3, 4),
                class_groups=("a", "a", "b", "b"), group_columns={"a": "fa", "b": "fb"})
TRAIN_ZONES = ["Z1"] * 5 + ["Z2"] * 6 + ["Z3"]
TRAIN_CLASSES = [1, 1, 1, 2, 3] + [2, 2, 4, 4, 4, 3] + [1]


def _table(zones, fa, fb) -> pd.DataFrame:
    return pd.DataFrame({"koppen": pd.Categorical(zones, categories=["Z1", "Z2", "Z3", "Z9"]),
                         "fa": np.asarray(fa, dtype=float), "fb": np.asarray(fb, dtype=float)})


@pytest.fixture(scope="module")
def train():
    n = len(TRAIN_ZONES)
    return _table(TRAIN_ZONES, np.full(n, 0.5), np.full(n, 0.5)), np.array(TRAIN_CLASSES)


def test_coarse_prior_shares_group_fraction_by_zone_frequency(train):
    model = CoarsePrior(SPEC, {"smoothing": 1.0}).fit(*train)
    p = model.predict(_table(["Z1", "Z9", "Z1"], [0.6, 1.0, 0.25], [0.4, 0.0, 0.25]))
    # Z1 smoothed counts: group a (4, 2), group b (2, 1)
    np.testing.assert_allclose(p[0], [0.6 * 4 / 6, 0.6 * 2 / 6, 0.4 * 2 / 3, 0.4 * 1 / 3])
    # an unseen zone uses the global counts (5, 4 | 3, 4 smoothed): group a shared 5:4
    np.testing.assert_allclose(p[1], [5 / 9, 4 / 9, 0.0, 0.0])
    # fractions summing to 0.5 are renormalised
    np.testing.assert_allclose(p[2], [1 / 3, 1 / 6, 1 / 3, 1 / 6])


def test_coarse_prior_without_smoothing_and_empty_parent(train):
    model = CoarsePrior(SPEC, {"smoothing": 0.0}).fit(*train)
    p = model.predict(_table(["Z1", "Z3", "Z2"], [0.5, 0.0, np.nan], [0.5, 1.0, np.nan]))
    np.testing.assert_allclose(p[0], [0.5 * 0.75, 0.5 * 0.25, 0.5, 0.0])
    # Z3 never saw group b: the global shares of the group (2 : 3)
    np.testing.assert_allclose(p[1], [0.0, 0.0, 0.4, 0.6])
    # no fraction at all: the global class frequencies
    np.testing.assert_allclose(p[2], np.array([4, 3, 2, 3]) / 12)


def test_coarse_prior_reproduces_parent_group_fractions():
    task = make_lulc_task(n_parents=200, seed=3)
    prob = CoarsePrior(task.spec).fit(task.X_train, task.y_train).predict(task.X_test)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, atol=1e-12)
    for g, col in GROUP_COLUMNS.items():
        members = [i for i, cg in enumerate(LULC_GROUPS) if cg == g]
        np.testing.assert_allclose(prob[:, members].sum(axis=1), task.X_test[col].to_numpy(), atol=1e-12)


def test_parent_majority_picks_zone_majority_of_largest_group(train):
    model = ParentMajority(SPEC).fit(*train)
    p = model.predict(_table(["Z1", "Z2", "Z9", "Z3", "Z1"], [0.3, 0.7, 0.1, 0.2, np.nan], [0.7, 0.3, 0.9, 0.8, 0.0]))
    assert p.shape == (5, 4) and set(np.unique(p)) == {0.0, 1.0}
    chosen = np.asarray(SPEC.classes)[p.argmax(axis=1)]
    # Z1 group b -> 3; Z2 group a -> 2; unseen zone, group b -> global (2, 3) -> 4; Z3 never saw
    # group b -> global -> 4; no fraction -> the global majority (4, 3, 2, 3) -> 1
    np.testing.assert_array_equal(chosen, [3, 2, 4, 4, 1])


def test_lulc_baselines_need_group_columns():
    spec = TaskSpec(task="lulc", target="igbp", features=("fa",), classes=(1, 2), class_groups=("a", "b"),
                    group_columns={"a": "fa"})
    with pytest.raises(ConfigError, match="coarse_prior.*group.*'b'"):
        CoarsePrior(spec)
    with pytest.raises(ConfigError, match="class_groups"):
        ParentMajority(TaskSpec(task="lulc", target="igbp", features=("fa",), classes=(1, 2)))


def test_lulc_baseline_refuses_unknown_class_codes(train):
    X, y = train
    with pytest.raises(ConfigError, match="coarse_prior.*\\[7\\]"):
        CoarsePrior(SPEC).fit(X, np.where(y == 4, 7, y))


# ---------------------------------------------------------------------------- hand-made LAI table
LAI_SPEC = TaskSpec(task="lai", target="lai", features=("elevation",))


def _lai_table(rows) -> pd.DataFrame:
    igbp, zone, time = zip(*rows, strict=True)
    return pd.DataFrame({"igbp": pd.Categorical(igbp, categories=[1, 2, 3]),
                         "koppen": pd.Categorical(zone, categories=["A", "B", "C"]),
                         "time": pd.to_datetime(list(time)), "elevation": np.zeros(len(rows))})


LAI_TRAIN = _lai_table([(1, "A", "2019-01-01"), (1, "A", "2020-01-01"), (1, "B", "2019-01-01"),
                        (2, "A", "2019-01-01"), (1, "A", "2019-02-01")])
LAI_Y = np.array([1.0, 3.0, 10.0, 5.0, 7.0])
LAI_QUERY = _lai_table([(1, "A", "2021-01-01"), (1, "B", "2021-01-01"), (2, "B", "2021-01-01"),
                        (3, "A", "2021-01-01"), (1, "A", "2021-03-01"), (1, "C", "2021-01-01"),
                        (2, "A", "2021-01-01"), (1, "A", "2021-02-01"), (1, "A", None)])


def test_climatology_means_and_fallbacks():
    p = Climatology(LAI_SPEC, {"min_count": 1}).fit(LAI_TRAIN, LAI_Y).predict(LAI_QUERY)
    # class x zone x month; class x month for an unseen zone combination; month for an unseen
    # class; global for a month without rows and for a missing time
    np.testing.assert_allclose(p, [2.0, 10.0, 5.0, 19 / 4, 26 / 5, 14 / 3, 5.0, 7.0, 26 / 5])


def test_climatology_min_count_falls_back():
    p = Climatology(LAI_SPEC, {"min_count": 2}).fit(LAI_TRAIN, LAI_Y).predict(LAI_QUERY)
    # (1, B, Jan) has 1 row: class x month (3 rows); (2, A, Jan): 1 row, class x month 1 row,
    # month 4 rows; (1, A, Feb): every level has 1 row: global
    np.testing.assert_allclose(p[[0, 1, 6, 7]], [2.0, 14 / 3, 19 / 4, 26 / 5])


def test_climatology_ignores_missing_targets_and_needs_dates():
    y = LAI_Y.copy()
    y[2] = np.nan
    p = Climatology(LAI_SPEC).fit(LAI_TRAIN, y).predict(LAI_QUERY)
    assert p[1] == pytest.approx(2.0)  # (1, B) unseen now: class x month (1, 3)
    bad = LAI_TRAIN.assign(time=np.arange(len(LAI_TRAIN)))
    with pytest.raises(ConfigError, match="climatology.*datetime64"):
        Climatology(LAI_SPEC).fit(bad, LAI_Y)


def test_bilinear_returns_coarse_column_and_refuses_reconstruction():
    task = make_lai_task(n_parents=20, seed=1)
    model = Bilinear(task.spec).fit(task.X_train, task.y_train)
    np.testing.assert_array_equal(model.predict(task.X_test), task.X_test["lai_coarse"].to_numpy(np.float64))
    reconstruction = make_lai_task(n_parents=20, downscaling=False).spec
    with pytest.raises(ConfigError, match="'bilinear'.*coarse"):
        Bilinear(reconstruction)
    with pytest.raises(ConfigError, match="'my_bilinear'"):
        model_class("bilinear")(reconstruction, name="my_bilinear")


# ---------------------------------------------------------------------------- against a constant
@pytest.fixture(scope="module")
def lulc_task():
    return make_lulc_task(n_parents=400, seed=11)


@pytest.fixture(scope="module")
def lai_task():
    return make_lai_task(n_parents=150, seed=12)


def test_coarse_prior_beats_constant(lulc_task):
    t = lulc_task
    prob = CoarsePrior(t.spec).fit(t.X_train, t.y_train).predict(t.X_test)
    constant = log_loss(constant_probabilities(t.y_train, len(t.y_test)), t.y_test)
    assert log_loss(prob, t.y_test) < 0.85 * constant


def test_parent_majority_beats_constant(lulc_task):
    t = lulc_task
    prob = ParentMajority(t.spec).fit(t.X_train, t.y_train).predict(t.X_test)
    accuracy = np.mean(np.asarray(LULC_CLASSES)[prob.argmax(axis=1)] == t.y_test)
    majority = np.mean(t.y_test == np.bincount(t.y_train).argmax())
    assert accuracy > majority + 0.1


@pytest.mark.parametrize("kind", ["climatology", "bilinear"])
def test_lai_baselines_beat_constant(lai_task, kind):
    t = lai_task
    pred = model_class(kind)(t.spec).fit(t.X_train, t.y_train).predict(t.X_test)
    assert rmse(pred, t.y_test) < 0.9 * rmse(np.full(len(t.y_test), t.y_train.mean()), t.y_test)
