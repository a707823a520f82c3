"""Test helpers for CUDA C sources on machines without a GPU.

* :func:`compile_ptx` compiles a ``.cu`` source with ``nvcc -ptx`` for one architecture (sm_80,
  sm_90, ...) and returns the PTX text: checks that the source is valid CUDA for that target.
* :func:`build_emulated` compiles the same source with g++ together with ``cuda_emulation.h``
  (see that header for how the serial emulation works and what it cannot check) into a shared
  library and returns an :class:`EmulatedModule`. Its ``get_function(name)`` returns a kernel
  callable like ``cupy.RawModule.get_function(name)``: ``kernel(grid, block, args)``, with numpy
  arrays in place of cupy arrays. Every argument is checked against the kernel's C signature
  (pointer element type, contiguity, writability; scalars must be numpy scalars of the exact C
  type), so a launcher that would pass the wrong dtype to the GPU fails here instead.
* :func:`require_cupy_device` skips a test unless CuPy imports and sees a CUDA device.

Both compilers are optional: the helpers call ``pytest.skip`` when ``nvcc`` / ``g++`` are missing.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

HEADER = Path(__file__).with_name("cuda_emulation.h")
ARCHS = ("sm_80", "sm_90")


class CudaCompileError(AssertionError):
    """nvcc or g++ rejected a source; the message holds the compiler output."""


def _source_text(source) -> tuple[str, Path | None]:
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and source.endswith(".cu")):
        p = Path(source)
        return p.read_text(), p.resolve()
    return str(source), None


def compile_ptx(source, arch: str = "sm_80", *, options: tuple[str, ...] = ()) -> str:
    """Compile CUDA C (a path to a .cu file or the source text) to PTX for ``arch``; return the PTX.

    Warnings are errors. Skips the calling test when nvcc is not installed.
    """
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    text, _ = _source_text(source)
    with tempfile.TemporaryDirectory(prefix="ts_ptx_") as d:
        cu = Path(d) / "kernel.cu"
        out = Path(d) / "kernel.ptx"
        cu.write_text(text)
        cmd = [nvcc, "-ptx", f"-arch={arch}", "-Werror", "all-warnings", *options, "-o", str(out), str(cu)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise CudaCompileError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
        return out.read_text()


def ptx_entries(ptx: str) -> list[str]:
    """Names of the kernels (``.entry``) in a PTX text."""
    return re.findall(r"\.entry\s+(\w+)\s*\(", ptx)


# ----------------------------------------------------------------------------- signatures

_KERNEL_RE = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)', re.S)

_TYPES = {
    "double": (np.float64, ctypes.c_double),
    "float": (np.float32, ctypes.c_float),
    "long long": (np.int64, ctypes.c_longlong),
    "long long int": (np.int64, ctypes.c_longlong),
    "unsigned long long": (np.uint64, ctypes.c_ulonglong),
    "unsigned long long int": (np.uint64, ctypes.c_ulonglong),
    "int": (np.int32, ctypes.c_int),
    "unsigned int": (np.uint32, ctypes.c_uint),
    "unsigned": (np.uint32, ctypes.c_uint),
    "short": (np.int16, ctypes.c_short),
    "unsigned short": (np.uint16, ctypes.c_ushort),
    "signed char": (np.int8, ctypes.c_byte),
    "unsigned char": (np.uint8, ctypes.c_ubyte),
}


@dataclass(frozen=True)
class Param:
    name: str
    ctype: str  # the declaration as written, without the name
    base: str  # element type, e.g. "double"
    pointer: bool
    const: bool

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(_TYPES[self.base][0])


def parse_kernels(text: str) -> dict[str, list[Param]]:
    """Signatures of the ``extern "C" __global__`` kernels in a CUDA source."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    kernels: dict[str, list[Param]] = {}
    for name, arglist in _KERNEL_RE.findall(text):
        params = []
        for raw in filter(None, (a.strip() for a in arglist.split(","))):
            m = re.match(r"(.*?)(\w+)\s*$", raw, re.S)
            if not m:
                raise ValueError(f"cannot parse parameter {raw!r} of kernel {name}")
            ctype, pname = m.group(1).strip(), m.group(2)
            pointer = "*" in ctype
            words = [w for w in re.sub(r"[*&]", " ", ctype).split() if w not in ("const", "__restrict__")]
            base = " ".join(words)
            if base not in _TYPES:
                raise ValueError(f"kernel {name}: parameter type {ctype!r} is not supported by cuda_tools")
            params.append(Param(pname, ctype, base, pointer, "const" in ctype.split("*")[0].split()))
        kernels[name] = params
    return kernels


# ----------------------------------------------------------------------------- emulation


def _wrapper_source(cu_path: Path, kernels: dict[str, list[Param]]) -> str:
    lines = [f'#include "{HEADER.resolve()}"', f'#include "{cu_path}"', ""]
    for name, params in kernels.items():
        decl = ", ".join(f"{p.ctype} {p.name}" for p in params)
        args = ", ".join(p.name for p in params)
        lines.append(
            f'extern "C" void ts_launch_{name}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, '
            f"unsigned bz{', ' + decl if decl else ''}) {{\n"
            f"    ts_emu_launch(dim3(gx, gy, gz), dim3(bx, by, bz), {name}{', ' + args if args else ''});\n}}"
        )
    return "\n".join(lines) + "\n"


