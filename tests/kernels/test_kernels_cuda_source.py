"""The CUDA C kernels without a GPU: compiled to PTX for sm_80/sm_90 with nvcc, and compiled with
g++ plus tests/helpers/cuda_emulation.h, then run serially through kernels.gpu.Engine (the same launchers
as on the GPU, with numpy in place of cupy) and compared with the numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels import gpu
from kernels import reference as ref
from tests.helpers import cuda_tools
from tests.helpers import kernel_cases as kc

SOURCE = gpu.CUDA_SOURCE
KERNELS = set(cuda_tools.parse_kernels(SOURCE.read_text()))
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Recording:
    """Wraps a kernel module and records which kernels were launched."""

    def __init__(self, module):
        self.module = module
        self.launched: set[str] = set()

    def get_function(self, name):
        fn = self.module.get_function(name)

        def call(grid, block, args):
            self.launched.add(name)
            return fn(grid, block, args)

        return call


@pytest.fixture(scope="module")
def engine(emulated_module):
    # tiny blocks and a capped grid: every grid-stride loop runs several rounds
    return gpu.Engine(np, emulated_module, block=32, max_grid=3)


def test_source_declares_every_kernel_family():
    assert len(KERNELS) == 14
    for family in ("sparse_weighted_sum", "sparse_class_sum", "sparse_min_max",
                   "separable_weighted_sum", "separable_class_sum", "separable_min_max"):
        assert any(k.startswith(family + "_") for k in KERNELS), family


@pytest.mark.parametrize("arch", cuda_tools.ARCHS)
def test_nvcc_ptx(arch):
    ptx = cuda_tools.compile_ptx(SOURCE, arch)
    assert f".target {arch}" in ptx
    assert set(cuda_tools.ptx_entries(ptx)) == KERNELS
    assert "atom.global.add.f64" in ptx  # native double atomics (sm_60+)
    assert "atom.global.cas.b64" in ptx  # the CAS loops of min/max
    assert ".shared" not in ptx  # the serial emulation is only valid without shared memory


@SETTINGS
@given(kc.sparse_params)
def test_emulated_sparse_matches_reference(engine, p):
    kc.check_sparse(engine, ref, p)


@SETTINGS
@given(kc.separable_params)
def test_emulated_separable_matches_reference(engine, p):
    kc.check_separable(engine, ref, p)


@settings(max_examples=15, deadline=None)
@given(kc.separable_params, st.integers(1, 4))
def test_emulated_chunked_out_accumulation(engine, p, chunk):
    kc.check_chunked(engine, p, chunk)


def test_emulated_many_classes_use_several_windows(engine):
    """n_classes > the per-thread window (32): the launcher loops over class windows."""
    p = dict(seed=5, nb=1, ny=7, nx=11, nr=2, nc=3, n_classes=70, dtype=np.float64, cls_dtype=np.int16,
             missing=0.1, regular=True, squares=False)
    _, rows, cols, cls = kc.separable_inputs(p)
    assert cls.max() >= 64
    kc._close(engine.separable_class_sum(cls, rows, cols, 2, 3, 70), ref.separable_class_sum(cls, rows, cols, 2, 3, 70))


def test_emulated_invalid_codes_and_lut(engine):
    rows = (np.array([0, 1]), np.array([0, 0]), np.array([1.0, 2.0]))
    cols = (np.arange(3), np.array([0, 0, 1]), np.ones(3))
    raw = np.array([[0, 1, 2], [2, 0, 1]], dtype=np.uint8)
    lut = np.array([-1, 0, 1])
    kc._close(engine.separable_class_sum(raw, rows, cols, 1, 2, 2, lut=lut),
              ref.separable_class_sum(raw, rows, cols, 1, 2, 2, lut=lut))
    for dtype in (np.uint8, np.int32):
        with pytest.raises(ValueError, match=r"outside \[0, 2\).*: 2"):
            engine.separable_class_sum(raw.astype(dtype), rows, cols, 1, 2, 2)
        with pytest.raises(ValueError, match=r"outside \[0, 2\).*: 2"):
            engine.sparse_class_sum(raw.ravel().astype(dtype), np.arange(6), np.zeros(6, int), np.ones(6), 1, 2)


def test_emulated_reverse_thread_order(emulated_module):
    """Results must not depend on the order in which threads run."""
    p = dict(seed=11, nb=2, ny=9, nx=13, nr=3, nc=4, n_classes=5, dtype=np.float32, cls_dtype=np.int16,
             missing=0.3, regular=False, squares=True)
    eng = gpu.Engine(np, emulated_module, block=16, max_grid=2)
    emulated_module.set_thread_order(reverse=True)
    try:
        kc.check_separable(eng, ref, p)
    finally:
        emulated_module.set_thread_order(reverse=False)


def test_every_kernel_in_the_source_is_checked(emulated_module):
    """Each of the 14 kernels of the .cu (every x dtype and class code width) against the reference."""
    rec = Recording(emulated_module)
    eng = gpu.Engine(np, rec, block=32, max_grid=3)
    for dtype in (np.float32, np.float64):
        for cls_dtype in (np.int8, np.uint16, np.int32):
            sp = dict(seed=3, nb=2, n_src=30, n_dst=6, n_links=80, n_classes=4, dtype=dtype, idx_dtype=np.int32,
                      cls_dtype=cls_dtype, missing=0.2, squares=True)
            kc.check_sparse(eng, ref, sp)
            se = dict(seed=4, nb=2, ny=8, nx=10, nr=3, nc=4, n_classes=4, dtype=dtype, cls_dtype=cls_dtype,
                      missing=0.2, regular=True, squares=True)
            kc.check_separable(eng, ref, se)
    assert rec.launched == KERNELS, f"never launched: {sorted(KERNELS - rec.launched)}"


# ----------------------------------------------------------------------------- the tools themselves


def test_emulated_launch_checks_argument_types(emulated_module):
    fn = emulated_module.get_function("sparse_min_max_f64")
    x, idx, out = np.zeros((1, 3)), np.zeros(2, np.int64), np.zeros((1, 1))
    i64 = np.int64
    fn((1,), (4,), (x, i64(1), i64(3), idx, idx, i64(2), i64(1), out, out.copy()))  # fine
    with pytest.raises(TypeError, match="'src'.*needs dtype int64, got int32"):
        fn((1,), (4,), (x, i64(1), i64(3), idx.astype(np.int32), idx, i64(2), i64(1), out, out))
    with pytest.raises(TypeError, match="scalar argument 'nb'.*int64"):
        fn((1,), (4,), (x, 1, i64(3), idx, idx, i64(2), i64(1), out, out))
    with pytest.raises(TypeError, match="'x'.*float64, got float32"):
        fn((1,), (4,), (x.astype(np.float32), i64(1), i64(3), idx, idx, i64(2), i64(1), out, out))
    with pytest.raises(TypeError, match="takes 9 arguments"):
        fn((1,), (4,), (x,))
    ro = out.copy()
    ro.flags.writeable = False
    with pytest.raises(TypeError, match="'mn' is written by the kernel but read-only"):
        fn((1,), (4,), (x, i64(1), i64(3), idx, idx, i64(2), i64(1), ro, out))


def test_emulation_runs_every_block_and_thread(tmp_path):
    src = tmp_path / "probe.cu"
    src.write_text(
        'extern "C" __global__ void probe(int* hits, unsigned long long* sum) {\n'
        "    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n"
        "    atomicAdd(hits + t, 1);\n"
        "    atomicAdd(sum, (unsigned long long)(gridDim.x * blockDim.x));\n"
        "}\n"
    )
    mod = cuda_tools.build_emulated(src, build_dir=tmp_path / "build")
    hits, total = np.zeros(15, np.int32), np.zeros(1, np.uint64)
    mod.get_function("probe")((3,), (5,), (hits, total))
    assert (hits == 1).all() and total[0] == 15 * 15


@pytest.mark.parametrize("body", ["__shared__ double buf[32]; buf[0] = *x;", "__syncthreads();"])
def test_emulation_rejects_shared_memory_and_barriers(tmp_path, body):
    src = tmp_path / "bad.cu"
    src.write_text(f'extern "C" __global__ void bad(double* x) {{ {body} }}\n')
    with pytest.raises(cuda_tools.CudaCompileError):
        cuda_tools.build_emulated(src, build_dir=tmp_path / "build")
