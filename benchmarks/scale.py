"""Scale curve: aggregation time and peak memory against the number of input cells.

The LAI-like global field of :mod:`benchmarks.aggregate` at 0.25°, 0.1° and 0.05° (every 5th,
2nd and every cell of the 0.05° map) and, in full runs, at 1 km (the 0.05° field repeated 6 x 6:
21600 x 43200 = 933 M cells, 3.7 GB of float32), each onto 1° with
:func:`pipeline.aggregate.conservative_mean`, interleaved with the one-pass floor (numpy sum over
the same input). Peak memory: the first call's VmHWM above the RSS before it (the input itself is
not counted). A least-squares line on log(cost) against log(cells) gives the slopes (1 = linear;
the memory slope stays well below 1 because the source is streamed in row chunks); each point's peak
is compared with the bound "one chunk plus the target" (:func:`memory_bound`). The figure
goes to ``benchmarks/results/scale.png`` (the results directory).

Run: ``python -m benchmarks scale [--quick]``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from benchmarks.aggregate import gpu_tool, lai_field, latlon, memory_bound, warm_kernels
from benchmarks.harness import Tool

FIGURE = "scale.png"  # in the results directory


def slope(cells: list[float], cost: list[float]) -> float | None:
    """Least-squares slope of log(cost) on log(cells) (None with fewer than two usable points)."""
    pts = [(math.log(c), math.log(v)) for c, v in zip(cells, cost) if c and v and c > 0 and v > 0]
    if len(pts) < 2:
        return None
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def inputs(quick: bool):
    """(label, step or '1km') for each size."""
    sizes = [("0.25deg", 5), ("0.1deg", 2), ("0.05deg", 1)]
    return sizes if quick else sizes + [("1km", "1km")]


def make(step):
    if step == "1km":
        base = lai_field(1).values
        return latlon(np.repeat(np.repeat(base, 6, axis=0), 6, axis=1), 1 / 120, "lai", attrs={"units": "m2 m-2"})
    return lai_field(step)


def draw(points: list[dict], path: Path, fit: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = np.array([p["cells"] for p in points], float)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.loglog(cells, [p["seconds"] for p in points], "o-", label=f"terrascale (slope {fit['slope_time']:.2f})")
    a.loglog(cells, [p["floor_seconds"] for p in points], "s--", label="numpy sum over the input (floor)")
    a.set_xlabel("input cells")
    a.set_ylabel("median seconds")
    a.set_title("aggregation time -> 1°")
    a.legend()
    mem = [p["peak_mb"] for p in points]
    b.loglog(cells, [max(m or 0.0, 0.1) for m in mem], "o-",
             label="peak above the input" + (f" (slope {fit['slope_memory']:.2f})" if fit.get("slope_memory") else ""))
    b.loglog(cells, cells * 4 / 2**20, ":", label="input size (float32)")
    b.set_xlabel("input cells")
    b.set_ylabel("MB")
    b.set_title("aggregation peak memory")
    b.legend()
    for ax in (a, b):
        for p in points:
            ax.annotate(p["label"], (p["cells"], ax.get_ylim()[0]), fontsize=7, rotation=90, va="bottom")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bench(ctx, figure: Path | None = None) -> None:
    """Harness entry: one case per input size, then the slopes and the figure."""
    from pipeline.aggregate import conservative_mean
    from pipeline.aggregate.stream import CHUNK_VALUES

    warm_kernels()
    points = []
    for label, step in inputs(ctx.quick):
        da = make(step)
        src = da.values
        tools = [Tool("terrascale", lambda: conservative_mean(da, "1deg"), "terrascale",
                      "terrascale conservative_mean (numba)"),
                 gpu_tool(ctx, da, lambda d: conservative_mean(d, "1deg"), "terrascale conservative_mean (CuPy)"),
                 Tool("numpy-sum", src.sum, "floor", "numpy sum over the input (one pass)")]
        rec = ctx.compare(label, f"{label} global LAI-like ({src.size / 1e6:.1f} M cells) -> 1°", tools,
                          repeat=max(2, ctx.repeat // 2) if step == "1km" else None, info={"cells": int(src.size)})
        ours = next(t for t in rec["tools"] if t["key"] == "terrascale")
        flo = next(t for t in rec["tools"] if t["key"] == "numpy-sum")
        if ours["median"] is not None:
            points.append({"label": label, "cells": int(src.size), "seconds": ours["median"],
                           "floor_seconds": flo["median"], "peak_mb": ours["peak_mb"],
                           "bound_mb": memory_bound(min(src.size, CHUNK_VALUES) * src.itemsize, "1deg") / 2**20})
        del da, src, tools, rec
    fit = {"slope_time": slope([p["cells"] for p in points], [p["seconds"] for p in points]),
           "slope_memory": slope([p["cells"] for p in points], [p["peak_mb"] for p in points]),
           "slope_floor": slope([p["cells"] for p in points], [p["floor_seconds"] for p in points])}
    ctx.metric("points", len(points))
    ctx.metric("curve", points)
    ctx.metrics.update(fit)
    if fit["slope_time"] is not None:
        ctx.say(f"    log-log slope of time against cells: {fit['slope_time']:.2f} (floor {fit['slope_floor']:.2f}); "
                 f"of peak memory: {fit['slope_memory'] if fit['slope_memory'] is None else round(fit['slope_memory'], 2)}")
        ctx.metric("figure", str(draw(points, figure or ctx.results_dir / FIGURE, fit)))
