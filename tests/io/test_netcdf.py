"""Grid and weights files that are not NetCDF give one clear message."""

from __future__ import annotations

import pytest

from pipeline.errors import InputDataError
from pipeline.grids import parse_grid, read_scrip_grid
from pipeline.weights import read_weights


@pytest.mark.parametrize("reader", [read_weights, read_scrip_grid, lambda p: parse_grid(f"file:{p}")])
def test_non_netcdf_grid_or_weights_file(reader, tmp_path):
    text = tmp_path / "README.md"
    text.write_text("# not a NetCDF file\n")
    with pytest.raises(InputDataError, match="neither NetCDF nor Zarr") as err:
        reader(text)
    msg = str(err.value)
    assert "README.md" in msg and "backends" not in msg and len(msg) < 300
    with pytest.raises(InputDataError, match="does not exist"):
        reader(tmp_path / "nope.nc")
    store = tmp_path / "w.zarr"
    store.mkdir()
    (store / ".zgroup").write_text('{"zarr_format": 2}')
    with pytest.raises(InputDataError, match="NetCDF"):
        reader(store)
