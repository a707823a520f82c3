"""Run configuration: typed pydantic v2 models for every section of the YAML config.

A config is loaded from YAML, optionally changed with ``--set a.b=c`` overrides, validated
(``extra="forbid"`` everywhere, so a typo is an error and not a silently ignored key) and
resolved: every default filled in. The resolved config and its sha256 are written into the run
directory, so a run can be reproduced and recognised.

The sha256 is taken over the canonical JSON of the resolved config (sorted keys, no
whitespace), so the same settings give the same hash whether they came from a short YAML file
relying on defaults or from the full resolved file written by an earlier run.

Modules: ``sections`` (the pydantic models), ``load`` (YAML, overrides, messages, hashes, the
resolved config file).
"""

from __future__ import annotations

from pipeline.config.load import (
    apply_overrides,
    config_dict,
    config_sha256,
    dump_config,
    format_validation_error,
    load_config,
    resolve_config,
    write_resolved_config,
)
from pipeline.config.models import MODEL_KINDS, ModelEntry
from pipeline.config.section import Section
from pipeline.config.sections import (
    AggregationConfig,
    ClusterConfig,
    DataConfig,
    FeaturesConfig,
    GridsConfig,
    MissingPolicy,
    OutputConfig,
    PredictConfig,
    ReportConfig,
    RunConfig,
    SlurmConfig,
    SplitsConfig,
    TrainingConfig,
)

__all__ = [
    "AggregationConfig",
    "ClusterConfig",
    "DataConfig",
    "FeaturesConfig",
    "GridsConfig",
    "MissingPolicy",
    "MODEL_KINDS",
    "ModelEntry",
    "OutputConfig",
    "PredictConfig",
    "ReportConfig",
    "RunConfig",
    "Section",
    "SlurmConfig",
    "SplitsConfig",
    "TrainingConfig",
    "apply_overrides",
    "config_dict",
    "config_sha256",
    "dump_config",
    "format_validation_error",
    "load_config",
    "resolve_config",
    "write_resolved_config",
]
