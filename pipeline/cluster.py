"""dask cluster factory: LocalCluster, LocalCUDACluster, SLURM (dask-jobqueue) or an address.

:func:`start_cluster` is a context manager: the cluster is closed when the run leaves it, also
on errors, so no worker processes outlive a failed run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.backend import Backend, local_cuda_cluster_class, resolve_backend
from pipeline.config import ClusterConfig
from pipeline.errors import ConfigError, MissingDependencyError


@dataclass(frozen=True)
class ClusterPlan:
    """The cluster a config asks for, resolved against the backend and this machine."""

    kind: str
    n_workers: int
    threads_per_worker: int
    memory_limit: str


def plan_cluster(cfg: ClusterConfig, backend: Backend | None = None) -> ClusterPlan:
    """Resolve ``cluster.kind: auto`` and the default sizes without starting anything."""
    backend = backend or resolve_backend("auto")
    kind = backend.cluster_kind if cfg.kind == "auto" else cfg.kind
    cores = os.cpu_count() or 1
    if kind == "cuda":
        n_workers = cfg.n_workers or max(backend.device_count, 1)
        threads = cfg.threads_per_worker or 1
    elif kind == "slurm":
        n_workers = cfg.n_workers or cfg.slurm.jobs
        threads = cfg.threads_per_worker or cfg.slurm.cores
    else:
        n_workers = cfg.n_workers or min(2, cores)
        threads = cfg.threads_per_worker or max(1, cores // n_workers)
    return ClusterPlan(kind, n_workers, threads, cfg.memory_limit)


@contextlib.contextmanager
def start_cluster(cfg: ClusterConfig, backend: Backend | None = None) -> Iterator["distributed.Client"]:  # noqa: F821
    """Start (or connect to) the configured dask cluster and yield a connected client.

    Parameters
    ----------
    cfg
        The ``cluster`` section of the run config.
    backend
        The resolved backend; decides what ``kind: auto`` means.
    """
    from distributed import Client, LocalCluster

    plan = plan_cluster(cfg, backend)
    dashboard = ":0" if cfg.dashboard else None
    cluster = client = None
    try:
        if plan.kind == "address":
            try:
                client = Client(cfg.address, timeout="10s")
            except OSError as err:
                raise ConfigError(f"cannot reach the dask scheduler at cluster.address={cfg.address}: {err}") from None
        else:
            if plan.kind == "local":
                cluster = LocalCluster(
                    n_workers=plan.n_workers,
                    threads_per_worker=plan.threads_per_worker,
                    memory_limit=plan.memory_limit,
                    dashboard_address=dashboard,
                    processes=True,
                )
            elif plan.kind == "cuda":
                cluster = local_cuda_cluster_class()(
                    n_workers=plan.n_workers,
                    threads_per_worker=plan.threads_per_worker,
                    memory_limit=plan.memory_limit,
                    dashboard_address=dashboard,
                )
            elif plan.kind == "slurm":
                cluster = slurm_cluster(cfg, plan)
                cluster.scale(jobs=cfg.slurm.jobs)
            client = Client(cluster)
        yield client
    finally:
        # also when starting failed half-way: no worker process or SLURM job outlives the run
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def slurm_cluster(cfg: ClusterConfig, plan: ClusterPlan):
    """A dask-jobqueue ``SLURMCluster`` for the config, not yet scaled (no job submitted).

    Each SLURM job runs one dask worker with ``threads_per_worker`` threads (``slurm.cores`` by
    default); ``cluster.job_script()`` shows the batch script that ``scale`` would submit.
    """
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise MissingDependencyError("dask-jobqueue", "cluster.kind: slurm", extra="slurm") from None
    s = cfg.slurm
    memory = s.memory if cfg.memory_limit == "auto" else cfg.memory_limit
    cluster = SLURMCluster(
        queue=s.queue,
        account=s.account,
        walltime=s.walltime,
        cores=plan.threads_per_worker,
        processes=1,
        memory=memory,
        job_extra_directives=list(s.job_extra_directives),
    )
    return cluster
