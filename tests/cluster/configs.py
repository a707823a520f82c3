"""Config sections with the cluster keys pipeline/cluster.py reads through ``getattr``.

``cluster.scheduler_file`` and ``cluster.slurm.gpus_per_job`` / ``cluster.slurm.python`` are read
by pipeline/cluster.py with ``getattr(cfg, ..., None)``, so the code works before and after the
config sections declare them. Until they do, these subclasses declare them the same way (and
``kind: address`` accepts a scheduler file instead of an address); once the real sections have
them, the real sections are used.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from pipeline.config import ClusterConfig, SlurmConfig

if "gpus_per_job" in SlurmConfig.model_fields and "python" in SlurmConfig.model_fields:
    Slurm = SlurmConfig
else:

    class Slurm(SlurmConfig):
        gpus_per_job: int | None = Field(
            None, ge=1, description="GPUs per worker job, one dask-cuda worker each; required with the GPU backend"
        )
        python: str | None = Field(
            None, description="command that runs Python in a worker job, e.g. 'apptainer exec --nv /path/terrascale.sif python'"
        )


if "scheduler_file" in ClusterConfig.model_fields and Slurm is SlurmConfig:
    Cluster = ClusterConfig
else:

    class Cluster(ClusterConfig):
        slurm: Slurm = Field(default_factory=Slurm)
        scheduler_file: Path | None = Field(
            None, description="kind 'address': JSON file written by 'dask scheduler --scheduler-file', read instead of address"
        )

        @model_validator(mode="after")
        def _check(self) -> "Cluster":
            if self.kind == "address" and not (self.address or self.scheduler_file):
                raise ValueError("kind 'address' needs 'address' (e.g. tcp://scheduler:8786) or 'scheduler_file'")
            if self.address and self.scheduler_file:
                raise ValueError("give either 'address' or 'scheduler_file', not both")
            return self
