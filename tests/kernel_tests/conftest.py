"""Fixtures for the kernel tests: the serially emulated CUDA build and the kernel engines."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parents[1]
if str(_TESTS) not in sys.path:  # tests/cuda_tools.py, also when run without tests/conftest.py
    sys.path.insert(0, str(_TESTS))


@pytest.fixture(scope="session")
def emulated_module(tmp_path_factory):
    """kernels/cuda/aggregate.cu compiled with g++ and tests/cuda_emulation.h (skips without g++)."""
    import cuda_tools

    from kernels import gpu

    return cuda_tools.build_emulated(gpu.CUDA_SOURCE, build_dir=tmp_path_factory.mktemp("cuda_emu"))
