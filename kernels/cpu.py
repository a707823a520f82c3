"""Numba CPU kernels (the CPU production path). Same functions and semantics as :mod:`kernels.reference`.

Race freedom:

* sparse kernels sort the links by destination (an O(n_links) counting sort) and run
  ``prange`` over destination cells, so each output cell is written by one thread only;
* the separable class kernel works on blocks of row links: ``prange`` over the row links of a
  block, each writing a thread-private row buffer of shape (n_dst_cols, ...), then ``prange``
  over target columns to add the block's buffers into the output. Memory is
  O(block * n_dst_cols), never proportional to the input map, so callers can stream row chunks
  and add into ``out=``;
* the separable weighted sum and min/max go rows first: per target row (and block of source
  columns, one task each) the column profiles over its source rows (``sum_i w_i x[i, j]``, the
  valid weight, the squares; or the column minimum and maximum) in long unit-stride loops, then
  per target row (one thread each) the column runs over the profiles. Per-run work is paid once
  per target row instead of once per source row: ~5x faster on 0.1 deg -> 1 deg (runs of 10
  columns). Profiles are held for at most ``PROFILE_BYTES`` of target rows at a time. The sum over
  the source rows of one call is grouped per target row, so streaming the same rows in other
  chunks changes a sum by rounding only.

Separable inner loops work on *runs* of column links (consecutive source columns with one target
column and, to RUN_RTOL, equal weight, see :func:`kernels.runs.col_runs`; given as
:class:`~kernels.runs.ColumnRuns` or made once per call from links): a run sums x (or counts classes with
integer counters) and multiplies by the weight once. The class kernel reads 8/16-bit
codes through a slot lookup table with four interleaved counter sets (breaks the store-to-load
dependency of runs of equal classes), so it is one streaming pass over the uint8 map.
"""

from __future__ import annotations

import os

# numba's OpenMP threading layer (GNU libgomp) spins by default while waiting at the end of every
# parallel region. On an oversubscribed machine (dask workers x numba threads, shared CI runners)
# the spinning threads starve the ones with work: a tiny kernel call took 30 ms instead of 0.04 ms
# here. Passive waiting costs microseconds per region on an idle node. Only a default: an
# OMP_WAIT_POLICY set by the user wins, and it must be set before OpenMP starts in this process.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba
import numpy as np
from numba import njit, prange

from ._common import (
    check_classes,
    check_links,
    check_out,
    check_separable,
    check_x,
    invalid_codes_error,
    map_codes,
    slot_lut,
)
from .runs import ColumnRuns, col_runs

_BUF_BYTES = 64 * 2**20  # cap for the per-block row buffers of the separable class kernel
#: cap for the column profiles of the separable weighted sum and min/max (one pass at a time)
PROFILE_BYTES = 16 * 2**20


# ----------------------------------------------------------------------------- helpers


@njit(cache=True)
def _csr_by_dst(dst, n_dst):
    """Counting sort of links by destination: offsets (n_dst+1) and a stable permutation."""
    n = dst.size
    off = np.zeros(n_dst + 1, np.int64)
    for k in range(n):
        off[dst[k] + 1] += 1
    for d in range(n_dst):
        off[d + 1] += off[d]
    pos = off[:-1].copy()
    perm = np.empty(n, np.int64)
    for k in range(n):
        d = dst[k]
        perm[pos[d]] = k
        pos[d] += 1
    return off, perm


def _runs(cols) -> ColumnRuns:
    """The column runs of ``cols`` (checked links or runs, :func:`~kernels._common.check_separable`)."""
    return cols if isinstance(cols, ColumnRuns) else col_runs(*cols)


