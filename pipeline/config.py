"""Run configuration: typed pydantic v2 models for every section of the YAML config.

A config is loaded from YAML, optionally changed with ``--set a.b=c`` overrides, validated
(``extra="forbid"`` everywhere, so a typo is an error and not a silently ignored key) and
resolved: every default filled in. The resolved config and its sha256 are written into the run
directory, so a run can be reproduced and recognised.

The sha256 is taken over the canonical JSON of the resolved config (sorted keys, no
whitespace), so the same settings give the same hash whether they came from a short YAML file
relying on defaults or from the full resolved file written by an earlier run.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ConfigError


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    """Where the input data come from.

    ``source: demo`` generates the embedded sample data (real MODIS land cover, Köppen-Geiger
    zones and GLOBE land mask, plus semi-synthetic climate and LAI) for ``region`` and
    ``years``; ``source: stores`` reads prepared stores from ``root``.
    """

    source: Literal["demo", "stores"] = "demo"
    root: Path | None = Field(None, description="directory holding the input stores (source: stores)")
    region: str = Field("iberia", description="named region (global, europe, iberia, africa, alps) or a box 'south,north,west,east'")
    years: tuple[int, int] = Field((2001, 2030), description="first and last year, inclusive")
    scenarios: list[str] = Field(default_factory=lambda: ["ssp126", "ssp585"])
    target: str = Field("lai", description="variable the models learn")

    @field_validator("years", mode="before")
    @classmethod
    def _parse_years(cls, v: Any) -> Any:
        if isinstance(v, str) and ":" in v:
            a, b = v.split(":", 1)
            return (int(a), int(b))
        return v

    @model_validator(mode="after")
    def _check(self) -> "DataConfig":
        if self.years[0] > self.years[1]:
            raise ValueError(f"years {self.years[0]}:{self.years[1]} runs backwards; write first:last")
        if self.source == "stores" and self.root is None:
            raise ValueError("source 'stores' needs 'root', the directory with the input stores")
        return self


class GridsConfig(Section):
    """Grid specs (``0.05deg``, ``1deg``, ``F128``, ``O96``, ``N128``, ``tl255``, ``file:x.nc``)."""

    fine: str = "0.05deg"
    coarse: str = "1deg"
    targets: list[str] = Field(default_factory=lambda: ["1deg", "N32"], description="ESM grids to aggregate onto")


class MissingPolicy(Section):
    """What to do with a missing value in one column."""

    action: Literal["drop", "constant", "mean", "keep"] = "drop"
    value: float | None = None

    @model_validator(mode="after")
    def _check(self) -> "MissingPolicy":
        if self.action == "constant" and self.value is None:
            raise ValueError("action 'constant' needs 'value'")
        return self


class FeaturesConfig(Section):
    """Predictors of the training table (see README, 'features')."""

    static: list[str] = Field(
        default_factory=lambda: ["land_fraction", "koppen", "lat", "lon", "distance_to_coast"]
    )
    coarse: list[str] = Field(default_factory=lambda: ["tas", "pr", "rsds"])
    coarse_broadcast: Literal["parent", "bilinear"] = "bilinear"
    lulc_neighbourhood: bool = True
    time: list[str] = Field(default_factory=lambda: ["month_sin", "month_cos", "year"])
    lags: list[int] = Field(default_factory=lambda: [3], description="window lengths (months) of lagged means")
    categorical: list[str] = Field(default_factory=lambda: ["koppen", "igbp"])
    missing: dict[str, MissingPolicy] = Field(default_factory=dict, description="per-column missing-value policy")
    partition_rows: int = Field(2_000_000, gt=0, description="rows per Parquet/dask partition")
    # added with issue 5 (features stage)
    mask_variable: str = Field("land_fraction", description="static variable that selects the table's cells")
    mask_min: float = Field(0.0, description="cells with mask_variable > mask_min become rows")
    broadcast: dict[str, Literal["parent", "bilinear", "nearest"]] = Field(
        default_factory=dict,
        description="per-variable rule for putting a coarse variable on the fine grid; overrides "
        "coarse_broadcast (and 'parent' for the LULC fractions); 'nearest' (the coarse cell holding "
        "the fine cell centre) or 'bilinear' are needed when the grids do not nest",
    )
    lag_variables: list[str] = Field(
        default_factory=lambda: ["pr", "tas"], description="climate variables whose previous-months means are features"
    )
    accumulate: list[str] = Field(
        default_factory=lambda: ["pr"], description="climate variables whose previous-months sums are features"
    )
    lulc_variable: str | None = Field("lulc_fraction", description="coarse LULC fractions (group, lat, lon); null: none")
    nodata: dict[str, float] = Field(
        default_factory=lambda: {"koppen": 0, "igbp": 255},
        description="no-data code of integer static variables (read as missing)",
    )
    missing_default: MissingPolicy = Field(
        default_factory=lambda: MissingPolicy(action="keep"),
        description="policy of columns not listed in 'missing' (the target: drop)",
    )

    @field_validator("lags")
    @classmethod
    def _positive_lags(cls, v: list[int]) -> list[int]:
        if any(x < 1 for x in v):
            raise ValueError(f"lags must be positive numbers of months, got {v}")
        return v

    @field_validator("time")
    @classmethod
    def _known_time_features(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if x not in ("month_sin", "month_cos", "year", "month")]
        if bad:
            raise ValueError(f"unknown time feature(s) {bad}; choose from month_sin, month_cos, year, month")
        return v


class SplitsConfig(Section):
    """Cross-validation splits: spatial blocks, temporal holdout, or both."""

    kind: Literal["spatial", "temporal", "both"] = "both"
    block_size_deg: float = Field(2.0, gt=0)
    n_folds: int = Field(5, ge=2)
    test_fold: int = Field(0, ge=0)
    buffer_deg: float = Field(0.0, ge=0)
    test_years: tuple[int, int] | None = Field((2016, 2020), description="held-out years, inclusive")

    @model_validator(mode="after")
    def _check(self) -> "SplitsConfig":
        if self.test_years is not None and self.test_years[0] > self.test_years[1]:
            raise ValueError(f"test_years {list(self.test_years)} runs backwards; write [first, last]")
        if self.test_fold >= self.n_folds:
            raise ValueError(f"test_fold {self.test_fold} must be smaller than n_folds {self.n_folds}")
        return self


class ModelSpec(Section):
    """One model of the comparison: a registry name and its hyper-parameters."""

    name: str
    kind: str = Field(..., description="registry key, e.g. xgboost, random_forest, climatology, mlp, unet")
    params: dict[str, Any] = Field(default_factory=dict)


class TrainingConfig(Section):
    """Settings shared by the deep-model trainers."""

    max_epochs: int = Field(20, ge=1)
    batch_size: int = Field(4096, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    early_stopping_patience: int = Field(5, ge=1)
    checkpoint_every: int = Field(1, ge=1, description="epochs between checkpoints")
    resume: bool = True


class SlurmConfig(Section):
    """dask-jobqueue SLURMCluster settings (used when cluster.kind is 'slurm')."""

    queue: str | None = None
    account: str | None = None
    walltime: str = "01:00:00"
    cores: int = Field(8, ge=1)
    memory: str = "32GB"
    jobs: int = Field(1, ge=1)
    job_extra_directives: list[str] = Field(default_factory=list)


class ClusterConfig(Section):
    """The dask cluster a run starts (or connects to)."""

    kind: Literal["auto", "local", "cuda", "slurm", "address"] = "auto"
    n_workers: int | None = Field(None, ge=1, description="default: 1 per GPU on cuda, else min(2, cores)")
    threads_per_worker: int | None = Field(None, ge=1)
    memory_limit: str = Field("auto", description="per worker, e.g. '4GB' or 'auto'")
    address: str | None = Field(None, description="scheduler address for kind 'address', e.g. tcp://host:8786")
    dashboard: bool = False
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)

    @model_validator(mode="after")
    def _check(self) -> "ClusterConfig":
        if self.kind == "address" and not self.address:
            raise ValueError("kind 'address' needs 'address', e.g. tcp://scheduler:8786")
        return self


class AggregationConfig(Section):
    """How fine predictions are aggregated onto the ESM grids."""

    engine: Literal["auto", "numpy", "numba", "cupy"] = "auto"
    continuous: list[str] = Field(default_factory=lambda: ["lai"], description="fields aggregated by conservative mean")
    categorical: list[str] = Field(default_factory=lambda: ["igbp"], description="fields aggregated to class fractions")
    pft_crosswalk: Path | None = Field(None, description="CSV class→PFT table; default: the shipped IGBP table")
    min_valid_fraction: float = Field(0.0, ge=0, le=1)
    chunk_rows: int = Field(240, ge=1, description="source rows per streamed chunk")


class ReportConfig(Section):
    """The HTML report."""

    title: str = "terrascale run report"
    bootstrap_samples: int = Field(200, ge=0)
    regions: list[str] = Field(default_factory=list)


class OutputConfig(Section):
    """Where a run writes and in which format."""

    root: Path = Path("runs")
    format: Literal["zarr", "netcdf"] = "zarr"


class RunConfig(Section):
    """A whole terrascale run."""

    run_name: str = Field("run", pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    backend: Literal["auto", "cpu", "gpu"] = "auto"
    data: DataConfig = Field(default_factory=DataConfig)
    grids: GridsConfig = Field(default_factory=GridsConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    splits: SplitsConfig = Field(default_factory=SplitsConfig)
    models: list[ModelSpec] = Field(default_factory=list)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    aggregation: AggregationConfig = Field(default_factory=AggregationConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @property
    def run_dir(self) -> Path:
        """Directory of this run's outputs: ``output.root / run_name``."""
        return self.output.root / self.run_name


