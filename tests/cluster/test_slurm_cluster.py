"""pipeline.cluster's dask-jobqueue path: the SLURM job script a config renders, and bad configs.

``SLURMCluster(...).job_script()`` renders the batch script that ``scale`` would submit without
submitting anything (no SLURM needed); constructing the cluster starts a local scheduler only.
"""

from __future__ import annotations

import re

import pytest

from pipeline.backend import Backend, resolve_backend
from pipeline.cluster import plan_cluster, slurm_cluster
from pipeline.config import load_config
from pipeline.errors import ConfigError
from tests.cluster.configs import Cluster, Slurm
from tests.docker.tools import ROOT
from tests.helpers.optional import requires_dask_jobqueue

pytestmark = requires_dask_jobqueue

CPU = resolve_backend("cpu")
# the GPU backend as a run on a GPU node resolves it (built directly: this machine may have no GPU)
GPU = Backend("gpu", "cuml", "cuda", "cuda", "cuda", device_count=4)


def render(cfg, backend=CPU) -> str:
    cluster = slurm_cluster(cfg, plan_cluster(cfg, backend))
    try:
        return cluster.job_script()
    finally:
        cluster.close()


def directives(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ").strip() for line in script.splitlines() if line.startswith("#SBATCH")]


def worker_command(script: str) -> str:
    (line,) = [line for line in script.splitlines() if " -m " in line]
    return line


def test_shipped_jobqueue_config_renders_its_directives():
    cfg = load_config(ROOT / "configs" / "slurm-jobqueue.yaml")
    s = cfg.cluster.slurm
    script = render(cfg.cluster)
    d = directives(script)
    assert f"-p {s.queue}" in d and f"-A {s.account}" in d and f"-t {s.walltime}" in d
    assert f"--cpus-per-task={s.cores}" in d and "-n 1" in d
    # 64GB (decimal) as SLURM's binary units, rounded up: never more than the config asks
    (mem,) = [x for x in d if x.startswith("--mem=")]
    assert mem == "--mem=60G"
    cmd = worker_command(script)
    assert "-m distributed.cli.dask_worker" in cmd
    assert f"--nthreads {s.cores}" in cmd and "--memory-limit 59.60GiB" in cmd
    # a worker whose run died ends its job instead of holding the allocation to the walltime
    assert "--death-timeout 60" in cmd
    assert "--local-directory ${TMPDIR:-/tmp}" in cmd


def test_cpu_directives_follow_the_config():
    cfg = Cluster(kind="slurm", slurm=Slurm(queue="short", account="esm01", walltime="00:30:00", cores=4,
                                            memory="8GiB", jobs=3, job_extra_directives=["--constraint=skylake"]))
    plan = plan_cluster(cfg, CPU)
    assert (plan.n_workers, plan.threads_per_worker, plan.gpus_per_job) == (3, 4, 0)
    d = directives(render(cfg))
    assert d[:2] == ["-J terrascale-worker", "-p short"]
    assert {"-A esm01", "-t 00:30:00", "--cpus-per-task=4", "--mem=8G", "--constraint=skylake"} <= set(d)
    assert not any("gpu" in x for x in d)


def test_gpu_workers_one_per_gpu_sharing_the_job():
    cfg = Cluster(kind="slurm", slurm=Slurm(queue="gpu", account="esm01", walltime="04:00:00", cores=32,
                                            memory="256GiB", jobs=2, gpus_per_job=4))
    plan = plan_cluster(cfg, GPU)
    assert (plan.n_workers, plan.threads_per_worker, plan.gpus_per_job, plan.gpu) == (8, 8, 4, True)
    script = render(cfg, GPU)
    d = directives(script)
    assert {"-p gpu", "-A esm01", "-t 04:00:00", "--cpus-per-task=32", "--mem=256G", "--gres=gpu:4"} <= set(d)
    cmd = worker_command(script)
    # dask-cuda's worker starts one process per GPU: each gets a quarter of the job's cores and memory
    assert "-m dask_cuda.cli " in cmd and "--nthreads 8" in cmd and "--memory-limit 64.00GiB" in cmd
    assert "--nanny" not in cmd  # a distributed.cli.dask_worker option dask-cuda does not have


def test_gpu_directive_given_by_the_user_is_kept_not_doubled():
    cfg = Cluster(kind="slurm", slurm=Slurm(queue="gpu", cores=8, gpus_per_job=2,
                                            job_extra_directives=["--gpus-per-node=a100:2"]))
    d = directives(render(cfg, GPU))
    assert "--gpus-per-node=a100:2" in d and not any(x.startswith("--gres") for x in d)


def test_worker_python_inside_apptainer(monkeypatch):
    # a run inside the image submits workers that start the same image
    monkeypatch.setenv("APPTAINER_CONTAINER", "/shared/terrascale.sif")
    cfg = Cluster(kind="slurm", slurm=Slurm(queue="gpu", cores=8, gpus_per_job=2))
    assert worker_command(render(cfg, GPU)).startswith("apptainer exec --nv /shared/terrascale.sif python -m dask_cuda.cli")
    cfg = Cluster(kind="slurm", slurm=Slurm(queue="cpu", cores=8))
    assert worker_command(render(cfg)).startswith("apptainer exec /shared/terrascale.sif python -m distributed")
    # an explicit cluster.slurm.python wins
    cfg = Cluster(kind="slurm", slurm=Slurm(queue="cpu", python="/sw/envs/terrascale/bin/python"))
    assert worker_command(render(cfg)).startswith("/sw/envs/terrascale/bin/python -m distributed")


def test_without_partition_is_one_clear_config_error():
    cfg = Cluster(kind="slurm", slurm=Slurm(account="esm01"))
    with pytest.raises(ConfigError) as err:
        render(cfg)
    message = str(err.value)
    assert "cluster.slurm.queue" in message and "partition" in message and "\n" not in message


def test_gpu_backend_without_gpu_count_is_one_clear_config_error():
    cfg = Cluster(kind="slurm", slurm=Slurm(queue="gpu", account="esm01"))
    with pytest.raises(ConfigError, match=r"cluster\.slurm\.gpus_per_job.*or set backend: cpu"):
        render(cfg, GPU)


def test_fewer_cores_than_gpus_is_a_config_error():
    cfg = Cluster(kind="slurm", slurm=Slurm(queue="gpu", cores=2, gpus_per_job=4))
    with pytest.raises(ConfigError, match=r"cluster\.slurm\.cores=2 is fewer than cluster\.slurm\.gpus_per_job=4"):
        render(cfg, GPU)


@pytest.mark.parametrize("memory, key", [("lots", "cluster.slurm.memory"), ("", "cluster.slurm.memory")])
def test_unreadable_memory_is_a_config_error(memory, key):
    cfg = Cluster(kind="slurm", slurm=Slurm(queue="cpu", memory=memory))
    with pytest.raises(ConfigError, match=re.escape(key)):
        render(cfg)


def test_memory_limit_overrides_the_job_memory():
    cfg = Cluster(kind="slurm", memory_limit="bogus", slurm=Slurm(queue="cpu"))
    with pytest.raises(ConfigError, match=r"cluster\.memory_limit='bogus'"):
        render(cfg)
    cfg = Cluster(kind="slurm", memory_limit="16GiB", slurm=Slurm(queue="cpu"))
    assert "--mem=16G" in directives(render(cfg))
