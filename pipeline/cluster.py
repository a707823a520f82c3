"""dask cluster factory: LocalCluster, LocalCUDACluster, SLURM (dask-jobqueue) or an address.

:func:`start_cluster` is a context manager: the cluster is closed when the run leaves it, also
on errors, so no worker processes outlive a failed run.

Under SLURM there are two ways to get workers:

* ``kind: slurm``: dask-jobqueue's ``SLURMCluster`` submits one batch job per ``slurm.jobs``,
  each running one dask worker (CPU) or one dask-cuda worker per GPU (``slurm.gpus_per_job``);
  :func:`slurm_cluster` builds it and ``cluster.job_script()`` shows what would be submitted.
* ``kind: address`` with ``scheduler_file``: the batch script (``docker/slurm/multi-node.sbatch``)
  starts ``dask scheduler --scheduler-file F`` and ``dask-cuda-worker --scheduler-file F`` on
  every node itself, and the run connects through the same file (:func:`connect_client`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.backend import Backend, local_cuda_cluster_class, resolve_backend
from pipeline.config import ClusterConfig
from pipeline.errors import ConfigError, MissingDependencyError

#: seconds to wait for a scheduler file to appear (the scheduler of a batch job may still be starting)
SCHEDULER_FILE_WAIT_S = 60.0
#: seconds to wait for the scheduler to answer once its address is known
CONNECT_TIMEOUT_S = 10.0
#: seconds to wait for ``cluster.n_workers`` workers to join a scheduler the run connects to
WORKERS_WAIT_S = 300.0


@dataclass(frozen=True)
class ClusterPlan:
    """The cluster a config asks for, resolved against the backend and this machine.

    ``gpu`` says whether the workers must have GPUs (the GPU backend, or ``kind: cuda``);
    ``gpus_per_job`` is the GPU count of one SLURM worker job (0 for CPU workers).
    """

    kind: str
    n_workers: int
    threads_per_worker: int
    memory_limit: str
    gpu: bool = False
    gpus_per_job: int = 0


def plan_cluster(cfg: ClusterConfig, backend: Backend | None = None) -> ClusterPlan:
    """Resolve ``cluster.kind: auto`` and the default sizes without starting anything."""
    backend = backend or resolve_backend("auto")
    kind = backend.cluster_kind if cfg.kind == "auto" else cfg.kind
    cores = os.cpu_count() or 1
    gpus_per_job = 0
    if kind == "cuda":
        n_workers = cfg.n_workers or max(backend.device_count, 1)
        threads = cfg.threads_per_worker or 1
    elif kind == "slurm":
        gpus_per_job = getattr(cfg.slurm, "gpus_per_job", None) or 0
        if gpus_per_job:  # one dask-cuda worker per GPU of each job, the job's cores shared out
            n_workers = cfg.n_workers or cfg.slurm.jobs * gpus_per_job
            threads = cfg.threads_per_worker or max(1, cfg.slurm.cores // gpus_per_job)
        else:
            n_workers = cfg.n_workers or cfg.slurm.jobs
            threads = cfg.threads_per_worker or cfg.slurm.cores
    else:
        n_workers = cfg.n_workers or min(2, cores)
        threads = cfg.threads_per_worker or max(1, cores // n_workers)
    gpu = backend.is_gpu or kind == "cuda"
    return ClusterPlan(kind, n_workers, threads, cfg.memory_limit, gpu, gpus_per_job)


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
    # without the dashboard asked for, a free port: a second run on the machine must not clash on 8787
    dashboard = ":8787" if cfg.dashboard else ":0"
    cluster = client = None
    try:
        if plan.kind == "address":
            # a scheduler the run does not own: only the client is closed at the end
            client = connect_client(cfg)
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


def read_scheduler_file(path: str | os.PathLike, wait_s: float | None = None) -> str:
    """The scheduler address written by ``dask scheduler --scheduler-file PATH``.

    Waits up to ``wait_s`` seconds (:data:`SCHEDULER_FILE_WAIT_S` by default) for the file to
    appear and hold a complete JSON document, since the scheduler of a batch job may still be
    starting; distributed's own ``Client(scheduler_file=...)`` would wait forever.

    Raises
    ------
    ConfigError
        When the file is still missing or unreadable after the wait, naming the file and the fix.
    """
    path = Path(path).expanduser()
    wait_s = SCHEDULER_FILE_WAIT_S if wait_s is None else wait_s
    deadline = time.monotonic() + wait_s
    problem = "does not exist"
    while True:
        if path.is_file():
            try:
                address = json.loads(path.read_text()).get("address")
            except (OSError, ValueError, AttributeError):  # being written, or not a scheduler file
                problem = "is not a dask scheduler file (no JSON object with an 'address')"
            else:
                if isinstance(address, str) and address:
                    return address
                problem = "has no scheduler 'address'"
        elif path.exists():
            problem = "is not a file"
        if time.monotonic() >= deadline:
            break
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
    raise ConfigError(
        f"cluster.scheduler_file={path} {problem} (waited {wait_s:g} s); start the scheduler with "
        f"'dask scheduler --scheduler-file {path}' on a path every node can read (see docker/slurm/), "
        "or fix cluster.scheduler_file"
    )


def connect_client(cfg: ClusterConfig):
    """A client connected to an existing scheduler (``kind: address``), with bounded waits.

    The scheduler comes from ``cluster.scheduler_file`` when that is set (the file is read with
    :func:`read_scheduler_file`), else from ``cluster.address``. When ``cluster.n_workers`` is
    set, waits up to :data:`WORKERS_WAIT_S` for that many workers to join.

    Raises
    ------
    ConfigError
        When the scheduler file does not appear, the scheduler does not answer within
        :data:`CONNECT_TIMEOUT_S`, or too few workers join in time.
    """
    from distributed import Client

    scheduler_file = getattr(cfg, "scheduler_file", None)
    if scheduler_file:
        address = read_scheduler_file(scheduler_file)
        source = f"cluster.scheduler_file={scheduler_file} names {address}"
        stale = "; the file may be left over from an earlier job: delete it and restart the scheduler"
    elif cfg.address:
        address = cfg.address
        source = f"cluster.address={address}"
        stale = ""
    else:
        raise ConfigError("cluster.kind: address needs cluster.address (e.g. tcp://host:8786) or cluster.scheduler_file")
    try:
        client = Client(address, timeout=f"{CONNECT_TIMEOUT_S:g}s")
    except OSError as err:  # TimeoutError included: refused or silent port, unknown host
        raise ConfigError(f"cannot reach the dask scheduler ({source}): {err}{stale}") from None
    if cfg.n_workers:
        try:
            client.wait_for_workers(cfg.n_workers, timeout=WORKERS_WAIT_S)
        except TimeoutError:
            joined = len(client.scheduler_info().get("workers", {}))
            client.close()
            raise ConfigError(
                f"only {joined} of cluster.n_workers={cfg.n_workers} workers joined the dask scheduler ({source}) "
                f"within {WORKERS_WAIT_S:g} s; check the worker logs, or lower cluster.n_workers"
            ) from None
    return client


_GPU_DIRECTIVE = re.compile(r"^\s*(--gres=(\S*,)?gpu\b|--gpus(-per-[a-z]+)?[= ]|-G\s*\d)")


def _has_gpu_directive(directives: list[str]) -> bool:
    """Whether the user's extra directives already ask for GPUs (--gres=gpu..., --gpus..., -G N)."""
    return any(_GPU_DIRECTIVE.match(d) for d in directives)


