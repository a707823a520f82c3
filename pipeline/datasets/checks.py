"""The checks of a run config that need the data, grid and backend layers: :func:`check_config`.

:mod:`pipeline.config` validates types and keys (pydantic) but sits below the layers that know
which regions, years, grids and backends exist, so ``terrascale config`` accepted values that a
later stage rejects, after minutes of work. :func:`check_config` runs those stages' own checks
on the resolved config, cheaply: grids are sized from their specs without being built, the
backend is probed, a crosswalk file is read.
"""

from __future__ import annotations

from pipeline.errors import TerrascaleError

#: Bytes per target cell of the smallest aggregation (one field, mean): the limit a target grid must fit.
_TARGET_BYTES_PER_CELL = 120


def _problems(cfg) -> list[str]:
    from pipeline.aggregate import read_crosswalk
    from pipeline.backend import probe_gpu, resolve_backend
    from pipeline.datasets.demo import check_seed, demo_parameters
    from pipeline.datasets.regions import parse_years, resolve_region
    from pipeline.datasets.synthetic import check_scenarios
    from pipeline.grids import check_grid_memory, grid_shape

    out: list[str] = []

    def run(key: str, check) -> bool:
        try:
            check()
        except TerrascaleError as err:
            msg = str(err)
            out.append(msg if msg.startswith((f"{key}:", f"{key} ")) else f"{key}: {msg}")
            return False
        return True

    data = cfg.data
    ok = run("data.region", lambda: resolve_region(data.region))
    ok &= run("seed", lambda: check_seed(cfg.seed, what="seed"))
    if data.source == "demo":
        # the generator's own checks (what `data demo` runs): years 1950..2100, scenarios, then all together
        ok &= run("data.years", lambda: parse_years(tuple(data.years)))
        ok &= run("data.scenarios", lambda: check_scenarios(list(data.scenarios)))
        if ok:
            run("data", lambda: demo_parameters(region=data.region, years=tuple(data.years),
                                                scenarios=list(data.scenarios), seed=cfg.seed))
    elif data.root is not None and not data.root.is_dir():
        out.append(f"data.root: {data.root} is not a directory; point it at the directory with the input stores")
    for key, spec in (("grids.fine", cfg.grids.fine), ("grids.coarse", cfg.grids.coarse)):
        run(key, lambda spec=spec: grid_shape(spec))
    for i, spec in enumerate(cfg.grids.targets):
        run(f"grids.targets.{i}", lambda spec=spec: check_grid_memory(spec, _TARGET_BYTES_PER_CELL,
                                                                      f"aggregating onto {spec}"))
    run("backend", lambda: resolve_backend(cfg.backend))
    if cfg.aggregation.engine == "cupy" and not probe_gpu().usable:
        out.append(f"aggregation.engine: 'cupy' needs a CUDA GPU, but {probe_gpu().reason}; use auto, numba or numpy")
    if cfg.aggregation.pft_crosswalk is not None:
        run("aggregation.pft_crosswalk", lambda: read_crosswalk(cfg.aggregation.pft_crosswalk))
    return out


def check_config(cfg, *, source: str | None = None) -> None:
    """Run the checks of the later stages on a resolved run config, all at once.

    * ``data``: for ``source: demo`` the demo generator's checks (region name or box, years inside
      1950-2100, scenario names, seed); for ``source: stores`` the region and ``root``;
    * ``grids``: every spec of ``fine``, ``coarse`` and ``targets`` parsed and sized without
      building the grid; a target whose accumulators cannot fit in memory is refused;
    * ``backend``: resolved (``gpu`` without a usable GPU is an error); ``aggregation.engine: cupy``
      likewise; ``aggregation.pft_crosswalk``: read and checked.

    Parameters
    ----------
    cfg : pipeline.config.RunConfig
        A resolved config (:func:`pipeline.config.load_config`).
    source : str, optional
        Where it came from, for the message (the YAML file).

    Raises
    ------
    ConfigError
        ``invalid config SOURCE: KEY: problem; KEY: problem ...``, every problem found.
    """
    from pipeline.errors import ConfigError

    problems = _problems(cfg)
    if problems:
        raise ConfigError(f"invalid config{f' {source}' if source else ''}: " + "; ".join(problems))
