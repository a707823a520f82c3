"""Numpy reference kernels: short and obviously right; the oracle for the numba and CUDA kernels.

Contract (identical in :mod:`kernels.cpu` and :mod:`kernels.gpu`):

* weights are float64 overlap areas (not normalised), accumulators are float64;
* ``x`` may be float32 or float64; NaN (any non-finite value) is missing and skipped;
* class codes are integers already mapped to 0..n_classes-1, negative = missing; codes
  >= n_classes raise ``ValueError`` naming them (or pass ``lut=`` to map raw codes in the kernel);
* ``out=`` takes existing accumulators and adds into them (min/max merge into them, NaN = empty),
  so a chunk loop can call a kernel once per chunk without reallocating.

Separable kernels take row links ``rows = (rsrc, rdst, rw)`` and column links
``cols = (csrc, cdst, cw)``: fine cell (i, j) contributes with weight ``rw * cw`` to target (p, q).
``cols`` may also be given as :class:`kernels.runs.ColumnRuns` (the references expand them).
The references build the dense (n_dst_rows, ny) and (n_dst_cols, nx) weight matrices: fine for
tests, not meant for big inputs. Separable calls accept any subset of row links (rsrc relative to
the rows passed), so callers stream row chunks and add into ``out=``. The numba kernels treat
consecutive column weights into one target column that agree to ``kernels.runs.RUN_RTOL`` (1e-9
relative) as equal (their mean): totals are kept, per-class/per-value shares move by <= 2e-9.
"""

from __future__ import annotations

import numpy as np

from ._common import (
    check_classes,
    check_links,
    check_out,
    check_separable,
    check_x,
    column_links,
    invalid_codes_error,
    map_codes,
)


def _zeros_or_out(out, shapes, names):
    if out is None:
        return tuple(np.zeros(s) for s in shapes)
    return check_out(out, shapes, names)


def sparse_weighted_sum(x, src, dst, w, n_dst, *, squares=False, out=None):
    """num[b,d] = sum_l w_l x[b,src_l] over finite x; den = sum of those w_l; sq = sum w x^2."""
    x = check_x(x, 2)
    nb, n_src = x.shape
    src, dst, w = check_links(src, dst, w, n_src, n_dst)
    names = ("num", "den", "sq") if squares else ("num", "den")
    res = _zeros_or_out(out, [(nb, n_dst)] * len(names), names)
    for b in range(nb):
        v = x[b, src].astype(np.float64)
        ok = np.isfinite(v)
        v = np.where(ok, v, 0.0)
        res[0][b] += np.bincount(dst, weights=w * v, minlength=n_dst)
        res[1][b] += np.bincount(dst, weights=w * ok, minlength=n_dst)
        if squares:
            res[2][b] += np.bincount(dst, weights=w * v * v, minlength=n_dst)
    return res


def _class_index(classes, n_classes, lut):
    cls = map_codes(classes, n_classes, lut)
    if (cls == n_classes).any():
        raise invalid_codes_error(classes, n_classes, lut)
    return cls


def sparse_class_sum(classes, src, dst, w, n_dst, n_classes, *, lut=None, out=None):
    """out[d, c] = sum of w_l over links into d whose source has class c."""
    classes = check_classes(classes, 1, n_classes)
    src, dst, w = check_links(src, dst, w, classes.shape[0], n_dst)
    (res,) = _zeros_or_out(None if out is None else (out,), [(n_dst, n_classes)], ("out",))
    cls = _class_index(classes, n_classes, lut)[src]
    ok = cls >= 0
    np.add.at(res, (dst[ok], cls[ok]), w[ok])
    return res


def _merge_min_max(mn, mx, new_mn, new_mx):
    np.fmin(mn, new_mn, out=mn)
    np.fmax(mx, new_mx, out=mx)
    return mn, mx


