"""The semi-synthetic generator: determinism, scenario divergence, physical sanity, locality."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pipeline.datasets import (
    generate_climate,
    generate_lai,
    generate_lulc,
    global_warming,
    lulc_fractions_2019,
    static_fields,
)
from pipeline.datasets.synthetic import SCENARIOS, tile_noise
from pipeline.datasets.window import GridWindow
from pipeline.errors import ConfigError

BOX = "40,42,-6,-3"  # central Spain, 2° x 3°
YEARS = (2019, 2022)  # history and future, satellite era included


@pytest.fixture(scope="module")
def static():
    return static_fields(BOX)


@pytest.fixture(scope="module")
def lai(static):
    return generate_lai(static, YEARS, ("ssp126", "ssp585"), seed=3).compute()


def test_static_fields(static):
    assert set(static.data_vars) == {"land_fraction", "koppen", "distance_to_coast", "igbp"}
    assert static["igbp"].dtype == np.uint8 and static["koppen"].dtype == np.uint8
    assert static["land_fraction"].dtype == np.float32 and float(static["land_fraction"].min()) == 1.0
    # Madrid lies ~300 km from the nearest sea (Valencia coast / Atlantic are farther)
    d = float(static["distance_to_coast"].sel(lat=40.42, lon=-3.7, method="nearest"))
    assert 250 < d < 340, d
    assert "lat_bnds" in static and "lon_bnds" in static


def test_distance_to_coast_is_zero_at_sea_and_grows_inland():
    st = static_fields("43,44,-10,-8")  # Galician coast
    d = st["distance_to_coast"].values
    sea = st["land_fraction"].values < 0.5
    assert (d[sea] == 0).all() and (d[~sea] > 0).all() and d.max() < 120


def test_same_seed_same_output_and_different_seed_differs(static, lai):
    again = generate_lai(static, YEARS, ("ssp126", "ssp585"), seed=3).compute()
    xr.testing.assert_identical(lai, again)
    other = generate_lai(static, YEARS, ("ssp126", "ssp585"), seed=4)["lai"].isel(time=slice(0, 12)).compute()
    assert not np.allclose(other.values, lai["lai"].isel(time=slice(0, 12)).values, equal_nan=True)
    c1 = generate_climate(static, YEARS, seed=3)
    xr.testing.assert_identical(c1, generate_climate(static, YEARS, seed=3))
    assert not np.array_equal(c1["tas"].values, generate_climate(static, YEARS, seed=4)["tas"].values)


def test_scenarios_diverge_only_after_2020(static, lai):
    clim = generate_climate(static, YEARS, ("ssp126", "ssp585"), seed=3)
    for ds, names in ((clim, ["tas", "pr", "rsds"]), (lai, ["lai"])):
        for v in names:
            hist = ds[v].sel(time=slice("2019", "2020"))
            fut = ds[v].sel(time=slice("2021", "2022"))
            np.testing.assert_array_equal(hist.sel(scenario="ssp126").values, hist.sel(scenario="ssp585").values)
            a, b = fut.sel(scenario="ssp126").values, fut.sel(scenario="ssp585").values
            ok = np.isfinite(a)
            assert (a[ok] != b[ok]).mean() > 0.9, v  # every future month differs
    lu = generate_lulc(lulc_fractions_2019(BOX, 0.25), (2015, 2030), ("ssp126", "ssp585"), seed=3)
    f = lu["lulc_fraction"]
    np.testing.assert_array_equal(f.sel(scenario="ssp126", time=slice("2015", "2020")).values,
                                  f.sel(scenario="ssp585", time=slice("2015", "2020")).values)
    assert not np.allclose(f.sel(scenario="ssp126", time="2030").values, f.sel(scenario="ssp585", time="2030").values)


def test_years_do_not_depend_on_the_requested_range(static):
    """A year's fields are the same whether asked alone or inside a longer range (seeded per year)."""
    long = generate_climate(static, (2015, 2022), ("ssp585",), seed=1)
    short = generate_climate(static, (2021, 2021), ("ssp585",), seed=1)
    xr.testing.assert_equal(long.sel(time="2021"), short)
    lai_long = generate_lai(static, (2019, 2021), ("ssp585",), seed=1)["lai"].sel(time="2021").compute()
    lai_short = generate_lai(static, (2021, 2021), ("ssp585",), seed=1)["lai"].compute()
    np.testing.assert_array_equal(lai_long.values, lai_short.values)


def test_lai_does_not_depend_on_region_or_chunks(static, lai):
    """Noise is drawn on fixed global tiles: a sub-region and other chunking give the same LAI."""
    sub = generate_lai(static_fields("40,41,-5,-3"), YEARS, ("ssp126", "ssp585"), seed=3).compute()
    ref = lai["lai"].sel(lat=slice(40, 41), lon=slice(-5, -3))
    np.testing.assert_array_equal(sub["lai"].values, ref.values)
    rechunked = generate_lai(static, YEARS, ("ssp126", "ssp585"), seed=3, chunks=(17, 29))
    assert rechunked["lai"].data.numblocks[2:] == (3, 3)
    np.testing.assert_array_equal(rechunked["lai"].values, lai["lai"].values)


