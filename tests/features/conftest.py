"""Fixtures of the features tests: tiny synthetic input stores (see tests/helpers/feature_stores.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.feature_stores import write_synthetic_stores


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A directory with tiny static/lulc/climate/lai stores in the demo layout."""
    root = tmp_path_factory.mktemp("stores")
    write_synthetic_stores(root)
    return root
