"""LAI generation streams: memory stays bounded by the block size, not by the region x years."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "lai_generation.py"


@pytest.mark.slow
def test_lai_generation_streams_with_bounded_memory(tmp_path):
    # Europe, 6 years: 77 M LAI values, 0.6 GB as float32 truth + observed copy, in 48 blocks.
    # Holding them would put the peak well above 1 GB (0.35 GB of static inputs and libraries
    # come on top); streaming keeps it near the static footprint plus a few blocks.
    res = subprocess.run([sys.executable, str(BENCH), "--region", "europe", "--years", "2015:2020",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    peak = float(re.search(r"peak RSS ([0-9.]+) GB", res.stdout.splitlines()[-1]).group(1))
    assert peak < 1.0, res.stdout
    assert (tmp_path / "lai.zarr").is_dir()