# ----------------------------------------------------------------------------------------------
# loading, overrides, hashing


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override '{item}' has no '='; write it as section.key=value, e.g. seed=1")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise ConfigError(f"override '{item}' has an empty key part; write it as section.key=value")
    try:
        return parts, yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override '{item}': the value is not valid YAML ({getattr(err, 'problem', err)}); "
                          "quote it, e.g. --set 'report.title=\"a: b\"'") from None


def apply_overrides(raw: dict, overrides: list[str] | None) -> dict:
    """Apply ``a.b=c`` overrides (values parsed as YAML; list items by index) to a raw config dict."""
    for item in overrides or []:
        parts, value = _parse_override(item)
        node: Any = raw
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                node = node[_list_index(node, part, item)]
            elif isinstance(node.get(part, {}), (dict, list)):
                node = node.setdefault(part, {})
            else:
                node = None
            if not isinstance(node, (dict, list)):
                raise ConfigError(f"override '{item}': '{'.'.join(parts[: i + 1])}' is a value, not a section")
        last = parts[-1]
        if isinstance(node, list):
            node[_list_index(node, last, item)] = value
        else:
            node[last] = value
    return raw


def _list_index(node: list, part: str, item: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"override '{item}': '{part}' is not an index of a list of {len(node)} items")
    return int(part)