def _container_python(gpu: bool) -> str | None:
    """The worker command's Python when the run itself is inside an Apptainer image, else None.

    A job script runs on a compute node outside any container, so the worker starts the same
    image (``apptainer exec [--nv] IMAGE python``) instead of this process's interpreter path.
    """
    image = os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER")
    if not image:
        return None
    return f"apptainer exec {'--nv ' if gpu else ''}{image} python"


def slurm_cluster(cfg: ClusterConfig, plan: ClusterPlan):
    """A dask-jobqueue ``SLURMCluster`` for the config, not yet scaled (no job submitted).

    CPU workers: each SLURM job runs one dask worker with ``threads_per_worker`` threads
    (``slurm.cores`` by default). GPU workers (``slurm.gpus_per_job``): each job asks for that
    many GPUs (``--gres=gpu:N``) and runs ``dask_cuda.cli``, one worker per GPU, sharing the
    job's cores and memory. ``cluster.job_script()`` shows the batch script ``scale`` would submit.

    Raises
    ------
    ConfigError
        Without a partition (``cluster.slurm.queue``); without a GPU count when the workers
        need GPUs (the GPU backend); with fewer cores than GPUs per job; with an unreadable
        memory size.
    """
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise MissingDependencyError("dask-jobqueue", "cluster.kind: slurm", extra="slurm") from None
    from dask.utils import parse_bytes

    s = cfg.slurm
    if not s.queue:
        raise ConfigError(
            "cluster.kind: slurm needs the partition its worker jobs are submitted to: set cluster.slurm.queue "
            "(e.g. --set cluster.slurm.queue=gpu; 'sinfo -s' lists the partitions)"
        )
    gpus = plan.gpus_per_job
    if plan.gpu and not gpus:
        raise ConfigError(
            "cluster.kind: slurm with the GPU backend needs the GPU count of each worker job: set "
            "cluster.slurm.gpus_per_job (e.g. --set cluster.slurm.gpus_per_job=4, one dask-cuda worker per GPU), "
            "or set backend: cpu for CPU workers"
        )
    if gpus and s.cores < gpus:
        raise ConfigError(
            f"cluster.slurm.cores={s.cores} is fewer than cluster.slurm.gpus_per_job={gpus}: each GPU worker "
            f"needs at least one core; set cluster.slurm.cores to {gpus} or more"
        )
    memory = s.memory if cfg.memory_limit == "auto" else cfg.memory_limit
    key = "cluster.slurm.memory" if cfg.memory_limit == "auto" else "cluster.memory_limit"
    try:
        size = parse_bytes(memory)
    except (ValueError, TypeError):
        size = 0
    if size < 2**20:  # '' and '1' parse as bytes: never a job's memory
        raise ConfigError(f"{key}={memory!r} is not the memory of a SLURM job; write it like '32GB' or '512GiB'")
    directives = list(s.job_extra_directives)
    kwargs = {}
    if gpus:
        if not _has_gpu_directive(directives):
            directives.append(f"--gres=gpu:{gpus}")
        # dask-cuda's worker starts one process per visible GPU; jobqueue divides the job's
        # cores and memory by `processes` for each worker's --nthreads / --memory-limit
        kwargs.update(cores=s.cores, processes=gpus, worker_command="dask_cuda.cli")
    else:
        kwargs.update(cores=plan.threads_per_worker, processes=1)
    python = getattr(s, "python", None) or _container_python(bool(gpus))
    if python:
        kwargs["python"] = python
    return SLURMCluster(
        queue=s.queue,
        account=s.account,
        walltime=s.walltime,
        memory=memory,
        job_name="terrascale-worker",
        job_extra_directives=directives,
        # a worker whose scheduler is gone (the run crashed) ends its job instead of idling to the walltime
        death_timeout=60,
        local_directory="${TMPDIR:-/tmp}",
        # like the local clusters: a free port, and the dashboard only when asked for
        scheduler_options={"dashboard_address": ":0", "dashboard": bool(cfg.dashboard)},
        **kwargs,
    )
