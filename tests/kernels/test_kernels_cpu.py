"""numba kernels (kernels.cpu) against the numpy reference, and the reference against itself
(separable == sparse on the expanded links); argument validation; the kernel contract details."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels import cpu, get_engine, runs
from kernels import reference as ref
from tests.helpers import kernel_cases as kc

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

@SETTINGS
@given(kc.sparse_params)
def test_sparse_numba_matches_reference(p):
    kc.check_sparse(cpu, ref, p)


@SETTINGS
@given(kc.separable_params)
def test_separable_numba_matches_reference(p):
    kc.check_separable(cpu, ref, p)


@settings(max_examples=25, deadline=None)
@given(kc.separable_params, st.integers(1, 5))
def test_chunked_out_accumulation_equals_one_call(p, chunk):
    kc.check_chunked(cpu, p, chunk)


@settings(max_examples=25, deadline=None)
@given(kc.separable_params)
def test_separable_equals_sparse_on_expanded_links(p):
    """The separable path must give what the general sparse path gives on materialised links."""
    x, rows, cols, cls = kc.separable_inputs(p)
    nb, ny, nx = x.shape
    nr, nc, k = p["nr"], p["nc"], p["n_classes"]
    src, dst, w = kc.expand(rows, cols, nx, nc)
    for eng in (ref, cpu):
        sep = eng.separable_weighted_sum(x, rows, cols, nr, nc, squares=True)
        spa = eng.sparse_weighted_sum(x.reshape(nb, ny * nx), src, dst, w, nr * nc, squares=True)
        kc._close(sep, tuple(a.reshape(nb, nr, nc) for a in spa))
        kc._close(eng.separable_class_sum(cls, rows, cols, nr, nc, k),
                  eng.sparse_class_sum(cls.ravel(), src, dst, w, nr * nc, k).reshape(nr, nc, k))
        mm = eng.sparse_min_max(x.reshape(nb, ny * nx), src, dst, nr * nc)
        kc._equal(eng.separable_min_max(x, rows, cols, nr, nc), tuple(a.reshape(nb, nr, nc) for a in mm))


def test_hand_computed_example():
    """Two fine cells into one target, one NaN: num/den/sq, classes and min/max by hand."""
    x = np.array([[2.0, np.nan, 4.0]])
    src, dst, w = np.array([0, 1, 2]), np.array([0, 0, 1]), np.array([0.5, 0.25, 2.0])
    for eng in (ref, cpu):
        num, den, sq = eng.sparse_weighted_sum(x, src, dst, w, 3, squares=True)
        np.testing.assert_array_equal(num, [[1.0, 8.0, 0.0]])
        np.testing.assert_array_equal(den, [[0.5, 2.0, 0.0]])
        np.testing.assert_array_equal(sq, [[2.0, 32.0, 0.0]])
        out = eng.sparse_class_sum(np.array([1, -1, 0]), src, dst, w, 3, 2)
        np.testing.assert_array_equal(out, [[0.0, 0.5], [2.0, 0.0], [0.0, 0.0]])
        mn, mx = eng.sparse_min_max(x, src, dst, 3)
        np.testing.assert_array_equal(mn, [[2.0, 4.0, np.nan]])
        np.testing.assert_array_equal(mx, [[2.0, 4.0, np.nan]])


def test_lut_maps_raw_codes_in_the_kernel():
    """uint8 raw codes (Koppen-like: 0 = no data, 1..5 classes) through lut= equal pre-mapped codes."""
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 6, size=(9, 16)).astype(np.uint8)
    lut = np.array([-1, 0, 1, 2, 3, 4])
    rows = kc.axis_links(rng, 9, 3, True)
    cols = kc.axis_links(rng, 16, 4, True)
    mapped = lut[raw]
    want = ref.separable_class_sum(mapped, rows, cols, 3, 4, 5)
    for eng in (ref, cpu):
        kc._close(eng.separable_class_sum(raw, rows, cols, 3, 4, 5, lut=lut), want)
    with pytest.raises(ValueError, match=r"lut of length 6.*: 9"):
        cpu.separable_class_sum(np.where(raw == 3, 9, raw).astype(np.uint8), rows, cols, 3, 4, 5, lut=lut)


@pytest.mark.parametrize("eng", [ref, cpu], ids=["numpy", "numba"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32])
def test_invalid_class_codes_are_named(eng, dtype):
    cls = np.array([[0, 1, 7], [2, 1, 12]], dtype=dtype)
    rows = (np.array([0, 1]), np.array([0, 0]), np.array([1.0, 1.0]))
    cols = (np.array([0, 1, 2]), np.array([0, 0, 0]), np.array([1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"outside \[0, 3\).*: 7, 12"):
        eng.separable_class_sum(cls, rows, cols, 1, 1, 3)
    with pytest.raises(ValueError, match="7, 12"):
        eng.sparse_class_sum(cls.ravel(), np.arange(6), np.zeros(6, int), np.ones(6), 1, 3)


@pytest.mark.parametrize("eng", [ref, cpu], ids=["numpy", "numba"])
def test_programming_errors_raise_value_error(eng):
    x = np.zeros((1, 4))
    ok = (np.array([0, 3]), np.array([0, 1]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match=r"src holds source indices in \[0, 4\], outside the valid range \[0, 4\)"):
        eng.sparse_weighted_sum(x, np.array([0, 4]), ok[1], ok[2], 2)
    with pytest.raises(ValueError, match="dst holds destination indices"):
        eng.sparse_weighted_sum(x, ok[0], np.array([0, -1]), ok[2], 2)
    with pytest.raises(ValueError, match="differ in length"):
        eng.sparse_min_max(x, ok[0], np.array([0]), 2)
    with pytest.raises(ValueError, match="w has shape"):
        eng.sparse_weighted_sum(x, ok[0], ok[1], np.ones(3), 2)
    with pytest.raises(ValueError, match="2 dimensions"):
        eng.sparse_weighted_sum(x[0], *ok, 2)
    with pytest.raises(ValueError, match="integer array"):
        eng.sparse_weighted_sum(x, ok[0].astype(float), ok[1], ok[2], 2)
    with pytest.raises(ValueError, match="out array 'den' has shape"):
        eng.sparse_weighted_sum(x, *ok, 2, out=(np.zeros((1, 2)), np.zeros((1, 3))))
    with pytest.raises(ValueError, match="tuple of 3 arrays"):
        eng.sparse_weighted_sum(x, *ok, 2, squares=True, out=(np.zeros((1, 2)), np.zeros((1, 2))))
    x3 = np.zeros((1, 2, 4))
    with pytest.raises(ValueError, match="row src"):
        eng.separable_weighted_sum(x3, (np.array([2]), np.array([0]), np.array([1.0])), ok, 1, 2)
    with pytest.raises(ValueError, match="col dst"):
        eng.separable_min_max(x3, (np.array([1]), np.array([0]), np.array([1.0])), ok, 1, 1)
    with pytest.raises(ValueError, match=r"rows must be a tuple \(src, dst, w\)"):
        eng.separable_weighted_sum(x3, (np.array([1]), np.array([0])), ok, 1, 2)
    with pytest.raises(ValueError, match="integer class codes"):
        eng.sparse_class_sum(np.zeros(4), *ok, 2, 3)


def test_noisy_column_weights_still_form_runs_and_conserve():
    """Overlaps with ~1e-12 cancellation noise: numba result within 1e-9 of the reference per class,
    and the total weight per target cell exactly as in the reference up to rounding."""
    rng = np.random.default_rng(7)
    ny, nx, nr, nc, k = 6, 240, 2, 2, 4
    cols = (np.arange(nx), np.arange(nx) // 120, (1.0 / nx) * (1 + 1e-12 * rng.standard_normal(nx)))
    rows = (np.arange(ny), np.arange(ny) // 3, rng.random(ny))
    assert runs.col_runs(*cols)[0].size == 2  # one run per target column
    cls = rng.integers(-1, k, (ny, nx))
    got, want = cpu.separable_class_sum(cls, rows, cols, nr, nc, k), ref.separable_class_sum(cls, rows, cols, nr, nc, k)
    np.testing.assert_allclose(got, want, rtol=2e-9, atol=0)
    np.testing.assert_allclose(got.sum(-1), want.sum(-1), rtol=1e-13)
    # a real weight difference (1e-6) breaks the run and is honoured exactly
    cols2 = (cols[0], cols[1], np.where(np.arange(nx) == 5, 2e-6, 1.0 / nx))
    assert runs.col_runs(*cols2)[0].size == 4
    kc._close(cpu.separable_class_sum(cls, rows, cols2, nr, nc, k), ref.separable_class_sum(cls, rows, cols2, nr, nc, k))


def test_unsorted_and_duplicate_column_links():
    rng = np.random.default_rng(3)
    x = kc.field(rng, (2, 5, 9), np.float64)
    cols = kc.axis_links(rng, 9, 3, True)
    perm = rng.permutation(cols[0].size)
    shuffled = tuple(a[perm] for a in cols)
    dup = tuple(np.concatenate([a, a[:4]]) for a in cols)
    rows = kc.axis_links(rng, 5, 2, True)
    for c in (shuffled, dup):
        kc._close(cpu.separable_weighted_sum(x, rows, c, 2, 3, squares=True),
                  ref.separable_weighted_sum(x, rows, c, 2, 3, squares=True))


def test_empty_inputs():
    z = np.zeros(0, np.int64)
    for eng in (ref, cpu):
        num, den = eng.sparse_weighted_sum(np.zeros((2, 3)), z, z, np.zeros(0), 4)
        assert num.shape == (2, 4) and not num.any() and not den.any()
        mn, mx = eng.separable_min_max(np.zeros((1, 0, 3)), (z, z, np.zeros(0)), (z, z, np.zeros(0)), 2, 2)
        assert mn.shape == (1, 2, 2) and np.isnan(mn).all() and np.isnan(mx).all()
        assert eng.separable_class_sum(np.zeros((0, 3), np.uint8), (z, z, np.zeros(0)),
                                       (z, z, np.zeros(0)), 2, 2, 3).shape == (2, 2, 3)


def test_get_engine():
    assert get_engine("numpy") is ref and get_engine("numba") is cpu
    import kernels.gpu as gpu  # importable without cupy

    assert get_engine("cupy") is gpu
    for mod in (ref, cpu, gpu):
        for name in ("sparse_weighted_sum", "sparse_class_sum", "sparse_min_max",
                     "separable_weighted_sum", "separable_class_sum", "separable_min_max"):
            assert callable(getattr(mod, name))
    with pytest.raises(ValueError, match="unknown kernel engine 'torch'"):
        get_engine("torch")