def sparse_min_max(x, src, dst, n_dst, *, out=None):
    """mn[b,d], mx[b,d]: min and max of finite x[b,src_l] over links into d; NaN where none."""
    x = check_x(x, 2)
    nb, n_src = x.shape
    src, dst, _ = check_links(src, dst, None, n_src, n_dst)
    if out is None:
        out = (np.full((nb, n_dst), np.nan), np.full((nb, n_dst), np.nan))
    mn, mx = check_out(out, [(nb, n_dst)] * 2, ("mn", "mx"))
    v = x[:, src].astype(np.float64)
    v = np.where(np.isfinite(v), v, np.nan)
    new_mn = np.full((nb, n_dst), np.inf)
    new_mx = np.full((nb, n_dst), -np.inf)
    for b in range(nb):
        ok = ~np.isnan(v[b])
        np.minimum.at(new_mn[b], dst[ok], v[b][ok])
        np.maximum.at(new_mx[b], dst[ok], v[b][ok])
    new_mn[np.isinf(new_mn)] = np.nan
    new_mx[np.isinf(new_mx)] = np.nan
    return _merge_min_max(mn, mx, new_mn, new_mx)


def _dense(links, n_dst, n_src):
    src, dst, w = links
    m = np.zeros((n_dst, n_src))
    np.add.at(m, (dst, src), w)
    return m


def separable_weighted_sum(x, rows, cols, n_dst_rows, n_dst_cols, *, squares=False, out=None):
    """num[b,p,q] = sum over fine (i,j) of rw*cw*x[b,i,j] (finite x); den, sq likewise."""
    x = check_x(x, 3)
    nb, ny, nx = x.shape
    rows, cols = check_separable(x.shape, rows, cols, n_dst_rows, n_dst_cols)
    cols = column_links(cols)
    wr, wc = _dense(rows, n_dst_rows, ny), _dense(cols, n_dst_cols, nx)
    names = ("num", "den", "sq") if squares else ("num", "den")
    res = _zeros_or_out(out, [(nb, n_dst_rows, n_dst_cols)] * len(names), names)
    ok = np.isfinite(x)
    v = np.where(ok, x, 0).astype(np.float64)
    for b in range(nb):
        res[0][b] += wr @ v[b] @ wc.T
        res[1][b] += wr @ ok[b].astype(np.float64) @ wc.T
        if squares:
            res[2][b] += wr @ (v[b] * v[b]) @ wc.T
    return res


def separable_class_sum(classes, rows, cols, n_dst_rows, n_dst_cols, n_classes, *, lut=None, out=None):
    """out[p,q,c] = sum over fine (i,j) of class c of rw*cw."""
    classes = check_classes(classes, 2, n_classes)
    ny, nx = classes.shape
    rows, cols = check_separable(classes.shape, rows, cols, n_dst_rows, n_dst_cols)
    cols = column_links(cols)
    wr, wc = _dense(rows, n_dst_rows, ny), _dense(cols, n_dst_cols, nx)
    (res,) = _zeros_or_out(None if out is None else (out,), [(n_dst_rows, n_dst_cols, n_classes)], ("out",))
    cls = _class_index(classes, n_classes, lut)
    for c in range(n_classes):
        res[:, :, c] += wr @ (cls == c).astype(np.float64) @ wc.T
    return res


def separable_min_max(x, rows, cols, n_dst_rows, n_dst_cols, *, out=None):
    """mn, mx (nb, n_dst_rows, n_dst_cols) over every linked fine cell with finite x; NaN where none."""
    x = check_x(x, 3)
    nb, ny, nx = x.shape
    (rsrc, rdst, _), cols = check_separable(x.shape, rows, cols, n_dst_rows, n_dst_cols)
    csrc, cdst, _ = column_links(cols)
    # expand to sparse links: one per (row link, column link) pair
    src = (rsrc[:, None] * nx + csrc[None, :]).ravel()
    dst = (rdst[:, None] * n_dst_cols + cdst[None, :]).ravel()
    if out is not None:
        out = tuple(a.reshape(nb, n_dst_rows * n_dst_cols) for a in check_out(
            out, [(nb, n_dst_rows, n_dst_cols)] * 2, ("mn", "mx")))
    mn, mx = sparse_min_max(x.reshape(nb, ny * nx), src, dst, n_dst_rows * n_dst_cols, out=out)
    return mn.reshape(nb, n_dst_rows, n_dst_cols), mx.reshape(nb, n_dst_rows, n_dst_cols)
