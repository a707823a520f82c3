"""The engine is chosen once, from the one engine table of :mod:`kernels`."""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from pipeline import aggregate as agg
from pipeline.aggregate import (
    conservative_mean,
)
from pipeline.errors import ConfigError
from tests.helpers.class_maps import class_map


def test_aggregate_gets_kernels_from_kernels_get_engine(monkeypatch):
    calls = []
    real = kernels.get_engine

    def spy(name):
        calls.append(name)
        return real(name)

    monkeypatch.setattr(kernels, "get_engine", spy)
    da = class_map(np.float64)
    conservative_mean(da, "10deg", engine="numpy")
    conservative_mean(da, "10deg")  # auto: numba for numpy input
    assert calls == ["numpy", "numba"]
    assert not hasattr(agg, "_ENGINES")
    with pytest.raises(ConfigError, match="engine"):
        conservative_mean(da, "10deg", engine="fortran")
