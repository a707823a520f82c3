"""What ``terrascale info`` reports: package versions, GPU, backend choice, cluster defaults."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform

from pipeline.backend import probe_gpu, resolve_backend
from pipeline.cluster import plan_cluster
from pipeline.config import ClusterConfig

KEY_PACKAGES = (
    "numpy", "pandas", "xarray", "dask", "distributed", "zarr", "netCDF4", "numba", "scikit-learn",
    "xgboost", "torch", "pydantic", "cupy-cuda12x", "cudf-cu12", "cuml-cu12", "dask-cuda", "kvikio-cu12",
    "dask-jobqueue", "mlflow",
)


#: pip wheel name -> the distribution's name as a conda package (the RAPIDS images install these)
CONDA_NAMES = {"cupy-cuda12x": "cupy", "cudf-cu12": "cudf", "cuml-cu12": "cuml", "kvikio-cu12": "kvikio"}


def package_versions() -> dict[str, str]:
    """Installed version of each key package, or 'not installed'.

    The GPU stack is looked up under its pip wheel name, then under its conda name
    (:data:`CONDA_NAMES`; reported as ``"<version> (conda cudf)"``), as in the RAPIDS-based image.
    """
    out = {}
    for name in KEY_PACKAGES:
        out[name] = "not installed"
        for dist in (name, CONDA_NAMES.get(name)):
            if dist is None:
                continue
            try:
                v = md.version(dist)
            except md.PackageNotFoundError:
                continue
            out[name] = v if dist == name else f"{v} (conda {dist})"
            break
    return out


def collect_info(choice: str = "auto") -> dict[str, str]:
    """Everything ``terrascale info`` prints, as ordered key/value pairs.

    ``choice`` is resolved like the config's ``backend`` key, so ``gpu`` on a machine without one
    raises the same :class:`~pipeline.errors.BackendError` a run would.
    """
    probe = probe_gpu()
    backend = resolve_backend(choice)
    plan = plan_cluster(ClusterConfig(), backend)
    info = {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
        "gpu usable": f"yes: {probe.device_count} x {probe.device_name}" if probe.usable else f"no ({probe.reason})",
        f"backend {choice} resolves to": f"{backend.name} (estimators {backend.estimators}, xgboost device {backend.xgboost_device}, torch device {backend.torch_device})",
        "cluster default": f"{plan.kind}: {plan.n_workers} worker(s) x {plan.threads_per_worker} thread(s), memory limit {plan.memory_limit}",
    }
    info.update({f"package {k}": v for k, v in package_versions().items()})
    return info
