"""Fixtures for the kernel tests: the serially emulated CUDA build and the kernel engines."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def emulated_module(tmp_path_factory):
    """kernels/cuda/aggregate.cu compiled with g++ and tests/helpers/cuda_emulation.h (skips without g++)."""
    from kernels import gpu
    from tests.helpers import cuda_tools

    return cuda_tools.build_emulated(gpu.CUDA_SOURCE, build_dir=tmp_path_factory.mktemp("cuda_emu"))
