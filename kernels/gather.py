"""Gather of runs of array elements: the valid cells of a grid into the rows of a table.

``gather_runs`` copies, for every leading row ``t`` of a (T, n) array, the runs
``a[t, starts[r] : starts[r] + lens[r]]`` to ``out[t, offs[r] : offs[r] + lens[r]]``. Each run is one
``memcpy`` (an LLVM intrinsic, so the function is cached like the other numba kernels): a 0.05°
European land mask has ~5 000 runs of ~100 cells per field, and a numba slice assignment per
run cost about twice the copy itself (float32: 7.6 ms against 4.4 ms for 12 months).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["gather_runs"]


@intrinsic
def _copy_run(typingctx, dst, dst_at, src, src_at, n):
    """memcpy of ``n`` elements from ``src[src_at:]`` to ``dst[dst_at:]`` (1-D contiguous arrays of one dtype)."""
    sig = types.void(dst, types.intp, src, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        d, d_at, s, s_at, count = args
        dary = context.make_array(signature.args[0])(context, builder, d)
        sary = context.make_array(signature.args[2])(context, builder, s)
        itemsize = context.get_abi_sizeof(context.get_data_type(signature.args[0].dtype))
        cgutils.raw_memcpy(builder, builder.gep(dary.data, [d_at]), builder.gep(sary.data, [s_at]), count, itemsize)
        return context.get_dummy_value()

    return sig, codegen


@njit(nogil=True, cache=True)
def _gather(a, starts, lens, offs, out, nrow, ncol, nout):
    for t in range(nrow):
        for r in range(starts.size):
            _copy_run(out, t * nout + offs[r], a, t * ncol + starts[r], lens[r])


def gather_runs(a: np.ndarray, starts: np.ndarray, lens: np.ndarray, offs: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Copy runs of the columns of ``a`` into ``out``, row by row.

    Parameters
    ----------
    a : numpy.ndarray
        (T, n) C-contiguous array of a numeric (or bool) dtype.
    starts, lens, offs : numpy.ndarray
        int64: per run its first column in ``a``, its length and its first column in ``out``;
        runs must lie inside both arrays (checked).
    out : numpy.ndarray
        (T, m) C-contiguous array of ``a``'s dtype, written in place.

    Returns
    -------
    numpy.ndarray
        ``out``.
    """
    if a.ndim != 2 or out.ndim != 2 or a.shape[0] != out.shape[0] or a.dtype != out.dtype:
        raise ValueError(f"gather_runs: (T, n) -> (T, m) of one dtype expected, got {a.shape} {a.dtype} -> "
                         f"{out.shape} {out.dtype}")
    if not (a.flags.c_contiguous and out.flags.c_contiguous):
        raise ValueError("gather_runs: a and out must be C-contiguous")
    starts, lens, offs = (np.ascontiguousarray(v, dtype=np.int64) for v in (starts, lens, offs))
    if not starts.size == lens.size == offs.size:
        raise ValueError("gather_runs: starts, lens and offs differ in length")
    if starts.size and (lens.min() < 0 or starts.min() < 0 or offs.min() < 0 or (starts + lens).max() > a.shape[1]
                        or (offs + lens).max() > out.shape[1]):
        raise ValueError(f"gather_runs: runs outside the arrays' {a.shape[1]} (source) or {out.shape[1]} (output) "
                         "columns")
    if a.size and out.size and starts.size:
        _gather(a.reshape(-1), starts, lens, offs, out.reshape(-1), a.shape[0], a.shape[1], out.shape[1])
    return out