def _block_size(n_row_links, per_row_bytes):
    nt = numba.get_num_threads()
    cap = max(1, _BUF_BYTES // max(per_row_bytes, 1))
    return int(max(1, min(n_row_links, 8 * nt, cap)))


def _prepare_codes(classes, n_classes, lut):
    """Return (codes, slot_table) for the class kernels: 8/16-bit codes (unsigned view) and a table
    code -> slot (0 missing, c + 1 class c, n_classes + 1 invalid). Wider integer codes (rare) are
    mapped to 16-bit slots first with one vectorised pass, so the kernels exist in two variants only."""
    if classes.dtype.itemsize <= 2:
        table, udt = slot_lut(classes.dtype, n_classes, lut)
        return classes.view(udt), table
    if n_classes + 2 > 2**16:
        raise ValueError(f"at most {2**16 - 2} classes are supported, got n_classes={n_classes}")
    cls = map_codes(classes, n_classes, lut) if lut is not None else classes
    slots = np.where(cls < 0, 0, np.where(cls >= n_classes, n_classes + 1, cls + 1)).astype(np.uint16)
    return slots, np.arange(n_classes + 2, dtype=np.int32)


# ----------------------------------------------------------------------------- sparse


@njit(parallel=True, cache=True)
def _sparse_ws(x, src, w, off, perm, num, den, sq, squares):
    nb = x.shape[0]
    n_dst = off.size - 1
    for d in prange(n_dst):
        for b in range(nb):
            s = 0.0
            s2 = 0.0
            a = 0.0
            for k in range(off[d], off[d + 1]):
                ll = perm[k]
                v = np.float64(x[b, src[ll]])
                if v - v == 0.0:  # finite
                    wl = w[ll]
                    s += wl * v
                    s2 += wl * v * v
                    a += wl
            num[b, d] += s
            den[b, d] += a
            if squares:
                sq[b, d] += s2


def sparse_weighted_sum(x, src, dst, w, n_dst, *, squares=False, out=None):
    """num[b,d] = sum_l w_l x[b,src_l] over finite x; den = sum of those w_l; sq = sum w x^2."""
    x = check_x(x, 2)
    nb, n_src = x.shape
    src, dst, w = check_links(src, dst, w, n_src, n_dst)
    names = ("num", "den", "sq") if squares else ("num", "den")
    shapes = [(nb, n_dst)] * len(names)
    res = tuple(np.zeros(s) for s in shapes) if out is None else check_out(out, shapes, names)
    off, perm = _csr_by_dst(dst, n_dst)
    sq = res[2] if squares else np.zeros((1, 1))
    _sparse_ws(x, src, w, off, perm, res[0], res[1], sq, squares)
    return res


@njit(parallel=True, cache=True)
def _sparse_cls(codes, table, src, w, off, perm, n_classes, out, bad):
    n_dst = off.size - 1
    for d in prange(n_dst):
        nbad = 0
        for k in range(off[d], off[d + 1]):
            ll = perm[k]
            slot = table[codes[src[ll]]]
            if slot == 0:
                continue
            if slot > n_classes:
                nbad += 1
                continue
            out[d, slot - 1] += w[ll]
        bad[d] = nbad


def sparse_class_sum(classes, src, dst, w, n_dst, n_classes, *, lut=None, out=None):
    """out[d, c] = sum of w_l over links into d whose source has class c (negative = missing)."""
    classes = check_classes(classes, 1, n_classes)
    src, dst, w = check_links(src, dst, w, classes.shape[0], n_dst)
    shape = (n_dst, n_classes)
    res = np.zeros(shape) if out is None else check_out((out,), [shape], ("out",))[0]
    codes, table = _prepare_codes(classes, n_classes, lut)
    off, perm = _csr_by_dst(dst, n_dst)
    bad = np.zeros(n_dst, np.int64)
    _sparse_cls(codes, table, src, w, off, perm, n_classes, res, bad)
    if bad.any():
        raise invalid_codes_error(classes, n_classes, lut)
    return res


@njit(parallel=True, cache=True)
def _sparse_mm(x, src, off, perm, mn, mx):
    nb = x.shape[0]
    n_dst = off.size - 1
    for d in prange(n_dst):
        for b in range(nb):
            lo = np.inf
            hi = -np.inf
            for k in range(off[d], off[d + 1]):
                v = np.float64(x[b, src[perm[k]]])
                if v - v == 0.0:
                    if v < lo:
                        lo = v
                    if v > hi:
                        hi = v
            if lo <= hi:
                if not (mn[b, d] <= lo):  # NaN (empty) or larger
                    mn[b, d] = lo
                if not (mx[b, d] >= hi):
                    mx[b, d] = hi


def _new_min_max(shape, out):
    if out is None:
        return np.full(shape, np.nan), np.full(shape, np.nan)
    return check_out(out, [shape] * 2, ("mn", "mx"))


def sparse_min_max(x, src, dst, n_dst, *, out=None):
    """mn[b,d], mx[b,d]: min and max of finite x[b,src_l] over links into d; NaN where none."""
    x = check_x(x, 2)
    nb, n_src = x.shape
    src, dst, _ = check_links(src, dst, None, n_src, n_dst)
    mn, mx = _new_min_max((nb, n_dst), out)
    off, perm = _csr_by_dst(dst, n_dst)
    _sparse_mm(x, src, off, perm, mn, mx)
    return mn, mx


# ----------------------------------------------------------------------------- separable


@njit(inline="always", cache=True)
def _profile_task(task, ncb, cb, width):
    """Task -> (profile row, first and end column) of the profile kernels: ``ncb`` blocks of ``cb`` columns per row."""
    c0 = (task % ncb) * cb
    return task // ncb, c0, min(width, c0 + cb)


@njit(parallel=True, cache=True)
def _sep_ws(x, ksrc, kw, koff, dsts, j0, ln, rq, rwt, num, den, sq, squares, jlo, cb, prof):
    # phase 1: per target row d and block of source columns, the row-weighted column profiles
    # sum_i w_i x[i, j], sum_i w_i [x finite], sum_i w_i x^2: long unit-stride loops over j
    nb = x.shape[0]
    nd = dsts.size
    width = prof.shape[3]
    ncb = (width + cb - 1) // cb
    for task in prange(nd * ncb):
        d, c0, c1 = _profile_task(task, ncb, cb, width)
        prof[d, :, :, c0:c1] = 0.0
        for k in range(koff[d], koff[d + 1]):
            i = ksrc[k]
            w = kw[k]
            for b in range(nb):
                row = x[b, i, jlo + c0:jlo + c1]
                pn = prof[d, 0, b, c0:c1]
                pd = prof[d, 1, b, c0:c1]
                if squares:
                    ps = prof[d, 2, b, c0:c1]
                    for j in range(c1 - c0):
                        v = np.float64(row[j])
                        ok = v - v == 0.0
                        pn[j] += w * v if ok else 0.0
                        pd[j] += w if ok else 0.0
                        ps[j] += w * v * v if ok else 0.0
                else:
                    for j in range(c1 - c0):
                        v = np.float64(row[j])
                        ok = v - v == 0.0
                        pn[j] += w * v if ok else 0.0
                        pd[j] += w if ok else 0.0
    # phase 2: the runs of column links over the profiles (one target row per thread: no races)
    for d in prange(nd):
        p = dsts[d]
        for b in range(nb):
            for r in range(j0.size):
                s = 0.0
                n = 0.0
                s2 = 0.0
                for j in range(j0[r] - jlo, j0[r] - jlo + ln[r]):
                    s += prof[d, 0, b, j]
                    n += prof[d, 1, b, j]
                    if squares:
                        s2 += prof[d, 2, b, j]
                q = rq[r]
                num[b, p, q] += rwt[r] * s
                den[b, p, q] += rwt[r] * n
                if squares:
                    sq[b, p, q] += rwt[r] * s2


def _by_target_row(rsrc, rdst, rw):
    """Row links grouped by target row (stable: source order kept within a row): the source rows and
    weights, the CSR offsets per target row present, and those target rows."""
    order = np.argsort(rdst, kind="stable")
    kd = rdst[order]
    dsts, starts = np.unique(kd, return_index=True)
    return rsrc[order], rw[order], np.append(starts, kd.size).astype(np.int64), dsts


def _profile_passes(n_rows: int, nb: int, j0, ln, n_acc: int):
    """Passes over the target rows for the profile kernels: ``(first, end, jlo, cb, profiles)``.

    Each pass holds the profiles (``n_acc`` x ``nb`` x the source columns the runs touch, float64)
    of as many target rows as fit in :data:`PROFILE_BYTES` (at least one); ``cb`` cuts the columns into
    enough (row, column block) tasks for every thread, blocks of at least 512 columns.
    """
    jlo, jhi = int(j0.min()), int((j0 + ln).max())
    width = jhi - jlo
    step = max(1, PROFILE_BYTES // max(n_acc * nb * width * 8, 1))
    nt = numba.get_num_threads()
    for a in range(0, n_rows, step):
        b = min(n_rows, a + step)
        ncb = max(1, min(-(-4 * nt // (b - a)), width // 512))
        yield a, b, jlo, -(-width // ncb), np.empty((b - a, n_acc, nb, width))


def separable_weighted_sum(x, rows, cols, n_dst_rows, n_dst_cols, *, squares=False, out=None):
    """num[b,p,q] = sum over fine (i,j) of rw*cw*x[b,i,j] (finite x); den, sq likewise."""
    x = check_x(x, 3)
    nb = x.shape[0]
    (rsrc, rdst, rw), cols = check_separable(x.shape, rows, cols, n_dst_rows, n_dst_cols)
    names = ("num", "den", "sq") if squares else ("num", "den")
    shapes = [(nb, n_dst_rows, n_dst_cols)] * len(names)
    res = tuple(np.zeros(s) for s in shapes) if out is None else check_out(out, shapes, names)
    j0, ln, rq, rwt = _runs(cols)
    if not (rsrc.size and j0.size):
        return res
    sq = res[2] if squares else np.zeros((1, 1, 1))
    ksrc, kw, koff, dsts = _by_target_row(rsrc, rdst, rw)
    for a, b, jlo, cb, prof in _profile_passes(dsts.size, nb, j0, ln, len(names)):
        _sep_ws(x, ksrc, kw, koff[a:b + 1], dsts[a:b], j0, ln, rq, rwt, res[0], res[1], sq, squares, jlo, cb, prof)
    return res


@njit(parallel=True, cache=True)
def _sep_cls(codes, table, rsrc, rdst, rw, j0, ln, rq, rwt, n_classes, out, bad, block):
    n_rl = rsrc.size
    ncol = out.shape[1]
    ns = n_classes + 2
    buf = np.empty((block, ncol, n_classes))
    for start in range(0, n_rl, block):
        m = min(block, n_rl - start)
        for t in prange(m):
            i = rsrc[start + t]
            buf[t, :, :] = 0.0
            # four interleaved counter sets: consecutive equal codes hit different addresses
            c0 = np.zeros(ns, np.int32)
            c1 = np.zeros(ns, np.int32)
            c2 = np.zeros(ns, np.int32)
            c3 = np.zeros(ns, np.int32)
            nbad = 0
            for r in range(j0.size):
                a = j0[r]
                e = a + ln[r]
                j = a
                while j + 4 <= e:
                    c0[table[codes[i, j]]] += 1
                    c1[table[codes[i, j + 1]]] += 1
                    c2[table[codes[i, j + 2]]] += 1
                    c3[table[codes[i, j + 3]]] += 1
                    j += 4
                while j < e:
                    c0[table[codes[i, j]]] += 1
                    j += 1
                q = rq[r]
                wr = rwt[r]
                for c in range(n_classes):
                    buf[t, q, c] += wr * np.float64(c0[c + 1] + c1[c + 1] + c2[c + 1] + c3[c + 1])
                nbad += c0[ns - 1] + c1[ns - 1] + c2[ns - 1] + c3[ns - 1]
                c0[:] = 0
                c1[:] = 0
                c2[:] = 0
                c3[:] = 0
            bad[start + t] = nbad
        for q in prange(ncol):
            for t in range(m):
                p = rdst[start + t]
                w = rw[start + t]
                for c in range(n_classes):
                    out[p, q, c] += w * buf[t, q, c]


def separable_class_sum(classes, rows, cols, n_dst_rows, n_dst_cols, n_classes, *, lut=None, out=None):
    """out[p,q,c] = sum over fine (i,j) of class c of rw*cw (negative codes = missing)."""
    classes = check_classes(classes, 2, n_classes)
    (rsrc, rdst, rw), cols = check_separable(classes.shape, rows, cols, n_dst_rows, n_dst_cols)
    shape = (n_dst_rows, n_dst_cols, n_classes)
    res = np.zeros(shape) if out is None else check_out((out,), [shape], ("out",))[0]
    codes, table = _prepare_codes(classes, n_classes, lut)
    j0, ln, rq, rwt = _runs(cols)
    bad = np.zeros(rsrc.size, np.int64)
    block = _block_size(rsrc.size, n_dst_cols * n_classes * 8)
    if rsrc.size and j0.size:
        _sep_cls(codes, table, rsrc, rdst, rw, j0, ln, rq, rwt, n_classes, res, bad, block)
    if bad.any():
        raise invalid_codes_error(classes, n_classes, lut)
    return res


@njit(parallel=True, cache=True)
def _sep_mm(x, ksrc, koff, dsts, j0, ln, rq, mn, mx, jlo, cb, prof):
    # as _sep_ws: per target row the column-wise minimum and maximum over its source rows, then the runs
    nb = x.shape[0]
    nd = dsts.size
    width = prof.shape[3]
    ncb = (width + cb - 1) // cb
    for task in prange(nd * ncb):
        d, c0, c1 = _profile_task(task, ncb, cb, width)
        prof[d, 0, :, c0:c1] = np.inf
        prof[d, 1, :, c0:c1] = -np.inf
        for k in range(koff[d], koff[d + 1]):
            i = ksrc[k]
            for b in range(nb):
                row = x[b, i, jlo + c0:jlo + c1]
                lo = prof[d, 0, b, c0:c1]
                hi = prof[d, 1, b, c0:c1]
                for j in range(c1 - c0):
                    v = np.float64(row[j])
                    ok = v - v == 0.0
                    lo[j] = min(lo[j], v) if ok else lo[j]
                    hi[j] = max(hi[j], v) if ok else hi[j]
    for d in prange(nd):
        p = dsts[d]
        for b in range(nb):
            for r in range(j0.size):
                lo = np.inf
                hi = -np.inf
                for j in range(j0[r] - jlo, j0[r] - jlo + ln[r]):
                    lo = min(lo, prof[d, 0, b, j])
                    hi = max(hi, prof[d, 1, b, j])
                if lo <= hi:
                    q = rq[r]
                    if not (mn[b, p, q] <= lo):
                        mn[b, p, q] = lo
                    if not (mx[b, p, q] >= hi):
                        mx[b, p, q] = hi


def separable_min_max(x, rows, cols, n_dst_rows, n_dst_cols, *, out=None):
    """mn, mx (nb, n_dst_rows, n_dst_cols) over every linked fine cell with finite x; NaN where none."""
    x = check_x(x, 3)
    nb = x.shape[0]
    (rsrc, rdst, rw), cols = check_separable(x.shape, rows, cols, n_dst_rows, n_dst_cols)
    mn, mx = _new_min_max((nb, n_dst_rows, n_dst_cols), out)
    # min/max ignore the weights: runs made here only need consecutive columns with one target
    j0, ln, rq, _ = cols if isinstance(cols, ColumnRuns) else col_runs(cols[0], cols[1], np.zeros_like(cols[2]))
    if rsrc.size and j0.size:
        ksrc, _, koff, dsts = _by_target_row(rsrc, rdst, rw)
        for a, b, jlo, cb, prof in _profile_passes(dsts.size, nb, j0, ln, 2):
            _sep_mm(x, ksrc, koff[a:b + 1], dsts[a:b], j0, ln, rq, mn, mx, jlo, cb, prof)
    return mn, mx
