"""Micro-benchmark of the numba separable kernels against the memory-bandwidth floor.

Aggregates a global uint8 class map (default 2160 x 4320, 1/12 deg) to a 1 deg grid with
:func:`kernels.cpu.separable_class_sum` and compares its time with one numpy pass over the same
array (``x.sum()``), the floor any single-pass algorithm is measured against, and a memcpy of it.
Also times the chunked (streamed, ``out=``) class sum and the float32 separable weighted sum
(against ``np.nansum``). Full runs add the 2160 x 43200 -> 18 x 360 shape (the 120-column runs of
1 km -> 1 deg). With a usable GPU the CUDA kernels (:mod:`kernels.gpu`) run on device copies.

    python -m benchmarks kernels [--quick] [--repeat N]      (or python benchmarks/kernel_throughput.py)
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and not __package__:  # run as a script: its folder would shadow packages; import the package
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(_here))

import numpy as np

from benchmarks.harness import Tool
from kernels import cpu

CASES = {True: ["2160x4320:180x360"], False: ["2160x4320:180x360", "2160x43200:18x360"]}


def regular_links(n_fine: int, n_coarse: int, lo: float, hi: float, lat: bool):
    """Exact 1-D overlaps of a regular fine axis onto a regular coarse axis (in sin(lat) for lat)."""
    fe = np.linspace(lo, hi, n_fine + 1)
    ce = np.linspace(lo, hi, n_coarse + 1)
    f = np.sin(np.deg2rad(fe)) if lat else np.deg2rad(fe)
    c = np.sin(np.deg2rad(ce)) if lat else np.deg2rad(ce)
    src, dst, w = [], [], []
    for i in range(n_fine):
        p0 = max(np.searchsorted(ce, fe[i], side="right") - 1, 0)
        p = p0
        while p < n_coarse and ce[p] < fe[i + 1]:
            ov = min(f[i + 1], c[p + 1]) - max(f[i], c[p])
            if ov > 0:
                src.append(i)
                dst.append(p)
                w.append(ov)
            p += 1
    return np.array(src, np.int64), np.array(dst, np.int64), np.array(w)


def make_case(ny, nx, dny, dnx, n_classes):
    rng = np.random.default_rng(0)
    # blocky map (8 x 8 patches of one class, like real land cover), 1 % missing (255, via the lut)
    coarse = rng.integers(0, n_classes, size=(ny // 8 + 1, nx // 8 + 1), dtype=np.uint8)
    cls = np.repeat(np.repeat(coarse, 8, 0), 8, 1)[:ny, :nx].copy()
    cls[rng.random(cls.shape) < 0.01] = 255
    lut = np.arange(256, dtype=np.int16)
    lut[n_classes:] = -1
    rows = regular_links(ny, dny, -90, 90, lat=True)
    cols = regular_links(nx, dnx, -180, 180, lat=False)
    x = rng.normal(size=(1, ny, nx)).astype(np.float32)
    x[0, rng.random((ny, nx)) < 0.05] = np.nan
    return cls, lut, rows, cols, x


def gpu_tools(ctx, cls, lut, rows, cols, x, dny, dnx, n_classes):
    """The CUDA kernels on device copies of the inputs, or skipped tools where no GPU is usable."""
    if not ctx.gpu.get("usable"):
        why = f"no usable GPU ({ctx.gpu.get('reason')})"
        return ([Tool("cuda-class-sum", None, "terrascale", "CUDA separable_class_sum", skip=why)],
                [Tool("cuda-weighted-sum", None, "terrascale", "CUDA separable_weighted_sum", skip=why)])
    import kernels
    from kernels.gpu import device_array_module

    xp = device_array_module()
    g = kernels.get_engine("cupy")
    dev = lambda a: tuple(xp.asarray(v) for v in a)  # noqa: E731
    cls_d, lut_d, rows_d, cols_d, x_d = xp.asarray(cls), xp.asarray(lut), dev(rows), dev(cols), xp.asarray(x)
    sync = xp.cuda.Device().synchronize
    return ([Tool("cuda-class-sum", lambda: g.separable_class_sum(cls_d, rows_d, cols_d, dny, dnx, n_classes,
                                                                  lut=lut_d), "terrascale",
                  "CUDA separable_class_sum", sync=sync, note="inputs on the device"),
             Tool("cuda-sum", cls_d.sum, "floor", "CuPy sum on the device (floor)", sync=sync)],
            [Tool("cuda-weighted-sum", lambda: g.separable_weighted_sum(x_d, rows_d, cols_d, dny, dnx), "terrascale",
                  "CUDA separable_weighted_sum", sync=sync)])


def bench(ctx, n_classes: int = 17, chunk: int = 240) -> None:
    """Harness entry: per shape, the class-sum case and the weighted-sum case."""
    for case in CASES[ctx.quick]:
        src, dst = case.split(":")
        ny, nx = map(int, src.split("x"))
        dny, dnx = map(int, dst.split("x"))
        cls, lut, rows, cols, x = make_case(ny, nx, dny, dnx, n_classes)

        def full():
            return cpu.separable_class_sum(cls, rows, cols, dny, dnx, n_classes, lut=lut)

        def streamed():
            out = np.zeros((dny, dnx, n_classes))
            for r0 in range(0, ny, chunk):
                sel = (rows[0] >= r0) & (rows[0] < r0 + chunk)
                cpu.separable_class_sum(cls[r0 : r0 + chunk], (rows[0][sel] - r0, rows[1][sel], rows[2][sel]),
                                        cols, dny, dnx, n_classes, lut=lut, out=out)
            return out

        copy_dst = np.empty_like(cls)
        copy_dst[...] = 0
        g_cls, g_ws = gpu_tools(ctx, cls, lut, rows, cols, x, dny, dnx, n_classes)
        def agree(out):
            if "streamed" not in out or "numba" not in out:
                return {}
            same = np.allclose(out["streamed"], out["numba"], rtol=1e-12, atol=0)
            return {"streamed": "equal to the full call" if same else "DIFFERS from the full call"}

        title = f"uint8 map {ny} x {nx} -> {dny} x {dnx}, {n_classes} classes ({cls.size / 1e6:.0f} M cells)"
        ctx.compare(f"class-sum-{ny}x{nx}", title, [
            Tool("numba", full, "terrascale", "numba separable_class_sum"),
            Tool("streamed", streamed, "terrascale", f"numba separable_class_sum, {chunk}-row chunks"),
            *g_cls,
            Tool("numpy-sum", cls.sum, "floor", "numpy uint8 sum (one pass)"),
            Tool("memcpy", lambda: np.copyto(copy_dst, cls), "floor", "memcpy (np.copyto, preallocated)"),
        ], agreement=agree, info={"cells": int(cls.size)})
        ctx.compare(f"weighted-sum-{ny}x{nx}", f"float32 field {ny} x {nx} (5 % NaN) -> {dny} x {dnx}", [
            Tool("numba", lambda: cpu.separable_weighted_sum(x, rows, cols, dny, dnx), "terrascale",
                 "numba separable_weighted_sum"),
            *g_ws,
            Tool("numpy-nansum", lambda: np.nansum(x), "floor", "numpy nansum (one pass)"),
            Tool("numpy-sum", x.sum, "floor", "numpy sum (one pass)"),
        ], info={"cells": int(x.size)})
        del cls, x, copy_dst


def main(argv=None):
    from benchmarks.__main__ import main as harness_main

    return harness_main(["kernels", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
