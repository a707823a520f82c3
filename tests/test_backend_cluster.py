"""Backend resolution and the dask cluster factory (a real LocalCluster)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.backend import estimator_module, probe_gpu, resolve_backend
from pipeline.cluster import plan_cluster, start_cluster
from pipeline.config import ClusterConfig
from pipeline.errors import BackendError, ConfigError
from tests.helpers.optional import gpu_available, requires_dask_jobqueue


def test_cpu_backend_modules():
    b = resolve_backend("cpu")
    assert b.name == "cpu" and not b.is_gpu
    assert b.xp is np and b.xdf is pd
    assert b.xgboost_device == "cpu" and b.torch_device == "cpu" and b.cluster_kind == "local"
    assert estimator_module(b, "ensemble").__name__ == "sklearn.ensemble"


def test_auto_matches_probe():
    assert resolve_backend("auto").is_gpu == probe_gpu().usable


@pytest.mark.skipif(gpu_available(), reason="this machine has a GPU")
def test_gpu_without_device_is_a_clear_error():
    with pytest.raises(BackendError, match="no GPU is usable.*set backend: cpu"):
        resolve_backend("gpu")


def test_disable_env(monkeypatch):
    probe_gpu.cache_clear()
    monkeypatch.setenv("TERRASCALE_DISABLE_GPU", "1")
    try:
        assert resolve_backend("auto").name == "cpu"
    finally:
        probe_gpu.cache_clear()


@pytest.mark.gpu
def test_gpu_backend_modules():
    b = resolve_backend("gpu")
    assert b.xp.__name__ == "cupy" and b.xdf.__name__ == "cudf"


def test_plan_defaults_on_cpu():
    plan = plan_cluster(ClusterConfig(), resolve_backend("cpu"))
    assert plan.kind == "local" and plan.n_workers >= 1 and plan.threads_per_worker >= 1


def test_local_cluster_start_and_stop():
    cfg = ClusterConfig(kind="local", n_workers=2, threads_per_worker=1, memory_limit="1GB")
    with start_cluster(cfg, resolve_backend("cpu")) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        futures = client.map(lambda x: x * x, range(10))
        assert sum(client.gather(futures)) == 285
        cluster = client.cluster
    assert client.status == "closed"
    assert cluster.status.name == "closed"


def test_connect_to_existing_scheduler():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as lc:
        cfg = ClusterConfig(kind="address", address=lc.scheduler_address)
        with start_cluster(cfg) as client:
            assert client.submit(sum, [1, 2, 3]).result() == 6


def test_unreachable_scheduler_is_a_config_error():
    cfg = ClusterConfig(kind="address", address="tcp://127.0.0.1:9")
    with pytest.raises(ConfigError, match="cannot reach the dask scheduler"):
        with start_cluster(cfg):
            pass


@requires_dask_jobqueue
def test_slurm_job_script_follows_the_config():
    from pipeline.cluster import slurm_cluster
    from pipeline.config import SlurmConfig

    cfg = ClusterConfig(kind="slurm", slurm=SlurmConfig(queue="gpu", account="proj42", walltime="02:30:00", cores=4,
                                                        memory="16GB", jobs=3, job_extra_directives=["--gres=gpu:1"]))
    plan = plan_cluster(cfg, resolve_backend("cpu"))
    assert (plan.kind, plan.n_workers, plan.threads_per_worker) == ("slurm", 3, 4)
    cluster = slurm_cluster(cfg, plan)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p gpu", "#SBATCH -A proj42", "#SBATCH -t 02:30:00", "#SBATCH --gres=gpu:1", "--nthreads 4"):
        assert line in script, script


def test_slurm_without_dask_jobqueue_names_the_extra(monkeypatch):
    import builtins

    from pipeline.cluster import slurm_cluster
    from pipeline.errors import MissingDependencyError

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("dask_jobqueue"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    cfg = ClusterConfig(kind="slurm")
    with pytest.raises(MissingDependencyError, match=r"terrascale\[slurm\]"):
        slurm_cluster(cfg, plan_cluster(cfg, resolve_backend("cpu")))


@pytest.mark.gpu
def test_local_cuda_cluster_start_and_stop():
    cfg = ClusterConfig(kind="cuda", n_workers=1, memory_limit="4GB")
    with start_cluster(cfg, resolve_backend("gpu")) as client:
        assert len(client.scheduler_info()["workers"]) == 1
        assert client.submit(lambda: __import__("cupy").arange(4).sum().item()).result() == 6
