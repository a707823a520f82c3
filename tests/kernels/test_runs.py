"""Column runs (kernels.runs): compression of column links, their expansion, their checks, and
every engine giving the same sums from runs as from the links they were made of."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels import cpu, gpu
from kernels import reference as ref
from kernels.runs import RUN_RTOL, ColumnRuns, col_runs, run_links
from tests.helpers import kernel_cases as kc

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.integers(1, 6), st.booleans())
def test_runs_keep_every_link_and_each_target_columns_weight(seed, nx, nc, regular):
    rng = np.random.default_rng(seed)
    cs, cd, cw = kc.axis_links(rng, nx, nc, regular)
    runs = col_runs(cs, cd, cw)
    assert (runs.length >= 1).all() and runs.length.sum() == cs.size
    s, d, w = run_links(runs)
    order = np.lexsort((cd, cs))  # runs come sorted by source, then target column
    np.testing.assert_array_equal(s, cs[order])
    np.testing.assert_array_equal(d, cd[order])
    np.testing.assert_allclose(w, cw[order], rtol=2 * RUN_RTOL, atol=0)
    # a run's mean weight keeps its total: every target column's weight is kept to rounding
    np.testing.assert_allclose(np.bincount(d, weights=w, minlength=nc), np.bincount(cd, weights=cw, minlength=nc),
                               rtol=1e-13, atol=1e-15)


def test_a_regular_axis_becomes_one_run_per_piece():
    # 1 km -> 1 deg: 120 whole columns per target column, no partial cells
    cs, cd, cw = kc.axis_links(None, 43200, 360, True)
    runs = col_runs(cs, cd, cw)
    assert runs.start.size == 360 and (runs.length == 120).all()
    np.testing.assert_array_equal(runs.dst, np.arange(360))
    # 3 source columns onto 2 targets: the middle column is split, giving four runs
    runs = col_runs(*kc.axis_links(None, 3, 2, True))
    np.testing.assert_array_equal(runs.start, [0, 1, 1, 2])
    np.testing.assert_array_equal(runs.dst, [0, 0, 1, 1])


@SETTINGS
@given(kc.separable_params)
def test_every_engine_sums_runs_as_the_reference_sums_links(p):
    x, rows, cols, cls = kc.separable_inputs(p)
    runs = col_runs(*cols)
    nr, nc, k = p["nr"], p["nc"], p["n_classes"]
    for eng in (ref, cpu):
        kc._close(eng.separable_weighted_sum(x, rows, runs, nr, nc, squares=p["squares"]),
                  ref.separable_weighted_sum(x, rows, cols, nr, nc, squares=p["squares"]))
        kc._close(eng.separable_class_sum(cls, rows, runs, nr, nc, k), ref.separable_class_sum(cls, rows, cols, nr, nc, k))
        kc._equal(eng.separable_min_max(x, rows, runs, nr, nc), ref.separable_min_max(x, rows, cols, nr, nc))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kc.separable_params)
def test_emulated_cuda_engine_takes_runs(emulated_module, p):
    eng = gpu.Engine(np, emulated_module, block=32, max_grid=3)
    x, rows, cols, cls = kc.separable_inputs(p)
    runs = col_runs(*cols)
    nr, nc, k = p["nr"], p["nc"], p["n_classes"]
    kc._close(eng.separable_weighted_sum(x, rows, runs, nr, nc, squares=True),
              ref.separable_weighted_sum(x, rows, cols, nr, nc, squares=True))
    kc._close(eng.separable_class_sum(cls, rows, runs, nr, nc, k), ref.separable_class_sum(cls, rows, cols, nr, nc, k))
    kc._equal(eng.separable_min_max(x, rows, runs, nr, nc), ref.separable_min_max(x, rows, cols, nr, nc))


def _runs(start, length, dst, w=None):
    start = np.asarray(start)
    return ColumnRuns(start, np.asarray(length), np.asarray(dst), np.ones(start.size) if w is None else np.asarray(w))


@pytest.mark.parametrize("runs,match", [
    (_runs([-1], [2], [0]), r"source columns \[-1, 1\), outside the valid range \[0, 5\)"),
    (_runs([4], [2], [0]), r"source columns \[4, 6\), outside the valid range \[0, 5\)"),
    (_runs([0], [0], [0]), "length >= 1"),
    (_runs([0], [2], [2]), r"target columns in \[2, 2\], outside \[0, 2\)"),
    (ColumnRuns(np.array([0, 1]), np.array([1]), np.array([0]), np.ones(1)), "four 1-D arrays of one length"),
])
@pytest.mark.parametrize("eng", [ref, cpu], ids=["numpy", "numba"])
def test_bad_runs_are_refused(eng, runs, match):
    x = np.ones((1, 2, 5))
    rows = (np.array([0, 1]), np.array([0, 0]), np.ones(2))
    with pytest.raises(ValueError, match=match):
        eng.separable_weighted_sum(x, rows, runs, 1, 2)
