"""Micro-benchmark of the numba separable kernels against the memory-bandwidth floor.

Aggregates a global uint8 class map (default 2160 x 4320, 1/12 deg) to a 1 deg grid with
:func:`kernels.cpu.separable_class_sum` and compares its throughput with one numpy pass over the
same array (``x.sum()``), the floor any single-pass algorithm is measured against. Also times the
float32 separable weighted sum (against ``np.nansum``) and the chunked (streamed, ``out=``) class sum.

    python benchmarks/kernel_throughput.py [--case 2160x4320:180x360] [--classes 17] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# run as a script, this file's folder comes first on sys.path and its name shadows the package
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import numba  # noqa: E402
import numpy as np  # noqa: E402

from kernels import cpu  # noqa: E402


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


def best(fn, repeat):
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return min(t)


def run_case(ny, nx, dny, dnx, n_classes, repeat, chunk):
    rng = np.random.default_rng(0)
    # blocky map (8 x 8 patches of one class, like real land cover), 1 % missing (255, via the lut)
    coarse = rng.integers(0, n_classes, size=(ny // 8 + 1, nx // 8 + 1), dtype=np.uint8)
    cls = np.repeat(np.repeat(coarse, 8, 0), 8, 1)[:ny, :nx].copy()
    cls[rng.random(cls.shape) < 0.01] = 255
    lut = np.arange(256, dtype=np.int16)
    lut[n_classes:] = -1
    rows = regular_links(ny, dny, -90, 90, lat=True)
    cols = regular_links(nx, dnx, -180, 180, lat=False)
    n = cls.size

    def full():
        return cpu.separable_class_sum(cls, rows, cols, dny, dnx, n_classes, lut=lut)

    def streamed():
        out = np.zeros((dny, dnx, n_classes))
        for r0 in range(0, ny, chunk):
            sel = (rows[0] >= r0) & (rows[0] < r0 + chunk)
            cpu.separable_class_sum(cls[r0 : r0 + chunk], (rows[0][sel] - r0, rows[1][sel], rows[2][sel]),
                                    cols, dny, dnx, n_classes, lut=lut, out=out)
        return out

    full()  # compile / load the numba cache, fault the pages in
    t_sum = best(lambda: cls.sum(), repeat)
    t_cls = best(full, repeat)
    t_str = best(streamed, repeat)
    assert np.allclose(streamed(), full(), rtol=1e-12, atol=0)

    x = rng.normal(size=(1, ny, nx)).astype(np.float32)
    x[0, rng.random((ny, nx)) < 0.05] = np.nan
    t_xsum = best(lambda: np.nansum(x), repeat)
    t_ws = best(lambda: cpu.separable_weighted_sum(x, rows, cols, dny, dnx), repeat)

    print(f"\nmap {ny} x {nx} -> {dny} x {dnx} ({nx // dnx} columns per target cell), {n_classes} classes")
    print(f"{'kernel':44s} {'time s':>9s} {'Mcells/s':>10s} {'time / floor':>13s}")
    for name, t, floor in [
        ("numpy uint8 x.sum() (floor)", t_sum, t_sum),
        ("numba separable_class_sum", t_cls, t_sum),
        (f"numba separable_class_sum, {chunk}-row chunks", t_str, t_sum),
        ("numpy float32 nansum(x) (floor)", t_xsum, t_xsum),
        ("numba separable_weighted_sum float32", t_ws, t_xsum),
    ]:
        print(f"{name:44s} {t:9.4f} {n / t / 1e6:10.1f} {t / floor:13.2f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", metavar="NYxNX:DNYxDNX",
                    help="source and target sizes; default 2160x4320:180x360 (1/12 deg -> 1 deg) and "
                         "2160x43200:18x360 (the 120-column runs of 1 km -> 1 deg)")
    ap.add_argument("--classes", type=int, default=17)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=240, help="rows per chunk for the streamed run")
    a = ap.parse_args(argv)
    print(f"numba threads: {numba.get_num_threads()}")
    for case in a.case or ["2160x4320:180x360", "2160x43200:18x360"]:
        src, dst = case.split(":")
        ny, nx = map(int, src.split("x"))
        dny, dnx = map(int, dst.split("x"))
        run_case(ny, nx, dny, dnx, a.classes, a.repeat, a.chunk)


if __name__ == "__main__":
    main()
