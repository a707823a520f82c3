"""Argument checks and small preparations shared by the three kernel engines.

Everything here is cheap: O(number of links) or O(1). Nothing touches the (possibly huge) data
array beyond its shape and dtype. The functions take an array module ``xp`` (numpy or cupy) so
that :mod:`kernels.gpu` can reuse them on device arrays.
"""

from __future__ import annotations

import numpy as np

from .arrays import array_module_of as _xp_of
from .arrays import to_host as _to_host
from .errors import InvalidClassCodes
from .runs import ColumnRuns, check_runs, run_links

#: Sentinel "class slot" layout used by the class kernels (numba and the LUT builders):
#: slot 0 = missing, slots 1..n_classes = classes 0..n_classes-1, slot n_classes+1 = invalid code.




def check_x(x, ndim: int, name: str = "x"):
    """Return x as a C-contiguous float32/float64 array of ``ndim`` dimensions."""
    xp = _xp_of(x)
    x = xp.asarray(x)
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if x.dtype not in (np.float32, np.float64):
        if x.dtype.kind not in "biuf":
            raise ValueError(f"{name} must be a real numeric array, got dtype {x.dtype}")
        x = x.astype(np.float64)
    return xp.ascontiguousarray(x)


def check_index(a, n: int, name: str, what: str):
    """Return ``a`` as a 1-D int64 array with every value in [0, n)."""
    xp = _xp_of(a)
    a = xp.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(a.shape)}")
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer array, got dtype {a.dtype}")
    a = xp.ascontiguousarray(a, dtype=np.int64)
    if a.size:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi >= n:
            raise ValueError(f"{name} holds {what} indices in [{lo}, {hi}], outside the valid range [0, {n})")
    return a


def check_links(src, dst, w, n_src: int, n_dst: int, prefix: str = ""):
    """Validate one set of links (src -> dst with weight w); return int64, int64, float64 arrays."""
    if int(n_dst) < 0:
        raise ValueError(f"n_dst must be >= 0, got {n_dst}")
    src = check_index(src, n_src, f"{prefix}src", "source")
    dst = check_index(dst, n_dst, f"{prefix}dst", "destination")
    if src.shape != dst.shape:
        raise ValueError(f"{prefix}src and {prefix}dst differ in length: {src.shape[0]} != {dst.shape[0]}")
    if w is None:
        return src, dst, None
    xp = _xp_of(w)
    w = xp.asarray(w)
    if w.shape != src.shape:
        raise ValueError(f"{prefix}w has shape {tuple(w.shape)}, expected ({src.shape[0]},) like {prefix}src")
    return src, dst, xp.ascontiguousarray(w, dtype=np.float64)


def unpack_links(links, name: str):
    if not isinstance(links, (tuple, list)) or len(links) != 3:
        raise ValueError(f"{name} must be a tuple (src, dst, w) of three 1-D arrays")
    return links


def check_separable(shape, rows, cols, n_dst_rows: int, n_dst_cols: int):
    """Validate row links, and column links or :class:`~kernels.runs.ColumnRuns`, against a
    (…, ny, nx) source shape; the columns come back in the form they were given."""
    ny, nx = shape[-2], shape[-1]
    rsrc, rdst, rw = unpack_links(rows, "rows")
    rsrc, rdst, rw = check_links(rsrc, rdst, rw, ny, n_dst_rows, prefix="row ")
    if isinstance(cols, ColumnRuns):
        return (rsrc, rdst, rw), check_runs(cols, nx, n_dst_cols)
    csrc, cdst, cw = unpack_links(cols, "cols")
    return (rsrc, rdst, rw), check_links(csrc, cdst, cw, nx, n_dst_cols, prefix="col ")


def column_links(cols):
    """Checked column links as they are, or the links of checked :class:`~kernels.runs.ColumnRuns`."""
    return run_links(cols) if isinstance(cols, ColumnRuns) else cols


def check_out(out, shapes, names):
    """Validate an ``out=`` tuple of float64 C-contiguous accumulators with the given shapes."""
    if len(out) != len(shapes):
        raise ValueError(f"out must be a tuple of {len(shapes)} arrays ({', '.join(names)}), got {len(out)}")
    for a, shp, nm in zip(out, shapes, names):
        if tuple(a.shape) != tuple(shp):
            raise ValueError(f"out array '{nm}' has shape {tuple(a.shape)}, expected {tuple(shp)}")
        if a.dtype != np.float64:
            raise ValueError(f"out array '{nm}' must be float64, got {a.dtype}")
        if not a.flags.c_contiguous:
            raise ValueError(f"out array '{nm}' must be C-contiguous")
    return tuple(out)


