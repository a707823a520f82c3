"""Figures on awkward inputs: one model, odd names, no coastline, all-NaN pairs, points grids."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from pipeline.report import ConfusionMatrix, FieldMaps, GridMap, ObsPred
from pipeline.report import figures as figs
from tests.helpers.report_data import LAT, LON, NX, NY

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ODD = "$x_1$ <b>"  # mathtext and markup characters in a model name
HIDDEN = "_private"  # matplotlib hides legend entries starting with "_"


def check(fig: figs.RenderedFigure, *words: str) -> None:
    png, caption = fig
    assert png.startswith(PNG_MAGIC) and len(png) > 2000
    assert b"matplotlib.org" not in png
    assert caption.endswith(".") and len(caption) > 40
    for w in words:
        assert w in caption


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    """The figures never go through pyplot: nothing left open after any of them."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


def test_continuous_map_one_model_all_land_and_nan():
    truth = np.linspace(0, 5, NY * NX).reshape(NY, NX)
    truth[:3] = np.nan
    maps = FieldMaps(kind="continuous", variable="LAI", units="m² m⁻²", when="2019", lat=LAT, lon=LON,
                     land_mask=np.ones((NY, NX), bool), truth=truth, predictions={ODD: truth + 0.3})
    check(figs.field_maps(maps), ODD, "LAI")
    check(figs.error_maps(maps), ODD, "symmetric about 0 (±0.3,")


def test_categorical_maps_with_no_data_and_explicit_errors():
    truth = np.full((NY, NX), 255, np.uint8)
    truth[5:, 10:] = 12
    pred = np.where(truth == 255, 255, 10).astype(np.uint8)
    errors = {HIDDEN: np.where(truth == 255, np.nan, 1.0)}
    maps = FieldMaps(kind="categorical", variable="IGBP class", units="", when="2019", lat=LAT, lon=LON,
                     land_mask=truth != 255, truth=truth, predictions={HIDDEN: pred}, errors=errors)
    check(figs.field_maps(maps), HIDDEN, "IGBP colours")
    check(figs.error_maps(maps), HIDDEN)
    assert np.array_equal(maps.error(HIDDEN), errors[HIDDEN], equal_nan=True)


def test_hexbin_with_a_model_without_pairs():
    obs = np.linspace(0, 6, 500)
    pairs = {"good": ObsPred(obs, obs + 0.1), "empty": ObsPred(obs, np.full(obs.size, np.nan))}
    check(figs.obs_pred_hexbin(pairs), "good and empty", "1:1")


def test_class_figures_on_a_subset_of_labels():
    labels = np.array([1, 4, 12, 16])
    cm = ConfusionMatrix(labels=labels, matrix=np.array([[5, 1, 0, 0], [0, 3, 1, 0], [1, 0, 9, 0], [0, 0, 0, 0]]))
    check(figs.confusion_matrices({ODD: cm}), ODD, "normalised by row")
    f1 = pd.DataFrame(dict(model=[ODD] * 4, class_value=labels, f1=[0.9, 0.7, 0.8, np.nan]))
    check(figs.class_f1_bars(f1), ODD)


def test_series_cycles_and_curves():
    years = np.arange(2015, 2031)
    series = pd.DataFrame(dict(time=pd.to_datetime([f"{y}-07-01" for y in years]), scenario="ssp245", variable="LAI",
                               value=np.linspace(1.5, 1.9, years.size)))
    check(figs.scenario_series(series, model=ODD), "ssp245", ODD)
    cycles = pd.DataFrame(dict(zone="C temperate", month=np.arange(1, 13), model="observed",
                               value=np.sin(np.arange(12)) + 2))
    check(figs.seasonal_cycles(cycles), "Köppen")
    curves = pd.DataFrame(dict(model=HIDDEN, epoch=np.arange(1, 6), train_loss=[10, 3, 1, 0.5, 0.3],
                               valid_loss=[np.nan, 4, 1.5, 0.9, 0.8]))
    check(figs.learning_curves(curves, loss_label="MSE"), HIDDEN, "MSE")


def test_large_maps_are_thinned():
    lat = np.linspace(44, 36, 700)
    lon = np.linspace(-10, 2, 900)
    truth = np.add.outer(np.arange(700), np.arange(900)) % 17
    maps = FieldMaps(kind="categorical", variable="IGBP class", units="", when="2019", lat=lat, lon=lon,
                     land_mask=np.ones((700, 900), bool), truth=truth, predictions={"m": truth})
    check(figs.field_maps(maps), "One cell in 2 along each axis is drawn.")


def test_series_in_a_model_calendar():
    cftime = pytest.importorskip("cftime")
    times = [cftime.DatetimeNoLeap(y, 7, 1) for y in range(2015, 2101, 5)]
    series = pd.DataFrame(dict(time=times, scenario="ssp585", variable="cropland fraction",
                               value=np.linspace(0.3, 0.2, len(times))))
    check(figs.scenario_series(series), "ssp585")


def test_grid_maps_on_points_only():
    lat = np.repeat([40.0, 39.0], 4)
    lon = np.tile([-6.0, -5.0, -4.0, -3.0], 2)
    values = np.array([0.1, 0.5, np.nan, 0.9, 0.2, 0.3, 0.4, 1.0])
    check(figs.grid_maps([GridMap(grid="N32", label="crop fraction", kind="fraction", units="1", lat=lat, lon=lon,
                                  values=values)]), "N32")
    with pytest.raises(ValueError, match="one length"):
        GridMap(grid="N32", label="x", kind="lai", units="", lat=lat, lon=lon[:-1], values=values)


def test_model_colours_are_stable():
    a = figs.model_colours(["m1", "m2", "m3"])
    b = figs.model_colours(["m1", "m2", "m3", "m4"])
    assert {m: b[m] for m in a} == a and len(set(b.values())) == 4
