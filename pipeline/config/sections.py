"""Typed pydantic v2 sections of the run config (``extra="forbid"`` everywhere).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.models import ModelEntry
from pipeline.config.section import Section


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




class TrainingConfig(Section):
    """How the models are trained (see README, "training")."""

    max_epochs: int = Field(20, ge=1)
    batch_size: int = Field(4096, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    early_stopping_patience: int = Field(5, ge=1)
    checkpoint_every: int = Field(1, ge=1, description="epochs between checkpoints")
    resume: bool = True
    sample_rows: int | None = Field(
        500_000, ge=1,
        description="training rows drawn (on the workers) for the in-memory estimators; null: the whole table. "
        "A sample larger than the table uses the table (and says so)",
    )
    validation_fraction: float = Field(
        0.1, ge=0, lt=1, description="share of the training blocks held out for early stopping (never test blocks)"
    )
    mixed_precision: bool = Field(True, description="bfloat16/float16 autocast for the deep models on a GPU")


class SlurmConfig(Section):
    """dask-jobqueue SLURMCluster settings (used when cluster.kind is 'slurm')."""

    queue: str | None = None
    account: str | None = None
    walltime: str = "01:00:00"
    cores: int = Field(8, ge=1)
    memory: str = "32GB"
    jobs: int = Field(1, ge=1)
    job_extra_directives: list[str] = Field(default_factory=list)
    gpus_per_job: int | None = Field(
        None, ge=1, description="GPUs per worker job (--gres=gpu:N), one dask-cuda worker per GPU; required with the "
        "GPU backend")
    python: str | None = Field(
        None, description="command that starts Python in a worker job, e.g. 'apptainer exec --nv /shared/terrascale.sif "
        "python'; default: this Python, or the same Apptainer image when the run is inside one")


class ClusterConfig(Section):
    """The dask cluster a run starts (or connects to)."""

    kind: Literal["auto", "local", "cuda", "slurm", "address"] = "auto"
    n_workers: int | None = Field(None, ge=1, description="default: 1 per GPU on cuda, else min(2, cores)")
    threads_per_worker: int | None = Field(None, ge=1)
    memory_limit: str = Field("auto", description="per worker, e.g. '4GB' or 'auto'")
    address: str | None = Field(None, description="scheduler address for kind 'address', e.g. tcp://host:8786")
    scheduler_file: Path | None = Field(
        None, description="kind 'address': JSON file written by 'dask scheduler --scheduler-file' on a shared path, "
        "read instead of address (docker/slurm/multi-node.sbatch)")
    dashboard: bool = False
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)

    @model_validator(mode="after")
    def _check(self) -> "ClusterConfig":
        if self.kind == "address" and not (self.address or self.scheduler_file):
            raise ValueError("kind 'address' needs 'address' (e.g. tcp://scheduler:8786) or 'scheduler_file'")
        if self.address and self.scheduler_file:
            raise ValueError("give either 'address' or 'scheduler_file', not both")
        return self


class AggregationConfig(Section):
    """How fine predictions are aggregated onto the ESM grids."""

    engine: Literal["auto", "numpy", "numba", "cupy"] = "auto"
    pft_crosswalk: Path | None = Field(None, description="CSV class→PFT table; default: the shipped IGBP table")
    chunk_rows: int = Field(240, ge=1, description="source rows per streamed chunk")
    global_output: bool = Field(
        False, description="write every target grid whole; default: only the target cells that overlap the input"
    )
    compression_level: int = Field(4, ge=0, le=9, description="zlib level of the NetCDF outputs (0: uncompressed)")


class PredictConfig(Section):
    """Which model writes each task's products (fine predictions, ESM files, scenario series)."""

    models: dict[Literal["lulc", "lai"], str] = Field(
        default_factory=dict,
        description="task -> model name whose predictions become the products; default: the best non-baseline "
        "model on the validation blocks",
    )
    lulc_allocation: Literal["quota", "argmax"] = Field(
        "quota", description="hard LULC map: 'quota' keeps each coarse cell's group areas, 'argmax' takes the most "
        "probable class",
    )


class ReportConfig(Section):
    """The HTML report."""

    title: str = "terrascale run report"
    bootstrap_samples: int = Field(200, ge=0, description="block-bootstrap resamples of every interval and test")


class OutputConfig(Section):
    """Where a run writes and in which format."""

    root: Path = Path("runs")


class RunConfig(Section):
    """A whole terrascale run."""

    run_name: str = Field("run", pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    backend: Literal["auto", "cpu", "gpu"] = "auto"
    data: DataConfig = Field(default_factory=DataConfig)
    grids: GridsConfig = Field(default_factory=GridsConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    splits: SplitsConfig = Field(default_factory=SplitsConfig)
    tasks: list[Literal["lulc", "lai"]] = Field(
        default_factory=lambda: ["lulc", "lai"], min_length=1, description="tasks of the run, in order"
    )
    models: list[ModelEntry] = Field(default_factory=list, description="models of the comparison, typed by kind")
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    aggregation: AggregationConfig = Field(default_factory=AggregationConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @property
    def run_dir(self) -> Path:
        """Directory of this run's outputs: ``output.root / run_name``."""
        return self.output.root / self.run_name
