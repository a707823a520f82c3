"""Absurd sizes are refused up front, with the estimate and the limit, instead of a MemoryError after a long wait.

One mechanism (:mod:`pipeline.grids.limits`, :func:`pipeline.grids.grid_shape`), checked where
work allocates per cell, class or link: building a grid, writing a SCRIP grid file, computing and
writing weights, aggregating (accumulators, the class lookup table), and the CLI before any grid
is built (a Gaussian F20000 costs ~50 s of CPU before its first array).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from pipeline.aggregate import class_fractions, conservative_mean
from pipeline.cli import app
from pipeline.errors import ConfigError
from pipeline.grids import grid_shape, memory_limit, parse_grid, write_scrip
from pipeline.grids.limits import MEMORY_ENV, check_memory, parse_size
from pipeline.weights import compute_weights, write_weights

runner = CliRunner()


@pytest.mark.parametrize("spec", ["1deg", "0.5deg:-10,35,5,45", "1x0.5deg", "r360x180", "F16", "O24", "N32", "tl63",
                                  "tl95", "10deg:0,-90,360,90"])
def test_grid_shape_matches_the_built_grid(spec):
    g = parse_grid(spec)
    assert grid_shape(spec) == (g.nrows, g.size)


def test_grid_shape_of_a_scrip_file(tmp_path):
    path = write_scrip(parse_grid("N32"), tmp_path / "g.nc")
    assert grid_shape(f"file:{path}")[1] == parse_grid("N32").size
    assert grid_shape(f"file:{write_scrip(parse_grid('5deg'), tmp_path / 'r.nc')}") == (36, 36 * 72)


@pytest.mark.parametrize("spec, cells", [("F20000", 3_200_000_000), ("0.001deg", 64_800_000_000),
                                         ("O100000", 40_003_600_000), ("r1000000x500000", 500_000_000_000)])
def test_absurd_grids_are_refused_at_once(spec, cells):
    t0 = time.perf_counter()
    assert grid_shape(spec)[1] == cells
    with pytest.raises(ConfigError) as err:
        parse_grid(spec)
    msg = str(err.value)
    assert f"grid {spec} ({cells:,} cells) needs about" in msg and "more than" in msg and "GiB" in msg
    assert time.perf_counter() - t0 < 2


def test_bad_specs_are_config_errors_not_crashes():
    for spec, match in (("1e-320deg", "unknown grid spec"), ("0.7deg", "not a whole number"), ("N33", "N33"),
                        ("0.0000000000001deg", "needs about")):
        with pytest.raises(ConfigError, match=match):
            grid_shape(spec) if match != "needs about" else parse_grid(spec)


def test_memory_limit_sources(monkeypatch):
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    limit, source = memory_limit()
    assert limit > 0 and ("memory" in source or "cap" in source)
    monkeypatch.setenv(MEMORY_ENV, "512MiB")
    assert memory_limit() == (512 * 2**20, f"the limit {MEMORY_ENV}=512MiB")
    for text, n in (("64GB", 64 * 10**9), ("1000", 1000), ("1.5 GiB", int(1.5 * 2**30))):
        assert parse_size(text) == n
    for bad in ("lots", "-1GB", "5 parsecs", "0"):
        with pytest.raises(ConfigError, match=MEMORY_ENV):
            parse_size(bad)
    monkeypatch.setenv(MEMORY_ENV, "lots")
    with pytest.raises(ConfigError, match="is not a memory size"):
        parse_grid("1deg")
    monkeypatch.setenv(MEMORY_ENV, "1MB")
    with pytest.raises(ConfigError, match=r"sorting \(1,000 cells\) needs about 1.9 MiB of memory, more than the limit "
                                          r"TERRASCALE_MEMORY_LIMIT=1MB, 976.6 KiB; use less"):
        check_memory(2e6, "sorting (1,000 cells)", "use less")


def test_limits_apply_to_every_allocation(monkeypatch, tmp_path):
    """With a small limit, each stage refuses what it would allocate beyond it; below, it works."""
    monkeypatch.setenv(MEMORY_ENV, "4MB")
    g = parse_grid("1deg")  # 64,800 cells x 32 B: fits
    with pytest.raises(ConfigError, match=r"writing grid 1deg \(64,800 cells\)"):
        write_scrip(g, tmp_path / "g.nc")
    with pytest.raises(ConfigError, match=r"writing weights 1deg -> 2deg \(64,800 links"):
        write_weights(compute_weights(g, parse_grid("2deg")), tmp_path / "w.nc")
    with pytest.raises(ConfigError, match="links"):  # general sparse weights: reduced -> reduced
        compute_weights(parse_grid("O96"), parse_grid("N80"))
    lat, lon = np.arange(-89.5, 90, 1.0), np.arange(-179.5, 180, 1.0)
    da = xr.DataArray(np.ones((24, 180, 360), np.float32), dims=("time", "lat", "lon"), name="x",
                      coords={"lat": lat, "lon": lon})
    with pytest.raises(ConfigError, match=r"aggregating onto 1deg \(24 fields on 64,800 target cells\).*--select"):
        conservative_mean(da, "1deg")
    assert conservative_mean(da.isel(time=0), "10deg").shape == (18, 36)
    codes = xr.DataArray(np.ones((180, 360), np.int64), dims=("lat", "lon"), name="c", coords={"lat": lat, "lon": lon})
    with pytest.raises(ConfigError, match=r"class lookup table of 'c' \(class codes up to 100,000,000,000\)"):
        class_fractions(codes, "10deg", classes=[1, 10**11])
    # a code the data's dtype cannot hold never occurs: no table for it, its fraction is 0
    frac = class_fractions(codes.astype(np.uint8), "10deg", classes=[1, 10**11])
    assert np.allclose(frac.sel({"class": 1}), 1) and np.allclose(frac.sel({"class": 10**11}), 0)


@pytest.mark.parametrize("args, expected", [
    (["grids", "--write", "F20000", "-o", "{tmp}/g.nc"], "writing grid F20000 (3,200,000,000 cells) needs about"),
    (["weights", "0.01deg", "F5000", "-o", "{tmp}/w.nc"], "weights 0.01deg -> F5000 (648,000,000 + 200,000,000 cells)"),
    (["aggregate", "{src}", "--var", "x", "--grid", "0.001deg", "-o", "{tmp}/o.nc"],
     "aggregating x onto 0.001deg (64,800,000,000 cells) needs about"),
    (["aggregate", "{src}", "--var", "x", "--grid", "O100000", "-o", "{tmp}/o.nc"], "(40,003,600,000 cells)"),
])
def test_cli_refuses_before_building_the_grid(tmp_path, args, expected):
    src = tmp_path / "in.nc"
    xr.Dataset({"x": (("lat", "lon"), np.ones((18, 36)))},
               coords={"lat": np.arange(-85.0, 90, 10), "lon": np.arange(-175.0, 180, 10)}).to_netcdf(src)
    t0 = time.perf_counter()
    res = runner.invoke(app, [a.format(tmp=tmp_path, src=src) for a in args])
    assert res.exit_code == 2, (res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    text = " ".join(res.output.split())
    assert expected in text and "more than" in text
    assert time.perf_counter() - t0 < 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nc"]
