"""CUDA kernels launched through CuPy. Same functions and semantics as :mod:`kernels.reference`,
taking and returning CuPy arrays.

CuPy is imported lazily (``import kernels.gpu`` works without it). The launch logic lives in
:class:`Engine`, which is written against an array module ``xp`` and a kernel module with
``get_function(name)(grid, block, args)``: with ``xp=cupy`` and a ``cupy.RawModule`` it runs on the
GPU (the module-level functions below); the tests run the very same launchers with ``xp=numpy``
and the serially emulated build of ``cuda/aggregate.cu`` (``tests/cuda_tools.py``), which checks
every argument against the kernel signatures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import (
    check_classes,
    check_links,
    check_out,
    check_separable,
    check_x,
    class_table,
    column_links,
    invalid_codes_error,
    map_codes,
    unsigned_view_dtype,
)
from .arrays import array_module_of, is_device_array  # noqa: F401  (kernels.gpu re-exports them
from .runs import ColumnRuns

#: the CUDA C source of every kernel launched here
CUDA_SOURCE = Path(__file__).with_name("cuda") / "aggregate.cu"
#: classes accumulated per thread and pass in the separable class kernel (TS_CLASS_WINDOW in the .cu)
CLASS_WINDOW = 32

_i64 = np.int64


def device_array_module():
    """CuPy, once it imports and sees a CUDA device; its ImportError or CUDA error otherwise.

    The one place of the kernels (with :func:`engine`) that imports CuPy; callers outside
    :mod:`kernels.gpu` and :mod:`pipeline.backend` get the device array module from here.
    """
    import cupy  # noqa: PLC0415  (optional dependency, GPU only)

    cupy.cuda.runtime.getDeviceCount()
    return cupy




class Engine:
    """Launchers for the kernels of ``cuda/aggregate.cu`` on array module ``xp``."""

    def __init__(self, xp, module, *, block: int = 256, max_grid: int = 65536):
        self.xp = xp
        self.module = module
        self.block = int(block)
        self.max_grid = int(max_grid)
        self._fn: dict = {}

    # ------------------------------------------------------------------ plumbing
    def _dev(self, *arrays):
        """Move arrays (or link tuples) onto this engine's array module (no copy when already there)."""
        xp = self.xp
        out = []
        for a in arrays:
            if isinstance(a, ColumnRuns):
                out.append(ColumnRuns(*(xp.asarray(v) for v in a)))
            elif isinstance(a, (tuple, list)):
                out.append(tuple(xp.asarray(v) for v in a))
            else:
                out.append(None if a is None else xp.asarray(a))
        return out

    def _launch(self, name: str, n_work: int, args: tuple) -> None:
        if n_work <= 0:
            return
        fn = self._fn.get(name)
        if fn is None:
            fn = self._fn[name] = self.module.get_function(name)
        grid = max(1, min(-(-int(n_work) // self.block), self.max_grid))
        fn((grid,), (self.block,), args)

    def _zeros(self, shapes, out, names):
        if out is None:
            return tuple(self.xp.zeros(s, dtype=np.float64) for s in shapes)
        return check_out(out, shapes, names)

    @staticmethod
    def _suffix(x) -> str:
        return "f32" if x.dtype == np.float32 else "f64"

    def _codes(self, classes, n_classes, lut):
        """(codes, table, kernel suffix): 8/16-bit codes go through a class table on the device."""
        xp = self.xp
        if classes.dtype.itemsize <= 2:
            table = xp.asarray(class_table(classes.dtype, n_classes, lut))
            codes = classes.view(unsigned_view_dtype(classes.dtype))
            return codes, table, "u8" if classes.dtype.itemsize == 1 else "u16"
        cls = map_codes(classes, n_classes, lut).astype(np.int32)
        return xp.ascontiguousarray(cls), xp.zeros(1, dtype=np.int32), "i32"

    def _col_csr(self, cols, n_dst_cols):
        """Column links grouped by target column: (col_ptr, col_src, col_w)."""
        xp = self.xp
        csrc, cdst, cw = column_links(cols)
        order = xp.argsort(cdst)
        col_ptr = xp.searchsorted(cdst[order], xp.arange(n_dst_cols + 1, dtype=np.int64)).astype(np.int64)
        return (xp.ascontiguousarray(col_ptr), xp.ascontiguousarray(csrc[order]),
                xp.ascontiguousarray(cw[order]))

    def _min_max_begin(self, shape, out):
        xp = self.xp
        if out is None:
            mn, mx = xp.full(shape, np.inf), xp.full(shape, -np.inf)
        else:
            mn, mx = check_out(out, [shape] * 2, ("mn", "mx"))
            mn[xp.isnan(mn)] = np.inf  # NaN = empty; the kernels need +inf/-inf there
            mx[xp.isnan(mx)] = -np.inf
        return mn, mx

    def _min_max_end(self, mn, mx):
        mn[mn == np.inf] = np.nan
        mx[mx == -np.inf] = np.nan
        return mn, mx

    def _raise_bad(self, n_bad, classes, n_classes, lut):
        if int(n_bad[0]) > 0:
            raise invalid_codes_error(classes, n_classes, lut)

    # ------------------------------------------------------------------ sparse
    def sparse_weighted_sum(self, x, src, dst, w, n_dst, *, squares=False, out=None):
        x, src, dst, w = self._dev(x, src, dst, w)
        x = check_x(x, 2)
        nb, n_src = x.shape
        src, dst, w = check_links(src, dst, w, n_src, n_dst)
        names = ("num", "den", "sq") if squares else ("num", "den")
        res = self._zeros([(nb, n_dst)] * len(names), out, names)
        sq = res[2] if squares else self.xp.zeros(1, dtype=np.float64)
        nl = src.shape[0]
        self._launch(f"sparse_weighted_sum_{self._suffix(x)}", nb * nl,
                     (x, _i64(nb), _i64(n_src), src, dst, w, _i64(nl), _i64(n_dst), res[0], res[1], sq,
                      np.int32(bool(squares))))
        return res

    def sparse_class_sum(self, classes, src, dst, w, n_dst, n_classes, *, lut=None, out=None):
        classes, src, dst, w = self._dev(classes, src, dst, w)
        classes = check_classes(classes, 1, n_classes)
        src, dst, w = check_links(src, dst, w, classes.shape[0], n_dst)
        (res,) = self._zeros([(n_dst, n_classes)], None if out is None else (out,), ("out",))
        codes, table, sfx = self._codes(classes, n_classes, lut)
        n_bad = self.xp.zeros(1, dtype=np.uint64)
        nl = src.shape[0]
        self._launch(f"sparse_class_sum_{sfx}", nl,
                     (codes, table, src, dst, w, _i64(nl), _i64(n_classes), res, n_bad))
        self._raise_bad(n_bad, classes, n_classes, lut)
        return res

    def sparse_min_max(self, x, src, dst, n_dst, *, out=None):
        x, src, dst = self._dev(x, src, dst)
        x = check_x(x, 2)
        nb, n_src = x.shape
        src, dst, _ = check_links(src, dst, None, n_src, n_dst)
        mn, mx = self._min_max_begin((nb, n_dst), out)
        nl = src.shape[0]
        self._launch(f"sparse_min_max_{self._suffix(x)}", nb * nl,
                     (x, _i64(nb), _i64(n_src), src, dst, _i64(nl), _i64(n_dst), mn, mx))
        return self._min_max_end(mn, mx)

    # ------------------------------------------------------------------ separable
    def separable_weighted_sum(self, x, rows, cols, n_dst_rows, n_dst_cols, *, squares=False, out=None):
        x, rows, cols = self._dev(x, rows, cols)
        x = check_x(x, 3)
        nb, ny, nx = x.shape
        (rsrc, rdst, rw), cols = check_separable(x.shape, rows, cols, n_dst_rows, n_dst_cols)
        names = ("num", "den", "sq") if squares else ("num", "den")
        res = self._zeros([(nb, n_dst_rows, n_dst_cols)] * len(names), out, names)
        sq = res[2] if squares else self.xp.zeros(1, dtype=np.float64)
        col_ptr, col_src, col_w = self._col_csr(cols, n_dst_cols)
        n_rl = rsrc.shape[0]
        self._launch(f"separable_weighted_sum_{self._suffix(x)}", nb * n_rl * n_dst_cols,
                     (x, _i64(nb), _i64(ny), _i64(nx), rsrc, rdst, rw, _i64(n_rl), col_ptr, col_src, col_w,
                      _i64(n_dst_rows), _i64(n_dst_cols), res[0], res[1], sq, np.int32(bool(squares))))
        return res

    def separable_class_sum(self, classes, rows, cols, n_dst_rows, n_dst_cols, n_classes, *, lut=None, out=None):
        classes, rows, cols = self._dev(classes, rows, cols)
        classes = check_classes(classes, 2, n_classes)
        ny, nx = classes.shape
        (rsrc, rdst, rw), cols = check_separable(classes.shape, rows, cols, n_dst_rows, n_dst_cols)
        (res,) = self._zeros([(n_dst_rows, n_dst_cols, n_classes)], None if out is None else (out,), ("out",))
        codes, table, sfx = self._codes(classes, n_classes, lut)
        col_ptr, col_src, col_w = self._col_csr(cols, n_dst_cols)
        n_bad = self.xp.zeros(1, dtype=np.uint64)
        n_rl = rsrc.shape[0]
        for c0 in range(0, n_classes, CLASS_WINDOW):
            n_win = min(CLASS_WINDOW, n_classes - c0)
            self._launch(f"separable_class_sum_{sfx}", n_rl * n_dst_cols,
                         (codes, table, _i64(ny), _i64(nx), rsrc, rdst, rw, _i64(n_rl), col_ptr, col_src, col_w,
                          _i64(n_dst_cols), _i64(n_classes), _i64(c0), _i64(n_win), res, n_bad))
        self._raise_bad(n_bad, classes, n_classes, lut)
        return res

    def separable_min_max(self, x, rows, cols, n_dst_rows, n_dst_cols, *, out=None):
        x, rows, cols = self._dev(x, rows, cols)
        x = check_x(x, 3)
        nb, ny, nx = x.shape
        (rsrc, rdst, _), cols = check_separable(x.shape, rows, cols, n_dst_rows, n_dst_cols)
        mn, mx = self._min_max_begin((nb, n_dst_rows, n_dst_cols), out)
        col_ptr, col_src, _ = self._col_csr(cols, n_dst_cols)
        n_rl = rsrc.shape[0]
        self._launch(f"separable_min_max_{self._suffix(x)}", nb * n_rl * n_dst_cols,
                     (x, _i64(nb), _i64(ny), _i64(nx), rsrc, rdst, _i64(n_rl), col_ptr, col_src,
                      _i64(n_dst_rows), _i64(n_dst_cols), mn, mx))
        return self._min_max_end(mn, mx)


_ENGINE: Engine | None = None


def engine() -> Engine:
    """The CuPy engine (compiles ``cuda/aggregate.cu`` with NVRTC on first use; needs a GPU)."""
    global _ENGINE
    if _ENGINE is None:
        import cupy  # noqa: PLC0415  (optional dependency, GPU only)

        module = cupy.RawModule(code=CUDA_SOURCE.read_text(), options=("--std=c++14",))
        _ENGINE = Engine(cupy, module)
    return _ENGINE


def sparse_weighted_sum(x, src, dst, w, n_dst, *, squares=False, out=None):
    """See :func:`kernels.reference.sparse_weighted_sum`; CuPy arrays in and out."""
    return engine().sparse_weighted_sum(x, src, dst, w, n_dst, squares=squares, out=out)


def sparse_class_sum(classes, src, dst, w, n_dst, n_classes, *, lut=None, out=None):
    """See :func:`kernels.reference.sparse_class_sum`; CuPy arrays in and out."""
    return engine().sparse_class_sum(classes, src, dst, w, n_dst, n_classes, lut=lut, out=out)


def sparse_min_max(x, src, dst, n_dst, *, out=None):
    """See :func:`kernels.reference.sparse_min_max`; CuPy arrays in and out."""
    return engine().sparse_min_max(x, src, dst, n_dst, out=out)


def separable_weighted_sum(x, rows, cols, n_dst_rows, n_dst_cols, *, squares=False, out=None):
    """See :func:`kernels.reference.separable_weighted_sum`; CuPy arrays in and out."""
    return engine().separable_weighted_sum(x, rows, cols, n_dst_rows, n_dst_cols, squares=squares, out=out)


def separable_class_sum(classes, rows, cols, n_dst_rows, n_dst_cols, n_classes, *, lut=None, out=None):
    """See :func:`kernels.reference.separable_class_sum`; CuPy arrays in and out."""
    return engine().separable_class_sum(classes, rows, cols, n_dst_rows, n_dst_cols, n_classes, lut=lut, out=out)


def separable_min_max(x, rows, cols, n_dst_rows, n_dst_cols, *, out=None):
    """See :func:`kernels.reference.separable_min_max`; CuPy arrays in and out."""
    return engine().separable_min_max(x, rows, cols, n_dst_rows, n_dst_cols, out=out)
