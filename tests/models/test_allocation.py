"""Hard LULC maps that keep the coarse quotas: group areas within one fine cell of the quota."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import InputDataError
from pipeline.models.allocation import allocate_quotas
from tests.helpers.deep_tasks import lulc_problems


def group_areas(classes, parent, area, class_group, n_parent, G):
    out = np.zeros((n_parent, G))
    np.add.at(out, (parent, class_group[classes]), area)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lulc_problems())
def test_group_areas_within_one_fine_cell_of_the_quota(problem):
    probs, parent, area, class_group, fractions = problem
    n_parent, G = fractions.shape
    classes = allocate_quotas(probs, parent, area, class_group, fractions)
    assert classes.shape == parent.shape and classes.min() >= 0 and classes.max() < probs.shape[1]
    total = np.bincount(parent, weights=area, minlength=n_parent)
    quota = fractions / fractions.sum(axis=1, keepdims=True) * total[:, None]
    biggest = np.zeros(n_parent)
    np.maximum.at(biggest, parent, area)
    got = group_areas(classes, parent, area, class_group, n_parent, G)
    assert np.all(np.abs(got - quota) < biggest[:, None] * (1 + 1e-9))
    # groups without coarse area get no cell at all
    assert np.all(got[quota == 0] == 0)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_equal_areas_give_the_rounded_quota(seed):
    rng = np.random.default_rng(seed)
    n, K = 40, 4
    probs = rng.dirichlet(np.ones(K), n)
    fr = rng.dirichlet(np.ones(K), 1)
    classes = allocate_quotas(probs, np.zeros(n, dtype=int), np.ones(n), np.arange(K), fr)
    counts = np.bincount(classes, minlength=K)
    assert counts.sum() == n
    assert np.all(np.abs(counts - fr[0] * n) < 1.0)


def test_most_probable_cells_fill_each_group_and_class_is_the_groups_argmax():
    # 4 cells; group 0 = classes {0, 1}, group 1 = class 2; quota: 1 cell of group 1
    probs = np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4]])
    classes = allocate_quotas(probs, np.zeros(4, dtype=int), np.ones(4), np.array([0, 0, 1]), [[0.75, 0.25]])
    # cell 0 is the likeliest group-1 cell; cell 3's group-0 class ties: the first class wins
    np.testing.assert_array_equal(classes, [2, 0, 1, 0])


def test_quotas_matching_argmax_give_argmax():
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(3) * 0.3, 30)
    parent = np.repeat(np.arange(3), 10)
    area = rng.uniform(1, 2, 30)
    arg = probs.argmax(axis=1)
    fr = group_areas(arg, parent, area, np.arange(3), 3, 3)
    np.testing.assert_array_equal(allocate_quotas(probs, parent, area, np.arange(3), fr), arg)


def test_unusable_coarse_cells_fall_back_to_argmax_and_bad_input_is_refused():
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    classes = allocate_quotas(probs, [0, 0], [1.0, 1.0], [0, 1], [[np.nan, np.nan]])
    np.testing.assert_array_equal(classes, [0, 1])
    with pytest.raises(InputDataError, match="class_group"):
        allocate_quotas(probs, [0, 0], [1.0, 1.0], [0, 5], [[0.5, 0.5]])