def test_lai_physics_and_observation_gaps(static, lai):
    t = lai["lai"]
    assert t.attrs["synthetic"] == "yes" and t.attrs["units"] == "m2 m-2"
    water = static["igbp"].values == 0
    assert np.isnan(t.values[..., water]).all() and not np.isnan(t.values[..., ~water]).any()
    assert float(t.min()) >= 0 and float(t.max()) <= 1.15 * 6.0
    # Mediterranean regime: winter-spring greener than late summer for grass and crops
    grass = static["igbp"].values == 10
    monthly = t.sel(scenario="ssp126").values[:, grass].mean(axis=1).reshape(-1, 12).mean(axis=0)
    assert monthly[[0, 1, 2, 3]].mean() > monthly[[6, 7, 8]].mean() + 0.2
    o = lai["lai_obs"]
    assert o.dims == ("time", "lat", "lon")
    assert np.isnan(o.sel(time=slice("2021", "2022")).values).all()  # no satellite after 2020
    sat = o.sel(time=slice("2019", "2020")).values[:, ~water]
    gaps = np.isnan(sat).mean()
    assert 0.1 < gaps < 0.4, gaps
    truth = t.sel(scenario="ssp126", time=slice("2019", "2020")).values[:, ~water]
    ok = ~np.isnan(sat)
    assert np.corrcoef(sat[ok], truth[ok])[0, 1] > 0.8


def test_climate_is_plausible_and_warms_by_scenario(static):
    clim = generate_climate(static, (2011, 2100), ("ssp126", "ssp585"), seed=0)
    assert clim["tas"].attrs["units"] == "K" and clim["pr"].attrs["units"] == "kg m-2 s-1"
    tas = clim["tas"].mean(("lat", "lon"))
    jan, jul = tas.sel(time=tas["time.month"] == 1), tas.sel(time=tas["time.month"] == 7)
    assert (jul.values - jan.values).mean() > 8  # continental summer-winter contrast
    assert 280 < float(tas.sel(time=slice("2011", "2020")).mean()) < 292
    end = tas.sel(time=slice("2081", "2100")).mean("time")
    start = tas.sel(time=slice("2011", "2020")).mean("time")
    warming = (end - start).values
    # local warming = global x (1 + sin²φ)(1 + 0.3 L) ≈ 1.9 x global here, plus 20-year noise
    assert 0.3 < warming[0] < 2.0 and 4.0 < warming[1] < 8.0 and warming[1] > warming[0] + 3
    pr = clim["pr"] * 86400
    assert 0.3 < float(pr.mean()) < 4.0 and float(clim["pr"].min()) > 0
    assert float(clim["rsds"].min()) > 0 and float(clim["rsds"].max()) < 450
    assert global_warming(np.array([2100.9]), "ssp585")[0] > global_warming(np.array([2100.9]), "ssp126")[0]
    assert global_warming(np.array([1950.0]), "ssp126")[0] == 0


def test_land_use_trajectories():
    lu19 = lulc_fractions_2019("iberia", 0.25)
    lu = generate_lulc(lu19, (1950, 2100), tuple(SCENARIOS), seed=0)
    f = lu["lulc_fraction"]
    np.testing.assert_allclose(f.sum("group").values, 1.0, atol=1e-5)
    assert float(f.min()) >= 0
    f2019 = f.sel(time="2019-01-01").values
    np.testing.assert_allclose(f2019, np.broadcast_to(lu19["lulc_fraction_2019"].values, f2019.shape), atol=1e-6)
    area = lu19["valid_area"]
    crop = (f.sel(group="cropland") * area).sum(("lat", "lon"))
    c = crop.sel(scenario="ssp126")
    assert float(c.sel(time="1980-01-01")) > float(c.sel(time="1950-01-01")) > float(c.sel(time="2019-01-01"))  # expansion, then abandonment
    assert float(crop.sel(scenario="ssp585", time="2100-01-01")) > float(c.sel(time="2020-01-01")) > float(c.sel(time="2100-01-01"))
    urban = (f.sel(group="urban") * area).sum(("lat", "lon")).sel(scenario="ssp585")
    assert np.all(np.diff(urban.values) >= 0)
    fixed = f.sel(group=["water_snow_wetland", "bare"])
    np.testing.assert_allclose(fixed.values, np.broadcast_to(fixed.isel(time=0).values[:, None], fixed.shape), atol=1e-6)


def test_tile_noise_is_window_independent():
    big = GridWindow.from_bounds(30, 50, -20, 10, 0.05)
    small = GridWindow.from_bounds(38, 41, -3, 2, 0.05)
    a = tile_noise(big, 5, (1, 2000, 3, 0))
    b = tile_noise(small, 5, (1, 2000, 3, 0))
    np.testing.assert_array_equal(a[(38 - 30) * 20 : (41 - 30) * 20, (-3 + 20) * 20 : (2 + 20) * 20], b)
    assert abs(a.mean()) < 0.01 and abs(a.std() - 1) < 0.01


@pytest.mark.parametrize("kwargs, match", [
    (dict(years=(1900, 1960)), "outside the available periods"),
    (dict(years=(2050, 2101)), "outside the available periods"),
    (dict(scenarios=("ssp999",)), "known: ssp126, ssp245, ssp370, ssp585"),
])
def test_generator_rejects_bad_input(static, kwargs, match):
    args = dict(years=YEARS, scenarios=("ssp126",)) | kwargs
    with pytest.raises(ConfigError, match=match):
        generate_climate(static, **args)
    with pytest.raises(ConfigError, match=match):
        generate_lai(static, **args)


def test_climate_grid_must_nest():
    st = static_fields("40.5,41.5,-5,-3")  # half-degree edges: not on the 1° grid
    with pytest.raises(ConfigError, match="nest"):
        generate_climate(st, YEARS)