def check_classes(classes, ndim: int, n_classes: int, name: str = "classes"):
    xp = _xp_of(classes)
    classes = xp.asarray(classes)
    if classes.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(classes.shape)}")
    if classes.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integer class codes, got dtype {classes.dtype}")
    if int(n_classes) < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    if classes.dtype.kind == "b":
        classes = classes.view(np.uint8)
    return xp.ascontiguousarray(classes)


def class_table(dtype, n_classes: int, lut=None) -> np.ndarray:
    """Class-index table for 8/16-bit class codes, indexed by the *unsigned view* of the codes.

    ``table[u]`` (int32) is -1 for missing (negative class), c for class c in [0, n_classes) and
    ``n_classes`` for an invalid code. With ``lut`` the raw code is first mapped through it (raw
    codes outside [0, len(lut)) are invalid, except negative raw codes, which are missing).
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu" or dtype.itemsize > 2:
        raise ValueError(f"class tables exist for 8/16-bit integer codes only, not {dtype}")
    bits = dtype.itemsize * 8
    u = np.arange(2**bits, dtype=np.int64)
    raw = u - 2**bits * (u >= 2 ** (bits - 1)) if dtype.kind == "i" else u
    return map_codes(raw, n_classes, lut).astype(np.int32)


def unsigned_view_dtype(dtype) -> np.dtype:
    return np.dtype(f"u{np.dtype(dtype).itemsize}")


def slot_lut(dtype, n_classes: int, lut=None) -> tuple[np.ndarray, np.dtype]:
    """Like :func:`class_table` but in "slots": 0 missing, c + 1 class c, n_classes + 1 invalid."""
    cls = class_table(dtype, n_classes, lut)
    return cls_to_slot(cls, n_classes).astype(np.int32), unsigned_view_dtype(dtype)


def map_codes(raw, n_classes: int, lut=None):
    """Map raw integer codes to class indices (int64): -1 missing, n_classes = invalid.

    Works on numpy and cupy arrays (the lut is moved to the same module).
    """
    xp = _xp_of(raw)
    raw = raw.astype(np.int64)
    if lut is None:
        cls = raw
    else:
        lut = np.asarray(_to_host(lut))
        if lut.ndim != 1 or lut.dtype.kind not in "iu":
            raise ValueError("lut must be a 1-D integer array mapping raw codes to class indices")
        if lut.size and lut.max() >= n_classes:
            raise ValueError(f"lut maps codes to class {int(lut.max())}, outside [0, {n_classes})")
        if lut.size == 0:
            return xp.where(raw < 0, -1, n_classes)
        lut_x = xp.asarray(lut.astype(np.int64))
        inside = (raw >= 0) & (raw < lut.size)
        cls = xp.where(inside, lut_x[xp.clip(raw, 0, lut.size - 1)], n_classes)
        cls = xp.where(raw < 0, -1, cls)
    cls = xp.where(cls < 0, -1, cls)
    return xp.where(cls >= n_classes, n_classes, cls)


def cls_to_slot(cls: np.ndarray, n_classes: int) -> np.ndarray:
    return np.where(cls < 0, 0, np.where(cls >= n_classes, n_classes + 1, cls + 1))


def invalid_codes_error(classes, n_classes: int, lut=None) -> InvalidClassCodes:
    """Build the error naming the offending raw codes (slow path, only run when there are some)."""
    vals = np.unique(np.asarray(_to_host(classes)).ravel()).astype(np.int64)
    cls = map_codes(vals, n_classes, lut)
    badv = vals[cls == n_classes]
    shown = ", ".join(str(v) for v in badv[:10]) + (" ..." if badv.size > 10 else "")
    where = f"lut of length {np.asarray(lut).size}" if lut is not None else f"[0, {n_classes})"
    return InvalidClassCodes(
        f"class codes outside {where} (negative codes mean missing): {shown}; "
        "map raw codes to 0..n_classes-1 (or pass lut=) before aggregating",
        tuple(badv[:10].tolist()),
    )

