"""The one spherical geometry: Earth radius, exact box areas, edges from centres."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.datasets.window import GridWindow
from pipeline.errors import InputDataError
from pipeline.features.splits import cell_areas_km2
from pipeline.grids import parse_grid
from pipeline.io import temporary_sibling
from pipeline.sphere import EARTH_RADIUS, box_areas, edges_from_centres, sin_lat_diff


def test_global_boxes_sum_to_the_sphere():
    lat = np.linspace(-90, 90, 181)
    a = box_areas(lat[:-1, None], lat[1:, None], np.arange(0, 360)[None, :], np.arange(1, 361)[None, :])
    assert a.sum() == pytest.approx(4 * np.pi * EARTH_RADIUS**2, rel=1e-12)
    assert box_areas(0.0, 90.0, 0.0, 360.0, radius=1.0) == pytest.approx(2 * np.pi, rel=1e-14)


@given(st.floats(-89.9, 89.9), st.floats(1e-7, 1.0))
def test_thin_bands_keep_full_precision(lat0, width):
    # the cancellation-free form agrees with the naive difference where that is accurate, and
    # stays positive for bands far thinner than the naive form can resolve
    lat1 = min(lat0 + width, 90.0)
    d = sin_lat_diff(lat0, lat1)
    assert d > 0
    naive = np.sin(np.radians(lat1)) - np.sin(np.radians(lat0))
    assert d == pytest.approx(naive, rel=1e-6, abs=1e-15)


def test_every_caller_uses_the_same_areas():
    # ESM grids, the sample data's windows and the split summaries share one formula and radius
    grid = parse_grid("1deg").cell_areas()
    win = GridWindow.from_bounds(-90, 90, -180, 180, 1.0).cell_area_m2()
    split = cell_areas_km2(np.arange(-89.5, 90), np.arange(-179.5, 180)) * 1e6
    np.testing.assert_allclose(win, grid, rtol=1e-13)
    np.testing.assert_allclose(split, grid, rtol=1e-12)


def test_edges_from_centres_single_cell_rule_is_the_callers_choice():
    np.testing.assert_allclose(edges_from_centres([10.0], single_cell_width=1.0), [9.5, 10.5])
    np.testing.assert_allclose(edges_from_centres([89.8, 89.9], clip=(-90, 90)), [89.75, 89.85, 89.95])
    with pytest.raises(InputDataError, match="no inferable bounds"):
        edges_from_centres([10.0])


def test_temporary_siblings_are_hidden_unique_and_carry_the_pid(tmp_path):
    import os

    a, b = temporary_sibling(tmp_path / "out.nc"), temporary_sibling(tmp_path / "out.nc")
    assert a != b and a.parent == tmp_path
    assert a.name.startswith(f".out.nc.tmp-{os.getpid()}-")


def test_centre_grid_areas_tile_the_sphere():
    import numpy as np

    from pipeline.sphere import EARTH_RADIUS, box_areas, centre_grid_areas

    lat = np.arange(-89.5, 90.0, 1.0)
    lon = np.arange(-179.5, 180.0, 1.0)
    areas = centre_grid_areas(lat, lon)
    assert areas.shape == (180, 360)
    np.testing.assert_allclose(areas.sum(), 4 * np.pi * EARTH_RADIUS**2, rtol=1e-12)
    np.testing.assert_allclose(areas[10, 7], box_areas(-80.0, -79.0, -173.0, -172.0), rtol=1e-12)
