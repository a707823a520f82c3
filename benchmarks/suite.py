"""The benchmarks of ``python -m benchmarks``, in the order they run.

Each entry names a module of this package and its ``bench(ctx)`` function, imported only when the
benchmark runs (``--list`` and the tests import nothing heavy).
"""

from __future__ import annotations

import importlib

from benchmarks.harness import Benchmark


def _lazy(module: str, func: str = "bench"):
    def run(ctx):
        return getattr(importlib.import_module(module), func)(ctx)

    run.__qualname__ = f"{module}.{func}"
    return run


BENCHMARKS = [
    Benchmark("aggregate", _lazy("benchmarks.aggregate"),
              "conservative mean and class fractions vs cdo remapcon, xarray-regrid, numpy sum, memcpy"),
    Benchmark("scale", _lazy("benchmarks.scale"),
              "aggregation time and peak memory at 0.25°, 0.1°, 0.05° (and 1 km): log-log slopes, scale.png"),
    Benchmark("kernels", _lazy("benchmarks.kernel_throughput"),
              "numba (and CUDA) separable kernels vs numpy sum and memcpy"),
    Benchmark("flatten", _lazy("benchmarks.flatten"), "grid -> table flattening vs memcpy of the same bytes"),
    Benchmark("train", _lazy("benchmarks.train"),
              "XGBoost and MLP vs scikit-learn HistGradientBoosting and random forest, same rows"),
    Benchmark("dask_scaling", _lazy("benchmarks.train", "bench_dask"),
              "data-parallel MLP (and xgboost.dask) with 1 and 2 dask workers"),
    Benchmark("lai_generation", _lazy("benchmarks.lai_generation"), "semi-synthetic LAI generation: time, memory"),
    Benchmark("demo", _lazy("benchmarks.demo"), "`make demo` stage times from runs/demo/manifest.json"),
    Benchmark("run_scale", _lazy("benchmarks.run_scale"), "`terrascale run` on 1, 2, 4 x the demo area",
              in_quick=False),
]
BY_NAME = {b.name: b for b in BENCHMARKS}
