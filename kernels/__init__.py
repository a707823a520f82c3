"""Aggregation kernels: numpy reference, numba CPU, CUDA C launched through CuPy.

The three engines expose the same functions with the same semantics (see
:mod:`kernels.reference` for the contract): ``sparse_weighted_sum``, ``sparse_class_sum``,
``sparse_min_max``, ``separable_weighted_sum``, ``separable_class_sum``, ``separable_min_max``.
Separable kernels take their column links as ``(csrc, cdst, cw)`` or as runs
(:class:`kernels.runs.ColumnRuns`, made once with :func:`kernels.runs.col_runs` for many calls).
:mod:`kernels.gather` copies runs of valid cells into table rows (the flatten's gather).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from kernels.arrays import array_module_of, is_device_array, to_host
from kernels.errors import InvalidClassCodes

__all__ = ["ENGINES", "FUNCTIONS", "InvalidClassCodes", "array_module_of", "get_engine", "is_device_array", "to_host"]

ENGINES = {"numpy": "kernels.reference", "numba": "kernels.cpu", "cupy": "kernels.gpu"}
FUNCTIONS = (
    "sparse_weighted_sum",
    "sparse_class_sum",
    "sparse_min_max",
    "separable_weighted_sum",
    "separable_class_sum",
    "separable_min_max",
)


def get_engine(name: str) -> ModuleType:
    """The kernel module for ``"numpy"`` (reference), ``"numba"`` (CPU) or ``"cupy"`` (GPU).

    Importing the cupy engine does not import CuPy; its functions need CuPy and a GPU when called.
    """
    try:
        return importlib.import_module(ENGINES[name])
    except KeyError:
        raise ValueError(f"unknown kernel engine {name!r}; choose one of {', '.join(ENGINES)}") from None
