"""The multi-node client path on this machine: a scheduler and two workers as separate processes.

docker/slurm/multi-node.sbatch starts ``dask scheduler --scheduler-file F`` on the first node and
one worker per node with ``--scheduler-file F``; the run connects with ``cluster.kind: address``
and ``cluster.scheduler_file: F``. Here the same commands run as local processes (CPU workers
instead of dask-cuda-worker) and pipeline.cluster connects through the same file. The processes
are always killed; a missing, stale or broken file is a clear error after a bounded wait.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pipeline.cluster as cluster_module
from pipeline.cluster import read_scheduler_file, start_cluster
from pipeline.errors import ConfigError
from tests.cluster.configs import Cluster

DASK = [sys.executable, "-m", "dask"]


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """``dask scheduler`` and two ``dask worker`` processes sharing a scheduler file; killed at the end."""
    tmp = tmp_path_factory.mktemp("dask")
    scheduler_file = tmp / "scheduler.json"
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False", PYTHONUNBUFFERED="1")
    common = dict(cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    procs = []
    try:
        procs.append(subprocess.Popen(
            DASK + ["scheduler", "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1", "--port", "0",
                    "--dashboard-address", ":0", "--no-show"], **common))
        address = read_scheduler_file(scheduler_file, wait_s=15)
        for i in range(2):
            procs.append(subprocess.Popen(
                DASK + ["worker", "--scheduler-file", str(scheduler_file), "--name", f"w{i}", "--nthreads", "1",
                        "--nworkers", "1", "--memory-limit", "1GB", "--host", "127.0.0.1", "--no-dashboard",
                        "--local-directory", str(tmp / f"w{i}"), "--death-timeout", "30"], **common))
        yield scheduler_file, address
    finally:
        _stop(procs)
        assert all(p.poll() is not None for p in procs)


def test_run_through_the_scheduler_file(dask_cluster):
    scheduler_file, address = dask_cluster
    assert address.startswith("tcp://127.0.0.1:")
    cfg = Cluster(kind="address", scheduler_file=scheduler_file, n_workers=2)
    with start_cluster(cfg) as client:
        workers = client.scheduler_info()["workers"]
        assert sorted(w["name"] for w in workers.values()) == ["w0", "w1"]
        futures = client.map(lambda x: x * x, range(10))
        assert sum(client.gather(futures)) == 285
        # the tasks really ran in the worker processes, not in this one
        assert os.getpid() not in set(client.run(os.getpid).values())
    assert client.status == "closed"


def test_the_run_leaves_the_scheduler_it_does_not_own_running(dask_cluster):
    scheduler_file, _ = dask_cluster
    cfg = Cluster(kind="address", scheduler_file=scheduler_file)
    with start_cluster(cfg) as client:
        assert client.submit(sum, [1, 2, 3]).result() == 6
    with start_cluster(cfg) as client:  # still there for the next run of the same job
        assert len(client.scheduler_info()["workers"]) == 2


def test_too_few_workers_is_a_clear_error_after_a_bounded_wait(dask_cluster, monkeypatch):
    scheduler_file, _ = dask_cluster
    monkeypatch.setattr(cluster_module, "WORKERS_WAIT_S", 1.0)
    cfg = Cluster(kind="address", scheduler_file=scheduler_file, n_workers=3)
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"only 2 of cluster\.n_workers=3 workers joined .* within 1 s"):
        with start_cluster(cfg):
            pass
    assert time.monotonic() - start < 10


def test_missing_scheduler_file_is_a_clear_error_after_a_bounded_wait(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster_module, "SCHEDULER_FILE_WAIT_S", 1.0)
    missing = tmp_path / "nowhere" / "scheduler.json"
    cfg = Cluster(kind="address", scheduler_file=missing)
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        with start_cluster(cfg):
            pass
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert f"cluster.scheduler_file={missing} does not exist (waited 1 s)" in message
    assert f"dask scheduler --scheduler-file {missing}" in message


def test_file_naming_a_dead_scheduler_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT_S", 2.0)
    stale = tmp_path / "scheduler.json"
    stale.write_text(json.dumps({"type": "Scheduler", "address": "tcp://127.0.0.1:9", "id": "Scheduler-old"}))
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"cannot reach the dask scheduler \(cluster\.scheduler_file=.* names "
                                          r"tcp://127\.0\.0\.1:9\).*left over from an earlier job"):
        with start_cluster(Cluster(kind="address", scheduler_file=stale)):
            pass
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("content, problem", [
    ("{not json", "is not a dask scheduler file"),
    ('["tcp://127.0.0.1:9"]', "is not a dask scheduler file"),
    ('{"type": "Scheduler"}', "has no scheduler 'address'"),
])
def test_broken_scheduler_file(tmp_path, content, problem):
    path = tmp_path / "scheduler.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=problem):
        read_scheduler_file(path, wait_s=0.3)


def test_scheduler_file_written_late_is_waited_for(tmp_path):
    import threading

    path = tmp_path / "scheduler.json"
    timer = threading.Timer(0.5, lambda: path.write_text('{"address": "tcp://10.0.0.1:8786"}'))
    timer.start()
    try:
        assert read_scheduler_file(Path(path), wait_s=5) == "tcp://10.0.0.1:8786"
    finally:
        timer.cancel()
