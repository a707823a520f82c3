"""Coarse class fractions of the fine prediction: hand example, exact conservation, skipped rows."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluate.fractions import (
    aggregate_to_parent,
    conservation_error,
    fraction_mae,
    predicted_fractions,
)

# classes 0..3 → groups: 0 → 0, 1 → 1, 2 → 1, 3 → none (water)
CLASS_GROUP = np.array([0, 1, 1, -1])


def test_hand_computed_fractions_and_errors():
    parent = np.array([0, 0, 0, 1, 1])
    area = np.array([1.0, 1.0, 2.0, 1.0, 3.0])
    hard = np.array([0, 1, 2, 3, 0])
    agg = predicted_fractions(parent, area, hard, CLASS_GROUP, n_parent=2, n_groups=2)
    # cell 0: group 0 = 1/4, group 1 = 3/4; cell 1: group 0 = 3/4, group 1 = 0 (water is in no group)
    np.testing.assert_allclose(agg, [[0.25, 0.75], [0.75, 0.0]])
    coarse = np.array([[0.25, 0.65], [0.55, 0.0]])
    # per group, cells weighted by covered area 4 and 4: group 0: (0 + 0.2) / 2, group 1: (0.1 + 0) / 2
    np.testing.assert_allclose(fraction_mae(parent, area, hard, CLASS_GROUP, coarse, per_group=True), [0.1, 0.05])
    assert fraction_mae(parent, area, hard, CLASS_GROUP, coarse) == pytest.approx(0.075)
    assert conservation_error(parent, area, hard, CLASS_GROUP, coarse) == pytest.approx(0.2)


def _consistent(seed=0, n_parent=30, per=40):
    """Fine probabilities and the coarse fractions they aggregate to exactly."""
    rng = np.random.default_rng(seed)
    parent = np.repeat(np.arange(n_parent), per)
    area = rng.uniform(0.5, 1.5, parent.size)
    prob = rng.dirichlet(np.ones(4), parent.size)
    member = np.array([[1, 0], [0, 1], [0, 1], [0, 0]], dtype=float)
    num = np.stack([np.bincount(parent, weights=area * (prob @ member)[:, g]) for g in range(2)], axis=1)
    coarse = num / np.bincount(parent, weights=area)[:, None]
    return parent, area, prob, coarse


def test_exactly_consistent_probabilities_have_zero_error():
    parent, area, prob, coarse = _consistent()
    assert fraction_mae(parent, area, prob, CLASS_GROUP, coarse) == pytest.approx(0.0, abs=1e-12)
    assert conservation_error(parent, area, prob, CLASS_GROUP, coarse) < 1e-12


def test_exactly_consistent_hard_map_has_zero_error():
    parent = np.repeat(np.arange(3), 4)
    area = np.ones(12)
    hard = np.array([0, 0, 1, 3, 2, 2, 2, 2, 0, 3, 3, 3])
    coarse = np.array([[0.5, 0.25], [0.0, 1.0], [0.25, 0.0]])
    assert fraction_mae(parent, area, hard, CLASS_GROUP, coarse) == 0.0
    assert conservation_error(parent, area, hard, CLASS_GROUP, coarse) == 0.0


def test_rows_outside_the_grid_missing_predictions_and_inputs_are_skipped():
    parent, area, prob, coarse = _consistent(seed=1)
    parent = parent.copy()
    prob = prob.copy()
    coarse = coarse.copy()
    parent[:5] = -1  # outside the coarse grid: its cell keeps the other rows
    prob[50:60] = np.nan  # missing prediction
    coarse[7, 1] = np.nan  # missing input of one group
    # rebuild the reference from the rows that count
    keep = (parent >= 0) & np.isfinite(prob).all(axis=1)
    ref = predicted_fractions(parent[keep], area[keep], prob[keep], CLASS_GROUP, 30, 2)
    agg = predicted_fractions(parent, area, prob, CLASS_GROUP, 30, 2)
    np.testing.assert_allclose(agg, ref)
    diff = np.abs(ref - coarse)
    assert conservation_error(parent, area, prob, CLASS_GROUP, coarse) == pytest.approx(np.nanmax(diff))


def test_coarse_cells_without_fine_rows_are_nan():
    out = aggregate_to_parent(np.array([0, 0, 2]), np.array([1.0, 3.0, 1.0]), np.array([1.0, 2.0, 5.0]), 3)
    np.testing.assert_allclose(out, [1.75, np.nan, 5.0])
    with pytest.raises(ValueError, match="n_parent"):
        aggregate_to_parent(np.array([0, 3]), np.ones(2), np.ones(2), 3)
    with pytest.raises(ValueError, match="group indices"):
        predicted_fractions(np.array([0]), np.ones(1), np.array([0]), np.array([0, 5]), 1, 2)
