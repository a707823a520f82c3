"""kernels.gather: runs of columns copied row by row, equal to numpy's take over the same columns."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.gather import gather_runs


def _runs(mask):
    edges = np.diff(mask.astype(np.int8), prepend=0, append=0)
    starts = np.flatnonzero(edges == 1)
    lens = np.flatnonzero(edges == -1) - starts
    return starts, lens, np.cumsum(lens) - lens


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 4), st.integers(0, 300),
       st.sampled_from([np.uint8, np.int16, np.int32, np.float32, np.float64, np.bool_]))
def test_gather_equals_take_of_the_masked_columns(seed, rows, n, dtype):
    rng = np.random.default_rng(seed)
    a = (rng.random((rows, n)) * 100).astype(dtype)
    mask = rng.random(n) < rng.random()
    starts, lens, offs = _runs(mask)
    out = np.full((rows, int(mask.sum())), 7, dtype)
    got = gather_runs(a, starts, lens, offs, out)
    assert got is out
    np.testing.assert_array_equal(got, a[:, mask])


@pytest.mark.parametrize("case,match", [
    (dict(starts=[3]), "outside"),
    (dict(lens=[-1]), "outside"),
    (dict(offs=[2]), "outside"),
    (dict(starts=[0, 1]), "differ in length"),
    (dict(out=np.zeros((2, 3), np.float64)), "one dtype"),
    (dict(out=np.zeros((3, 3), np.float32)), "one dtype"),
    (dict(a=np.zeros((2, 8), np.float32)[:, ::2]), "C-contiguous"),
])
def test_bad_runs_and_arrays_are_refused(case, match):
    args = dict(a=np.zeros((2, 4), np.float32), starts=[1], lens=[2], offs=[0], out=np.zeros((2, 3), np.float32))
    args.update(case)
    with pytest.raises(ValueError, match=match):
        gather_runs(args["a"], np.asarray(args["starts"]), np.asarray(args["lens"]), np.asarray(args["offs"]), args["out"])
