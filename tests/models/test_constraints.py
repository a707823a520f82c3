"""The constraint layers: exact coarse group fractions (LULC) and coarse means (LAI), NumPy and torch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import InputDataError
from pipeline.models.constraints import (
    balance_lulc,
    balance_lulc_torch,
    block_means,
    correct_lai,
    correct_lai_torch,
)
from tests.helpers.deep_tasks import lulc_problems

EXACT = 1e-6  # the tolerance the models promise on every coarse cell


def group_fractions(Q, parent, area, class_group, n_parent, G):
    """Area fraction of each group in each coarse cell, from fine probabilities."""
    onehot = np.zeros((Q.shape[1], G))
    onehot[np.arange(Q.shape[1]), class_group] = 1.0
    mass = np.zeros((n_parent, G))
    np.add.at(mass, parent, area[:, None] * (Q @ onehot))
    total = np.bincount(parent, weights=area, minlength=n_parent)
    return mass / total[:, None], total


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lulc_problems())
def test_balance_lulc_rows_and_coarse_fractions_exact(problem):
    probs, parent, area, class_group, fractions = problem
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 'did not converge' warning either
        Q = balance_lulc(probs, parent, area, class_group, fractions)
    assert Q.shape == probs.shape
    assert np.all(Q >= 0)
    np.testing.assert_allclose(Q.sum(axis=1), 1.0, atol=1e-12)
    target = fractions / fractions.sum(axis=1, keepdims=True)
    got, _ = group_fractions(Q, parent, area, class_group, *fractions.shape)
    assert np.max(np.abs(got - target)) < EXACT
    # classes of groups without coarse area get nothing
    zero = (target == 0)[parent][:, class_group]
    assert np.all(Q[zero] == 0)


def test_balance_lulc_keeps_odds_within_a_group_and_is_idempotent():
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(4), 50)
    parent = rng.integers(0, 5, 50)
    area = rng.uniform(1, 2, 50)
    cg = np.array([0, 0, 1, 1])
    fr = rng.dirichlet(np.ones(2), 5)
    Q = balance_lulc(probs, parent, area, cg, fr)
    # one factor per (coarse cell, group): the odds of two classes of a group do not change
    np.testing.assert_allclose(Q[:, 0] / Q[:, 1], probs[:, 0] / probs[:, 1], rtol=1e-10)
    np.testing.assert_allclose(balance_lulc(Q, parent, area, cg, fr), Q, atol=1e-8)


def test_balance_lulc_needed_group_with_zero_probability_gets_its_area():
    # the model gives group 1 no probability anywhere, yet the coarse cell is 30 % group 1
    probs = np.array([[0.5, 0.5, 0.0], [0.9, 0.1, 0.0], [1.0, 0.0, 0.0]])
    area = np.array([1.0, 2.0, 1.0])
    Q = balance_lulc(probs, np.zeros(3, dtype=int), area, np.array([0, 0, 1]), np.array([[0.7, 0.3]]))
    got, _ = group_fractions(Q, np.zeros(3, dtype=int), area, np.array([0, 0, 1]), 1, 2)
    np.testing.assert_allclose(got, [[0.7, 0.3]], atol=1e-9)


def test_balance_lulc_unusable_coarse_cells_are_only_normalised():
    probs = np.array([[2.0, 2.0], [1.0, 3.0], [0.0, 0.0]])
    parent = np.array([0, 1, 1])
    Q = balance_lulc(probs, parent, np.ones(3), np.array([0, 1]), np.array([[0.9, 0.1], [np.nan, 0.5]]))
    np.testing.assert_allclose(Q[1:], [[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_allclose(Q[0], [0.9, 0.1])


def test_balance_lulc_rejects_bad_inputs():
    probs = np.ones((2, 2))
    with pytest.raises(InputDataError, match="non-negative"):
        balance_lulc(probs, [0, 0], [1, 1], [0, 1], [[-0.5, 1.5]])
    with pytest.raises(InputDataError, match="parent"):
        balance_lulc(probs, [0, 3], [1, 1], [0, 1], [[0.5, 0.5]])
    with pytest.raises(InputDataError, match="class_group"):
        balance_lulc(probs, [0, 0], [1, 1], [0, 2], [[0.5, 0.5]])
    with pytest.raises(InputDataError, match="areas"):
        balance_lulc(probs, [0, 0], [1, -1], [0, 1], [[0.5, 0.5]])


def test_balance_lulc_hard_cases_use_newton():
    # a group needed far more than the model allows in one coarse cell: Sinkhorn alone crawls
    rng = np.random.default_rng(0)
    n = 200
    probs = rng.dirichlet(np.ones(3), n)
    probs[:, 2] *= 1e-9
    probs[0, 2] = 0.99
    parent = np.zeros(n, dtype=int)
    area = rng.uniform(0.5, 1.5, n)
    Q = balance_lulc(probs, parent, area, np.array([0, 1, 2]), np.array([[0.05, 0.05, 0.9]]), max_iter=5)
    got, _ = group_fractions(Q, parent, area, np.array([0, 1, 2]), 1, 3)
    np.testing.assert_allclose(got, [[0.05, 0.05, 0.9]], atol=1e-9)


def test_balance_lulc_torch_approaches_exact_and_is_differentiable():
    rng = np.random.default_rng(1)
    n, K = 120, 5
    probs = rng.dirichlet(np.ones(K), n)
    parent = rng.integers(0, 6, n)
    area = rng.uniform(0.5, 2, n)
    cg = np.array([0, 0, 1, 2, 2])
    fr = rng.dirichlet(np.ones(3), 6)
    fr[0, 1] = 0.0
    fr[1] = np.nan  # unconstrained
    exact = balance_lulc(probs, parent, area, cg, fr)
    p = torch.tensor(probs, requires_grad=True)
    args = (torch.tensor(parent), torch.tensor(area), torch.tensor(cg), torch.tensor(fr))
    approx = balance_lulc_torch(p, *args, n_iter=40, eps=1e-12)
    np.testing.assert_allclose(approx.detach().numpy(), exact, atol=1e-7)
    loss = -(torch.log(balance_lulc_torch(p, *args, n_iter=10).clamp_min(1e-12))[:, 0]).sum()
    loss.backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


@st.composite
def lai_problems(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_parent = draw(st.integers(1, 15))
    n = draw(st.integers(n_parent, 10 * n_parent))
    parent = np.concatenate([np.arange(n_parent), rng.integers(0, n_parent, n - n_parent)])
    area = 10 ** rng.uniform(-1, 1, n)
    values = rng.gamma(2.0, 1.0, n) * (rng.random(n) > draw(st.sampled_from([0.0, 0.5, 0.95])))
    values -= draw(st.sampled_from([0.0, 0.3]))  # some negative values: clipped to 0
    coarse = rng.uniform(0, 7, n_parent) * (rng.random(n_parent) > 0.1)
    return values, parent, area, coarse


@settings(max_examples=60, deadline=None)
@given(lai_problems())
def test_correct_lai_reproduces_coarse_means(problem):
    values, parent, area, coarse = problem
    out = correct_lai(values, parent, area, coarse)
    assert np.all(out >= 0)
    means = block_means(out, parent, area, coarse.size)
    assert np.max(np.abs(means - coarse)) < EXACT * max(1.0, coarse.max())


def test_correct_lai_spreads_uniformly_when_fine_sum_is_zero_and_keeps_nan_cells():
    out = correct_lai([0.0, 0.0, 1.0, 3.0], [0, 0, 1, 1], [1.0, 3.0, 1.0, 1.0], [2.0, np.nan])
    np.testing.assert_allclose(out, [2.0, 2.0, 1.0, 3.0])
    with pytest.raises(InputDataError, match="non-negative"):
        correct_lai([1.0], [0], [1.0], [-1.0])


def test_correct_lai_torch_matches_numpy():
    rng = np.random.default_rng(2)
    values = rng.gamma(2.0, 1.0, 40)
    values[:5] = 0.0
    parent = np.r_[np.zeros(5, dtype=int), rng.integers(1, 6, 35)]
    area = rng.uniform(0.5, 2, 40)
    coarse = rng.uniform(0, 5, 6)
    v = torch.tensor(values, requires_grad=True)
    out = correct_lai_torch(v, torch.tensor(parent), torch.tensor(area), torch.tensor(coarse))
    np.testing.assert_allclose(out.detach().numpy(), correct_lai(values, parent, area, coarse), rtol=1e-12)
    out.pow(2).sum().backward()
    assert torch.isfinite(v.grad).all()