def _allowed_keys(model: type[BaseModel], loc: tuple) -> tuple[str, list[str]]:
    """Walk a validation error location to the section it points into; return its name and keys."""
    section, cls = "top level", model
    for part in loc[:-1]:
        if isinstance(part, int) or cls is None:
            continue
        field = cls.model_fields.get(part)
        if field is None:
            break
        ann = field.annotation
        inner = getattr(ann, "__args__", None)
        candidates = [ann, *(inner or ())]
        cls = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        section = f"section '{'.'.join(str(p) for p in loc[:-1])}'"
    return section, sorted(cls.model_fields) if cls else []


def format_validation_error(err: ValidationError, source: str) -> str:
    """One readable message for every problem pydantic found, naming key, section and fix."""
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        if e["type"] == "extra_forbidden":
            section, allowed = _allowed_keys(RunConfig, loc)
            lines.append(f"unknown key '{loc[-1]}' in {section}; allowed keys: {', '.join(allowed)}")
        elif e["type"] == "missing":
            lines.append(f"'{where}' is required but missing")
        else:
            got = e.get("input")
            shown = repr(got) if not isinstance(got, dict) else "a mapping"
            lines.append(f"'{where}': {e['msg']} (got {shown})")
    return f"invalid config {source}: " + "; ".join(lines)


def resolve_config(raw: dict, source: str = "(dict)") -> RunConfig:
    """Validate a raw config mapping into a :class:`RunConfig`, with a readable error."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Load a YAML config file, apply ``--set`` overrides and validate it.

    Parameters
    ----------
    path
        YAML file; ``None`` starts from the defaults.
    overrides
        ``"section.key=value"`` strings, values parsed as YAML.

    Returns
    -------
    RunConfig
        The resolved configuration (all defaults filled in).
    """
    raw: dict = {}
    source = "(defaults)"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; pass the path of a YAML config such as configs/demo.yaml")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {path} cannot be read as UTF-8 text ({err}); pass a YAML file") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"config file {path} is not valid YAML{where}: {getattr(err, 'problem', err)}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(raw).__name__}")
    raw = apply_overrides(raw, overrides)
    return resolve_config(raw, source)


def config_dict(cfg: RunConfig) -> dict:
    """The resolved config as plain JSON-compatible data."""
    return cfg.model_dump(mode="json")


def config_sha256(cfg: RunConfig) -> str:
    """sha256 of the canonical JSON of the resolved config."""
    canonical = json.dumps(config_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def dump_config(cfg: RunConfig) -> str:
    """The resolved config as YAML text (loads back to the same config and sha256)."""
    return yaml.safe_dump(config_dict(cfg), sort_keys=False)


def write_resolved_config(cfg: RunConfig, run_dir: str | Path) -> Path:
    """Write ``config.resolved.yaml`` and ``config.sha256`` into the run directory."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        target = run_dir / "config.resolved.yaml"
        _write_text_atomically(target, dump_config(cfg))
        _write_text_atomically(run_dir / "config.sha256", config_sha256(cfg) + "\n")
    except OSError as err:
        raise ConfigError(f"cannot write the resolved config into {run_dir} ({err}); set output.root to a writable directory") from None
    return target


def _write_text_atomically(path: Path, text: str) -> None:
    # a unique temporary name: two runs of the same run_name must not write one temp file
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text)
    os.replace(tmp, path)
