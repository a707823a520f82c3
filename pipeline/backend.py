"""Compute backend: CPU (numpy, pandas, scikit-learn) or GPU (CuPy, cudf, cuML).

``backend: auto|cpu|gpu`` is resolved once per run into a :class:`Backend` that every stage
takes its modules from. This is the only module of ``pipeline`` that imports CuPy, cudf, cuML,
KvikIO or dask-cuda (the CUDA kernels' launcher in ``kernels/gpu.py`` is the other place), so
the CPU install never needs them and a missing GPU stack fails here, with one clear message.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from functools import lru_cache
from types import ModuleType
from typing import Literal

from pipeline.errors import BackendError

GPU_PACKAGES = ("cupy", "cudf", "cuml", "dask_cuda", "kvikio")


@dataclass(frozen=True)
class GpuProbe:
    """What this machine offers for the GPU backend."""

    usable: bool
    device_count: int
    reason: str
    device_name: str | None = None


@lru_cache(maxsize=1)
def probe_gpu() -> GpuProbe:
    """Check whether CuPy is installed and sees at least one CUDA device."""
    if os.environ.get("TERRASCALE_DISABLE_GPU"):
        return GpuProbe(False, 0, "disabled by TERRASCALE_DISABLE_GPU")
    try:
        cupy = importlib.import_module("cupy")
    except ImportError:
        return GpuProbe(False, 0, "CuPy is not installed (pip install 'terrascale[gpu]')")
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as err:  # noqa: BLE001  (CUDA driver missing or broken: CuPy raises its own runtime errors)
        return GpuProbe(False, 0, f"CuPy cannot reach a CUDA driver ({type(err).__name__}: {err})")
    if count == 0:
        return GpuProbe(False, 0, "CuPy sees no CUDA device")
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    return GpuProbe(True, count, "ok", name.decode() if isinstance(name, bytes) else str(name))


@dataclass(frozen=True)
class Backend:
    """The modules and devices a run uses.

    Attributes
    ----------
    name
        ``"cpu"`` or ``"gpu"``.
    estimators
        ``"sklearn"`` or ``"cuml"``: the family of random-forest and linear baselines.
    xgboost_device, torch_device
        The ``device`` argument for XGBoost and PyTorch.
    cluster_kind
        The dask cluster ``cluster.kind: auto`` starts: ``"local"`` or ``"cuda"``.
    """

    name: Literal["cpu", "gpu"]
    estimators: Literal["sklearn", "cuml"]
    xgboost_device: str
    torch_device: str
    cluster_kind: Literal["local", "cuda"]
    device_count: int = 0
    reason: str = field(default="", compare=False)

    @property
    def is_gpu(self) -> bool:
        """True for the GPU backend."""
        return self.name == "gpu"

    @property
    def xp(self) -> ModuleType:
        """The array module: numpy or cupy."""
        return importlib.import_module("cupy" if self.is_gpu else "numpy")

    array_module = xp

    @property
    def xdf(self) -> ModuleType:
        """The dataframe module: pandas or cudf."""
        return _import_gpu("cudf", "GPU dataframes") if self.is_gpu else importlib.import_module("pandas")

    dataframe_module = xdf


def _import_gpu(name: str, feature: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise BackendError(
            f"{feature} need the package '{name}', which is not installed; "
            "install the GPU extra with: pip install 'terrascale[gpu]', or set backend: cpu"
        ) from None


def resolve_backend(choice: str = "auto") -> Backend:
    """Resolve ``auto|cpu|gpu`` into a :class:`Backend`.

    ``auto`` picks the GPU only when CuPy sees a CUDA device; ``gpu`` without one raises
    :class:`~pipeline.errors.BackendError` naming what is missing.
    """
    if choice not in ("auto", "cpu", "gpu"):
        raise BackendError(f"backend '{choice}' is not one of auto, cpu, gpu")
    probe = probe_gpu()
    if choice == "gpu" and not probe.usable:
        raise BackendError(f"backend: gpu was requested but no GPU is usable: {probe.reason}; set backend: cpu or auto")
    if choice == "gpu" or (choice == "auto" and probe.usable):
        return Backend("gpu", "cuml", "cuda", "cuda", "cuda", probe.device_count, probe.reason)
    why = "requested" if choice == "cpu" else f"auto: {probe.reason}"
    return Backend("cpu", "sklearn", "cpu", "cpu", "local", 0, why)


def estimator_module(backend: Backend, kind: Literal["ensemble", "linear_model"]) -> ModuleType:
    """scikit-learn's or cuML's module of a kind of estimator (``ensemble``, ``linear_model``)."""
    if backend.is_gpu:
        return _import_gpu(f"cuml.{kind}", "cuML estimators")
    return importlib.import_module(f"sklearn.{kind}")


def local_cuda_cluster_class():
    """dask-cuda's ``LocalCUDACluster`` (GPU backend only)."""
    return _import_gpu("dask_cuda", "GPU dask clusters").LocalCUDACluster


def zarr_device_store(path):
    """A read-only Zarr store for reads straight into device memory.

    KvikIO's ``GDSStore`` (GPUDirect Storage, with its POSIX fallback) when KvikIO is installed,
    zarr's ``LocalStore`` otherwise.

    Parameters
    ----------
    path : str or Path
        The Zarr store's directory.

    Returns
    -------
    zarr store
        A store to pass to ``zarr.open_array`` under ``zarr.config.enable_gpu()``.
    """
    try:
        from kvikio.zarr import GDSStore
    except ImportError:
        import zarr

        return zarr.storage.LocalStore(str(path), read_only=True)
    return GDSStore(root=str(path))
