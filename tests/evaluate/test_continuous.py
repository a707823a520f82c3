"""LAI metrics against hand-computed and scikit-learn / numpy / scikit-image references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr
from skimage.metrics import structural_similarity
from sklearn.metrics import mean_squared_error, r2_score

from pipeline.evaluate.continuous import (
    CONTINUOUS_METRICS,
    bias,
    kge,
    kge_components,
    mae,
    pearson_r,
    r2,
    rmse,
    ssim,
)


def _data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.gamma(2.0, 1.5, n)
    p = 0.8 * y + rng.normal(0.3, 0.5, n)
    w = rng.uniform(0.2, 2.0, n)
    return y, p, w


def test_hand_computed_values():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([2.0, 2.0, 4.0, 3.0])
    assert rmse(y, p) == pytest.approx(np.sqrt(3 / 4))
    assert mae(y, p) == pytest.approx(3 / 4)
    assert bias(y, p) == pytest.approx(1 / 4)
    # R² = 1 - SSE / SST = 1 - 3 / 5
    assert r2(y, p) == pytest.approx(0.4)
    # weights 1, 1, 1, 3: errors 1, 0, 1, -1
    w = np.array([1.0, 1.0, 1.0, 3.0])
    assert mae(y, p, w) == pytest.approx(5 / 6)
    assert bias(y, p, w) == pytest.approx(-1 / 6)
    assert rmse(y, p, w) == pytest.approx(np.sqrt(5 / 6))


def test_unweighted_metrics_match_references():
    y, p, _ = _data()
    assert rmse(y, p) == pytest.approx(np.sqrt(mean_squared_error(y, p)))
    assert mae(y, p) == pytest.approx(np.mean(np.abs(p - y)))
    assert bias(y, p) == pytest.approx(np.mean(p - y))
    assert r2(y, p) == pytest.approx(r2_score(y, p))
    assert pearson_r(y, p) == pytest.approx(pearsonr(y, p).statistic)


def test_weighted_metrics_match_references():
    y, p, w = _data()
    assert rmse(y, p, w) == pytest.approx(np.sqrt(np.sum(w * (p - y) ** 2) / w.sum()))
    assert r2(y, p, w) == pytest.approx(r2_score(y, p, sample_weight=w))
    my, mp = np.average(y, weights=w), np.average(p, weights=w)
    cov = np.sum(w * (y - my) * (p - mp))
    r_ref = cov / np.sqrt(np.sum(w * (y - my) ** 2) * np.sum(w * (p - mp) ** 2))
    assert pearson_r(y, p, w) == pytest.approx(r_ref)
    alpha_ref = np.sqrt(np.sum(w * (p - mp) ** 2) / np.sum(w * (y - my) ** 2))
    r, alpha, beta = kge_components(y, p, w)
    assert (r, alpha, beta) == pytest.approx((r_ref, alpha_ref, mp / my))
    assert kge(y, p, w) == pytest.approx(1 - np.sqrt((r_ref - 1) ** 2 + (alpha_ref - 1) ** 2 + (mp / my - 1) ** 2))


@pytest.mark.parametrize("name", sorted(CONTINUOUS_METRICS))
def test_duplicating_a_row_equals_doubling_its_weight(name):
    fn = CONTINUOUS_METRICS[name]
    y, p, w = _data(50, seed=1)
    dup = np.r_[np.arange(50), [3, 3, 17]]
    w2 = w.copy()
    w2[3] *= 3
    w2[17] *= 2
    assert fn(y, p, w2) == pytest.approx(fn(y[dup], p[dup], w[dup]), rel=1e-12)


@pytest.mark.parametrize("name", sorted(CONTINUOUS_METRICS))
def test_missing_rows_are_skipped(name):
    fn = CONTINUOUS_METRICS[name]
    y, p, w = _data(60, seed=2)
    y2, p2, w2 = y.copy(), p.copy(), w.copy()
    y2[[1, 5]] = np.nan
    p2[9] = np.inf
    w2[20] = np.nan
    keep = np.setdiff1d(np.arange(60), [1, 5, 9, 20])
    assert fn(y2, p2, w2) == pytest.approx(fn(y[keep], p[keep], w[keep]), rel=1e-12)
    assert np.isnan(fn(np.full(3, np.nan), p[:3]))


def test_kge_is_one_for_a_perfect_prediction():
    y, _, w = _data()
    assert kge(y, y) == pytest.approx(1.0)
    assert kge(y, y, w) == pytest.approx(1.0)
    assert kge_components(y, y) == pytest.approx((1.0, 1.0, 1.0))


def test_kge_penalises_each_component():
    y, _, _ = _data()
    # a scaled prediction keeps r = 1; alpha = beta = 1.2
    assert kge(y, 1.2 * y) == pytest.approx(1 - np.sqrt(2 * 0.2**2))


def test_maps_are_raveled_and_bad_weights_refused():
    y, p, w = _data(64)
    assert rmse(y.reshape(8, 8), p.reshape(8, 8), w.reshape(8, 8)) == pytest.approx(rmse(y, p, w))
    with pytest.raises(ValueError, match="non-negative"):
        rmse(y, p, -w)
    with pytest.raises(ValueError, match="rows"):
        rmse(y, p[:-1])
    assert np.isnan(rmse(y, p, np.zeros_like(w)))
    assert np.isnan(r2(y[:1], p[:1]))


def _field(shape=(40, 50), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return 3 + np.sin(yy / 5.0) * np.cos(xx / 7.0) + 0.1 * rng.normal(size=shape)


def test_ssim_is_one_for_identical_maps_with_holes():
    t = _field()
    t[5:12, 10:20] = np.nan
    assert ssim(t, t.copy()) == pytest.approx(1.0)


def test_ssim_matches_scikit_image_without_missing_cells():
    t = _field()
    p = t + np.random.default_rng(3).normal(0, 0.3, t.shape)
    dr = max(t.max(), p.max()) - min(t.min(), p.min())
    assert ssim(t, p) == pytest.approx(structural_similarity(t, p, win_size=7, data_range=dr))
    assert ssim(t, p) < 0.95


def test_ssim_ignores_windows_touching_missing_cells():
    t = _field()
    p = t + np.random.default_rng(4).normal(0, 0.3, t.shape)
    p[20:25, 20:25] = np.nan
    a = ssim(t, p, data_range=4.0)
    # what lies under the hole (in the truth) cannot change the score
    t2 = t.copy()
    t2[20:25, 20:25] = 100.0
    assert ssim(t2, p, data_range=4.0) == pytest.approx(a)
    # uniform weights change nothing; all-NaN maps give NaN; non-2-D maps are refused
    assert ssim(t, p, data_range=4.0, weights=np.ones(t.shape)) == pytest.approx(a)
    assert np.isnan(ssim(np.full(t.shape, np.nan), p))
    with pytest.raises(ValueError, match="2-D"):
        ssim(t.ravel(), p.ravel())
