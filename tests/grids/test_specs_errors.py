"""Grid spec strings with zero or negative sizes are configuration errors."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.grids import parse_grid


@pytest.mark.parametrize("spec", ["r0x0", "r360x0", "r0x180", "0deg", "0.0deg", "0x1deg", "1x0deg",
                                  "0deg:-10,35,5,45", "F0", "O0", "-1deg", "r-1x10"])
def test_zero_or_negative_grid_sizes_are_config_errors(spec):
    with pytest.raises(ConfigError, match=repr(spec).replace(".", r"\.")):
        parse_grid(spec)
