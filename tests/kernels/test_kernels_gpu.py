"""kernels.gpu on a real GPU (CuPy) against the numpy reference. Marked ``gpu``: skipped without
CuPy or a CUDA device (tests/kernels/test_kernels_cuda_source.py checks the same kernels and
launchers on the CPU through the serial emulation)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from kernels import gpu
from kernels import reference as ref
from tests.helpers import cuda_tools
from tests.helpers import kernel_cases as kc

pytestmark = pytest.mark.gpu
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class OnDevice:
    """kernels.gpu with numpy in and out: moves inputs to the device and results back."""

    def __init__(self, cupy):
        self.cp = cupy

    def _wrap(self, name):
        cp = self.cp

        def to_dev(a):
            if isinstance(a, np.ndarray):
                return cp.asarray(a)
            if isinstance(a, tuple):
                return tuple(to_dev(v) for v in a)
            return a

        def call(*args, **kwargs):
            out = kwargs.get("out")
            dev_out = to_dev(out) if out is not None else None
            if dev_out is not None:
                kwargs["out"] = dev_out
            res = getattr(gpu, name)(*(to_dev(a) for a in args), **{k: v for k, v in kwargs.items()})
            host = tuple(cp.asnumpy(r) for r in res) if isinstance(res, tuple) else cp.asnumpy(res)
            if out is not None:  # emulate in-place accumulation into the caller's numpy arrays
                for o, h in zip(out if isinstance(out, tuple) else (out,), host if isinstance(host, tuple) else (host,)):
                    o[...] = h
                return out
            return host

        return call

    def __getattr__(self, name):
        return self._wrap(name)


@pytest.fixture(scope="module")
def device():
    return OnDevice(cuda_tools.require_cupy_device())


@SETTINGS
@given(kc.sparse_params)
def test_gpu_sparse_matches_reference(device, p):
    kc.check_sparse(device, ref, p)


@SETTINGS
@given(kc.separable_params)
def test_gpu_separable_matches_reference(device, p):
    kc.check_separable(device, ref, p)


def test_gpu_chunked_out_accumulation(device):
    p = dict(seed=2, nb=2, ny=12, nx=17, nr=4, nc=5, n_classes=6, dtype=np.float32, cls_dtype=np.int16,
             missing=0.3, regular=True, squares=True)
    kc.check_chunked(device, p, 5)


def test_gpu_inputs_stay_on_device():
    cp = cuda_tools.require_cupy_device()
    x = cp.asarray(np.arange(6.0).reshape(1, 6))
    src, dst, w = cp.arange(6), cp.asarray([0, 0, 1, 1, 2, 2]), cp.ones(6)
    num, den = gpu.sparse_weighted_sum(x, src, dst, w, 3)
    assert isinstance(num, cp.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(num), [[1.0, 5.0, 9.0]])
    np.testing.assert_array_equal(cp.asnumpy(den), [[2.0, 2.0, 2.0]])


def test_gpu_large_separable_class_sum(device):
    """A 1/12 deg uint8 map to 1 deg with a lut: same class areas as the numba kernel."""
    from kernels import cpu

    rng = np.random.default_rng(0)
    cls = rng.integers(0, 20, size=(2160, 4320), dtype=np.uint8)
    lut = np.arange(256)
    lut[17:] = -1
    rows = kc.axis_links(rng, 2160, 180, True)
    cols = kc.axis_links(rng, 4320, 360, True)
    got = device.separable_class_sum(cls, rows, cols, 180, 360, 17, lut=lut)
    np.testing.assert_allclose(got, cpu.separable_class_sum(cls, rows, cols, 180, 360, 17, lut=lut), rtol=1e-9)
