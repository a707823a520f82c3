"""Block bootstrap: intervals, their width, the fast path against the row path, the paired test, speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from pipeline.evaluate.bootstrap import block_bootstrap, block_bootstrap_many, paired_block_bootstrap
from pipeline.evaluate.categorical import categorical_metrics
from pipeline.evaluate.continuous import CONTINUOUS_METRICS, mae, rmse


def _blocked(n_blocks, per_block=50, seed=0, noise=0.5):
    """Truth and prediction whose errors share a per-block offset (spatially correlated errors)."""
    rng = np.random.default_rng(seed)
    blocks = np.repeat(np.arange(n_blocks), per_block)
    y = rng.gamma(2.0, 1.5, blocks.size)
    p = y + rng.normal(0.0, 0.3, n_blocks)[blocks] + rng.normal(0.0, noise, blocks.size)
    w = rng.uniform(0.5, 1.5, blocks.size)
    return y, p, w, blocks


def _row_path(fn):
    """The same metric behind a wrapper the fast path does not know: the bootstrap reweights rows."""
    return lambda *arrays, weights=None: fn(*arrays, weights=weights)


def test_interval_contains_the_point_value():
    y, p, w, blocks = _blocked(60)
    for name, (value, lo, hi) in block_bootstrap_many(CONTINUOUS_METRICS, y, p, blocks=blocks, weights=w).items():
        assert lo <= value <= hi, name
        assert value == pytest.approx(CONTINUOUS_METRICS[name](y, p, w))


def test_interval_narrows_with_more_blocks():
    few = block_bootstrap(rmse, *_blocked(20)[:2], blocks=_blocked(20)[3], n=300, seed=1)
    y, p, _, blocks = _blocked(400)
    many = block_bootstrap(rmse, y, p, blocks=blocks, n=300, seed=1)
    assert many.hi - many.lo < 0.5 * (few.hi - few.lo)


@pytest.mark.parametrize("name", sorted(CONTINUOUS_METRICS))
def test_block_sums_give_the_row_path_replicates_continuous(name):
    y, p, w, blocks = _blocked(25, per_block=30, seed=2)
    y[::37] = np.nan
    fn = CONTINUOUS_METRICS[name]
    fast = block_bootstrap(fn, y, p, blocks=blocks, weights=w, n=50, seed=5)
    slow = block_bootstrap(_row_path(fn), y, p, blocks=blocks, weights=w, n=50, seed=5)
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["accuracy", "macro_f1", "miou"])
def test_block_sums_give_the_row_path_replicates_categorical(name):
    rng = np.random.default_rng(3)
    blocks = np.repeat(np.arange(30), 20)
    t = rng.integers(0, 6, blocks.size)
    p = np.where(rng.random(blocks.size) < 0.6, t, rng.integers(0, 6, blocks.size))
    w = rng.uniform(0.5, 1.5, blocks.size)
    fn = categorical_metrics(np.arange(8))[name]  # classes 6 and 7 never occur
    fast = block_bootstrap(fn, t, p, blocks=blocks, weights=w, n=50, seed=6)
    slow = block_bootstrap(_row_path(fn), t, p, blocks=blocks, weights=w, n=50, seed=6)
    np.testing.assert_allclose(fast, slow, rtol=1e-9)
    assert fast.lo <= fast.value <= fast.hi


def test_same_seed_same_interval_whatever_the_row_order():
    y, p, w, blocks = _blocked(40, seed=4)
    order = np.random.default_rng(0).permutation(y.size)
    a = block_bootstrap(mae, y, p, blocks=blocks, weights=w, seed=9)
    b = block_bootstrap(mae, y[order], p[order], blocks=blocks[order], weights=w[order], seed=9)
    assert a == pytest.approx(b)
    assert block_bootstrap(mae, y, p, blocks=blocks, weights=w, seed=10) != a


def test_paired_test_finds_a_clearly_better_model():
    y, p, w, blocks = _blocked(80, seed=5)
    worse = p + np.random.default_rng(1).normal(0.0, 0.8, y.size)
    res = paired_block_bootstrap(rmse, y, p, worse, blocks, w, n=200, seed=0)
    assert res.diff < 0 and res.hi < 0
    assert res.p_value < 0.02


def test_paired_test_of_identical_models_is_not_significant():
    y, p, w, blocks = _blocked(50, seed=6)
    res = paired_block_bootstrap(rmse, y, p, p.copy(), blocks, w, n=200, seed=0)
    assert res.diff == 0.0 and res.p_value > 0.2
    # two models of equal skill: independent noise of the same size
    rng = np.random.default_rng(2)
    a, b = y + rng.normal(0, 0.5, y.size), y + rng.normal(0, 0.5, y.size)
    assert paired_block_bootstrap(mae, y, a, b, blocks, n=200, seed=0).p_value > 0.05


def test_paired_test_uses_the_rows_both_models_predict():
    y, p, w, blocks = _blocked(30, seed=7)
    a, b = p.copy(), p + 0.1
    a[:40] = np.nan
    res = paired_block_bootstrap(rmse, y, a, b, blocks, w, n=20, seed=0)
    assert res.diff == pytest.approx(rmse(y[40:], a[40:], w[40:]) - rmse(y[40:], b[40:], w[40:]))


def test_two_hundred_resamples_of_a_million_rows_take_seconds():
    rng = np.random.default_rng(0)
    n = 1_000_000
    blocks = rng.integers(0, 2_000, n)
    y = rng.gamma(2.0, 1.5, n)
    p = y + rng.normal(0.0, 0.5, n)
    w = rng.uniform(0.5, 1.5, n)
    start = time.perf_counter()
    value, lo, hi = block_bootstrap(rmse, y, p, blocks=blocks, weights=w, n=200, seed=0)
    assert time.perf_counter() - start < 10.0
    assert lo <= value <= hi


def test_bad_arguments_are_refused():
    y, p, _, blocks = _blocked(5)
    with pytest.raises(ValueError, match="blocks"):
        block_bootstrap(rmse, y, p, blocks=blocks[:-1])
    with pytest.raises(ValueError, match="alpha"):
        block_bootstrap(rmse, y, p, blocks=blocks, alpha=1.5)
    with pytest.raises(ValueError, match="block id"):
        block_bootstrap(rmse, y, p, blocks=np.where(blocks == 0, np.nan, blocks))