def _dims(v) -> tuple[int, int, int]:
    t = (int(v),) if np.isscalar(v) else tuple(int(a) for a in v)
    if not 1 <= len(t) <= 3 or min(t) < 1:
        raise ValueError(f"grid/block must be 1 to 3 positive integers, got {v!r}")
    return t + (1,) * (3 - len(t))


class EmulatedKernel:
    """A kernel of an :class:`EmulatedModule`: ``kernel(grid, block, args)`` like CuPy's RawKernel."""

    def __init__(self, lib, name: str, params: list[Param]):
        self.name = name
        self.params = params
        self._fn = getattr(lib, f"ts_launch_{name}")
        self._fn.restype = None
        self._fn.argtypes = [ctypes.c_uint] * 6 + [
            ctypes.c_void_p if p.pointer else _TYPES[p.base][1] for p in params
        ]

    def _convert(self, p: Param, a):
        if p.pointer:
            if not isinstance(a, np.ndarray):
                raise TypeError(f"{self.name}: argument '{p.name}' ({p.ctype}) needs a numpy array, got {type(a)}")
            if a.dtype != p.dtype:
                raise TypeError(f"{self.name}: argument '{p.name}' ({p.ctype}) needs dtype {p.dtype}, got {a.dtype}")
            if not a.flags.c_contiguous:
                raise TypeError(f"{self.name}: argument '{p.name}' must be C-contiguous")
            if not p.const and not a.flags.writeable:
                raise TypeError(f"{self.name}: argument '{p.name}' is written by the kernel but read-only")
            return ctypes.c_void_p(a.ctypes.data)
        if not isinstance(a, np.generic) or a.dtype != p.dtype:
            raise TypeError(
                f"{self.name}: scalar argument '{p.name}' ({p.ctype}) needs a numpy {p.dtype} scalar, got {a!r}"
            )
        return _TYPES[p.base][1](a.item())

    def __call__(self, grid, block, args, **_ignored):
        if len(args) != len(self.params):
            raise TypeError(f"{self.name} takes {len(self.params)} arguments, got {len(args)}")
        conv = [self._convert(p, a) for p, a in zip(self.params, args)]
        self._fn(*_dims(grid), *_dims(block), *conv)


class EmulatedModule:
    """The kernels of one CUDA source, compiled for serial execution on the CPU."""

    def __init__(self, lib_path: Path, kernels: dict[str, list[Param]]):
        self.path = lib_path
        self._lib = ctypes.CDLL(str(lib_path))
        self.kernels = kernels
        self._lib.ts_emu_set_order.argtypes = [ctypes.c_int]

    def get_function(self, name: str) -> EmulatedKernel:
        if name not in self.kernels:
            raise KeyError(f"no kernel {name!r} in {self.path}; have {sorted(self.kernels)}")
        return EmulatedKernel(self._lib, name, self.kernels[name])

    def set_thread_order(self, reverse: bool) -> None:
        """Run threads (and blocks) in reverse order from now on (or forward again)."""
        self._lib.ts_emu_set_order(1 if reverse else 0)


def build_emulated(source, *, build_dir: Path | None = None, cxxflags: tuple[str, ...] = ("-O2",)) -> EmulatedModule:
    """Compile a .cu file with g++ and the emulation header into a shared library; load it.

    ``source`` is a path to the .cu file. The library is cached by content hash under
    ``build_dir`` (default: a folder in the system temp dir), so repeated builds are free.
    Skips the calling test when g++ is not installed.
    """
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ is not installed")
    text, path = _source_text(source)
    if path is None:
        raise ValueError("build_emulated needs the path of a .cu file")
    kernels = parse_kernels(text)
    if not kernels:
        raise ValueError(f'no extern "C" __global__ kernels found in {path}')
    wrapper = _wrapper_source(path, kernels)
    flags = ["-std=c++17", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", *cxxflags]
    key = hashlib.sha256("\0".join([HEADER.read_text(), text, wrapper, " ".join(flags)]).encode()).hexdigest()[:16]
    build_dir = Path(build_dir or Path(tempfile.gettempdir()) / "terrascale_cuda_emu") / key
    lib = build_dir / "kernels.so"
    if not lib.exists():
        build_dir.mkdir(parents=True, exist_ok=True)
        cpp = build_dir / "wrapper.cpp"
        cpp.write_text(wrapper)
        tmp = build_dir / f"kernels.{os.getpid()}.so"
        cmd = [gxx, *flags, "-x", "c++", str(cpp), "-o", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise CudaCompileError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
        os.replace(tmp, lib)
    return EmulatedModule(lib, kernels)


def require_cupy_device():
    """Return the cupy module, or skip the test when CuPy or a CUDA device is not available."""
    cupy = pytest.importorskip("cupy")
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 (any CUDA runtime error means: no usable device)
        pytest.skip(f"CuPy sees no CUDA device: {e}")
    if n < 1:
        pytest.skip("CuPy sees no CUDA device")
    return cupy
