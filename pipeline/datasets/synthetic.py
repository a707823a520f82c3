r"""Semi-synthetic climate drivers, land-use trajectories and monthly LAI.

Everything here is *synthetic* (and labelled so, ``synthetic = "yes"``), but driven by the real
static maps of :mod:`pipeline.datasets.static` (GLOBE land fraction and distance to coast,
Köppen-Geiger zone, MODIS IGBP class), so the fields have realistic geography and the
relationships a downscaling model must learn. The generator is deterministic from ``seed``:
every random field is drawn from ``numpy.random.default_rng([seed, stream, year, month,
scenario_code, tile_i, tile_j])`` on fixed 10° tiles of the global grid, so a value does not
depend on the requested region, year range or dask chunking. ``scenario_code`` is 0 for years up
to 2020 and a hash of the scenario name afterwards: historical years are identical in every
scenario, and scenarios diverge from 2021 on.

Notation: φ latitude, ``t_m = (m + 0.5) / 12`` the time of month ``m = 0..11`` within its year,
``τ = year + t_m``, ``L`` land fraction, ``c = L · min(d_coast / 1000 km, 1)`` continentality,
``p_k`` the land-area fractions of Köppen classes A..E in a coarse cell, ``z`` a standard-normal
noise field (0.8 × a 10°-node field interpolated bilinearly + 0.6 × white noise).

Climate drivers (coarse grid, default 1°, monthly)
--------------------------------------------------
Global warming (K) relative to 1950, with ``x = (τ − 2021) / 80``::

    G(τ) = 1.1 ((τ − 1950) / 70)²                                    τ < 2021 (historical)
    G(τ) = G(2021) + D_s (1 − e^{−x/θ_s}) / (1 − e^{−1/θ_s})          τ ≥ 2021 (scenario s)

with (D_s, θ_s) = ssp126 (0.4, 0.25), ssp245 (1.3, 0.6), ssp370 (2.3, 2.0), ssp585 (3.2, 3.0).

Interannual anomalies: an AR(1) chain per cell and variable, started in 1949 whatever years are
asked for: ``a_1949 = z_1949``, ``a_y = 0.5 a_{y−1} + √(1 − 0.5²) z_y``; monthly weather
``e_{y,m} = z_{y,m}``.

Near-surface air temperature (K)::

    tas = 273.15 + T_zon(φ) + L Σ_k p_k δT_k + A sgn(φ) (−cos 2π(t_m − 0.04))
          + G(τ) (1 + sin²φ) (1 + 0.3 L) + σ_T (0.6 a_y + 0.8 e_{y,m})
    A   = 20 |sin φ| (0.35 + 0.65 c),   σ_T = 0.6 + 1.6 |sin φ| (0.5 + 0.5 c)

``T_zon`` interpolates a zonal-mean table (−45 °C at 90° S, 27 °C at the equator, 11 °C at
45° N, −20 °C at 90° N) and δT_k = (+1, +1.5, 0, −2, −8) K for A, B, C, D, E: the Köppen zone
stands in for altitude and aridity, which the generator has no map for.

Precipitation (mm/day, stored as kg m-2 s-1 = mm/day / 86400)::

    pr  = P_zon(φ) M (1 − 0.4 c) (1 + a_P σ_P cos 2π(t_m − t_peak)) max(0.2, 1 + k(φ) ΔT)
          · exp(0.45 (0.5 a_y + 0.866 e_{y,m}) − 0.45² / 2)
    M   = L Σ_k p_k m_k + (1 − L),  m_k = (1.5, 0.25, 1.0, 0.9, 0.5)
    a_P = 0.8 (1 − e^{−(φ/12)²}),   w(φ) = exp(−((|φ| − 37) / 8)²),   σ_P = 1 − 2 w(φ)(1 − c)
    k(φ) = 0.02 − 0.07 w(φ),        ΔT = G(τ)(1 + sin²φ)(1 + 0.3 L)

``t_peak`` is mid-July in the north, mid-January in the south; ``σ_P < 0`` turns the coastal
subtropics (e.g. Iberia) into winter-wet, Mediterranean regimes, and ``k < 0`` dries them as it
warms ("wet gets wetter, dry gets drier"). ``P_zon`` interpolates a zonal table (5.5 mm/day at
the equator, 1.4-1.6 in the subtropics, 2.6-2.8 at 45°).

Downward shortwave radiation at the surface (W m-2)::

    rsds = Q_TOA(φ, doy) (0.78 − 0.35 P / (P + 2 mm/day))

with ``Q_TOA`` the daily-mean top-of-atmosphere insolation (S0 = 1361 W m-2, declination
23.44° sin(2π(284 + doy)/365), eccentricity 1 + 0.033 cos(2π doy/365)) on mid-month day ``doy``;
wetter months are cloudier.

Land-use change (coarse LULC grid, default 0.25°, yearly)
---------------------------------------------------------
From the real 2019 group fractions ``F_g`` (cropland C, urban U, natural N = the forest, shrub,
savanna and grass groups; water/snow/wetland and bare stay fixed)::

    C(y) = clip(C_2019 (1 + β(y) ξ), 0, C_2019 + U_2019 + N_2019 − U(y))
    U(y) = min(U_2019 e^{0.015 (y − 2019)}, U_2019 + N_2019)                 y ≤ 2020
    U(y) = min(U(2020) e^{r_s (y − 2020)}, U_2019 + N_2019)                  y > 2020
    N_g(y) = N_g,2019 (1 − ΔM / N_2019),   ΔM = C + U − C_2019 − U_2019

(a cell without natural land gives a gain to grassland). ``β`` is +0.10 in 1950 rising to +0.25
in 1980 (expansion), back to 0 in 2019 (abandonment), then ``β(2020) + b_s (y − 2020) / 80``
with b_s = −0.30, −0.10, +0.15, +0.25 and r_s = 0.004, 0.008, 0.012, 0.015 for ssp126, ssp245,
ssp370, ssp585. ``ξ = clip(1 + 0.5 z, 0.2, 1.8)`` is a fixed per-cell intensity. The fractions
sum to 1 in every year and the 2019 slice equals the real map.

LAI (0.05° grid, monthly)
-------------------------
Coarse drivers are taken to each fine cell with a Köppen correction that keeps the coarse cell
mean: ``T = tas − 273.15 + δT_k(fine) − L Σ p_k δT_k``, ``P = pr · m_k(fine) / M``. Then::

    PET = 0.0135 max(T + 17.8, 0) · rsds · 0.0864 / 2.45                  (Hargreaves-type, mm/day)
    W   = (P_n + P_{n−1} + P_{n−2}) / (PET_n + PET_{n−1} + PET_{n−2} + 0.3)   (3-month water index)
    f_T = 1 / (1 + exp(−((T_n + T_{n−1})/2 − 5) / 2.5))                  (cold limitation)
    f_W = 1 − exp(−W / 0.4)                                               (water limitation)
    g   = f_T f_W,   g_eff = g (deciduous) or 0.5 + 0.5 g (evergreen)
    lai = clip(LAI_min + (LAI_max − LAI_min) g_eff + σ_L ε_n, 0, 1.15 LAI_max)
    σ_L = 0.05 + 0.08 (LAI_max − LAI_min),  ε_n = (η_n + 0.6 η_{n−1} + 0.36 η_{n−2}) / √1.4896

``LAI_min``/``LAI_max`` come per IGBP class from ``data/igbp_classes.csv``; water and no-data
cells are NaN. The land cover under the LAI is the 2019 map in every year (land-use change acts
on the coarse fractions only).

Observed LAI (satellite era 2000-2020 only): ``lai_obs = clip(lai + (0.1 + 0.1 lai) ζ, 0, 15)`` set to
NaN with probability ``0.1 + 0.5 P / (P + 4 mm/day)`` (clouds) or 0.9 where ``T < −2 °C``
(snow), with independent noise streams ζ and gap draws; ``lai`` stays the full truth.
"""

from __future__ import annotations

import math
import uuid
import zlib
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from pipeline.datasets.classes import LAI_OVERSHOOT, LAI_RANGE, ClassTable, load_class_table
from pipeline.datasets.fractions import coarsen_factor
from pipeline.datasets.loaders import FINE_RES
from pipeline.datasets.regions import (
    FIRST_YEAR,
    LAST_HISTORICAL_YEAR,
    LAST_YEAR,
    SATELLITE_ERA,
)
from pipeline.datasets.window import GridWindow
from pipeline.errors import ConfigError, InputDataError

SPINUP_YEAR = FIRST_YEAR - 1  # the AR(1) chain and the LAI lags start here
TILE_DEG = 10  # random fields are drawn per 10° tile of the global grid
SYNTHETIC_COMMENT = ("semi-synthetic field generated by pipeline.datasets.synthetic "
                     "(equations in that module's docstring), driven by real static maps")


@dataclass(frozen=True)
class Scenario:
    """Parameters of one future scenario (see the module docstring)."""

    name: str
    warming: float  # D_s: extra global warming 2021 → 2100 (K)
    shape: float  # θ_s: small = front-loaded, large = nearly linear
    crop_trend: float  # b_s: relative cropland change 2020 → 2100
    urban_rate: float  # r_s: urban growth rate (1/yr)
    description: str


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("ssp126", 0.4, 0.25, -0.30, 0.004, "strong mitigation: warming levels off, cropland abandoned"),
        Scenario("ssp245", 1.3, 0.6, -0.10, 0.008, "middle of the road"),
        Scenario("ssp370", 2.3, 2.0, 0.15, 0.012, "regional rivalry: cropland expands"),
        Scenario("ssp585", 3.2, 3.0, 0.25, 0.015, "fossil-fuelled development: strongest warming"),
    )
}

# zonal-mean tables (latitude nodes in degrees)
_LAT_NODES = np.array([-90, -75, -60, -45, -30, -15, 0, 15, 30, 45, 60, 75, 90], float)
_T_ZONAL_C = np.array([-45, -25, -5, 6, 17, 24, 27, 26, 20, 11, 1, -12, -20], float)
_P_ZONAL_MMD = np.array([0.3, 0.6, 2.5, 2.8, 1.4, 3.2, 5.5, 3.5, 1.6, 2.6, 2.2, 1.0, 0.5], float)
# Köppen main classes 0 (none), A, B, C, D, E
KOPPEN_DT = np.array([0.0, 1.0, 1.5, 0.0, -2.0, -8.0], np.float32)
KOPPEN_PMULT = np.array([1.0, 1.5, 0.25, 1.0, 0.9, 0.5], np.float32)

# stream ids of the random fields
_S_T_YEAR, _S_T_MONTH, _S_P_YEAR, _S_P_MONTH, _S_LU, _S_LAI, _S_OBS, _S_GAP = range(1, 9)
_NODE_DEG = 10  # spacing of the large-scale noise nodes


def check_scenarios(scenarios) -> tuple[str, ...]:
    """Validate scenario names; return them as a tuple."""
    if isinstance(scenarios, str):
        scenarios = [s.strip() for s in scenarios.split(",") if s.strip()]
    scenarios = tuple(scenarios)
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown or not scenarios:
        raise ConfigError(f"unknown scenario(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(SCENARIOS)}")
    if len(set(scenarios)) != len(scenarios):
        raise ConfigError(f"scenario list {','.join(scenarios)} repeats a name")
    return scenarios


def _check_years(years: tuple[int, int]) -> tuple[int, int]:
    a, b = int(years[0]), int(years[1])
    if not (FIRST_YEAR <= a <= b <= LAST_YEAR):
        raise ConfigError(f"years {a}:{b} are outside the available periods {FIRST_YEAR}-{LAST_HISTORICAL_YEAR} "
                          f"(historical) and {LAST_HISTORICAL_YEAR + 1}-{LAST_YEAR} (scenarios), or reversed")
    return a, b


def scenario_code(scenario: str, year: int) -> int:
    """Random-stream code: 0 for historical years (shared by all scenarios), else a name hash."""
    return 0 if year <= LAST_HISTORICAL_YEAR else zlib.crc32(scenario.encode())


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *(int(k) for k in key)])


# --------------------------------------------------------------------------- random fields
def tile_noise(win: GridWindow, seed: int, key: tuple[int, ...], kind: str = "normal",
               need: np.ndarray | None = None) -> np.ndarray:
    """White noise on ``win`` drawn per fixed 10° tile of the global grid (float32).

    Drawing whole global tiles makes a cell's value independent of the window asked for.
    Tiles where ``need`` (bool, shape of ``win``) is all False are skipped and left 0: the
    caller promises not to read them (this skips the open ocean in LAI).
    """
    t = int(round(TILE_DEG * win.cpd))
    out = np.zeros(win.shape, np.float32) if need is not None else np.empty(win.shape, np.float32)
    for ti in range(win.i0 // t, (win.i1 - 1) // t + 1):
        for tj in range(win.j0 // t, (win.j1 - 1) // t + 1):
            a0, a1 = max(win.i0, ti * t), min(win.i1, (ti + 1) * t)
            b0, b1 = max(win.j0, tj * t), min(win.j1, (tj + 1) * t)
            if need is not None and not need[a0 - win.i0 : a1 - win.i0, b0 - win.j0 : b1 - win.j0].any():
                continue
            rng = _rng(seed, *key, ti, tj)
            tile = (rng.standard_normal((t, t), dtype=np.float32) if kind == "normal"
                    else rng.random((t, t), dtype=np.float32))
            out[a0 - win.i0 : a1 - win.i0, b0 - win.j0 : b1 - win.j0] = tile[a0 - ti * t : a1 - ti * t, b0 - tj * t : b1 - tj * t]
    return out


def large_scale_noise(win: GridWindow, seed: int, key: tuple[int, ...]) -> np.ndarray:
    """Smooth noise: standard normals on a global 10° node grid, interpolated bilinearly."""
    nodes = _rng(seed, *key, 99_999).standard_normal((180 // _NODE_DEG + 1, 360 // _NODE_DEG + 1))
    nodes[:, -1] = nodes[:, 0]  # periodic in longitude
    y = (win.lat + 90.0) / _NODE_DEG
    x = (win.lon + 180.0) / _NODE_DEG
    y0 = np.minimum(np.floor(y).astype(int), nodes.shape[0] - 2)
    x0 = np.minimum(np.floor(x).astype(int), nodes.shape[1] - 2)
    wy, wx = (y - y0)[:, None], (x - x0)[None, :]
    f = ((1 - wy) * (1 - wx) * nodes[np.ix_(y0, x0)] + (1 - wy) * wx * nodes[np.ix_(y0, x0 + 1)]
         + wy * (1 - wx) * nodes[np.ix_(y0 + 1, x0)] + wy * wx * nodes[np.ix_(y0 + 1, x0 + 1)])
    return f.astype(np.float32)


def noise_field(win: GridWindow, seed: int, key: tuple[int, ...]) -> np.ndarray:
    """``z = 0.8 large-scale + 0.6 white``: spatially correlated, about unit variance."""
    return 0.8 * large_scale_noise(win, seed, key) + 0.6 * tile_noise(win, seed, key)


# --------------------------------------------------------------------------- climate
def global_warming(tau: np.ndarray, scenario: str) -> np.ndarray:
    """Global-mean warming G(τ) in K relative to 1950 (module docstring); τ in fractional years."""
    tau = np.asarray(tau, float)
    hist = 1.1 * (np.clip(tau - FIRST_YEAR, 0, None) / 70.0) ** 2
    s = SCENARIOS[scenario]
    start = LAST_HISTORICAL_YEAR + 1
    g0 = 1.1 * ((start - FIRST_YEAR) / 70.0) ** 2
    x = np.clip(tau - start, 0, None) / 80.0
    fut = g0 + s.warming * (1 - np.exp(-x / s.shape)) / (1 - np.exp(-1 / s.shape))
    return np.where(tau < start, hist, fut)


def _window_of(ds: xr.Dataset, res: float) -> GridWindow:
    lb, lo = ds["lat_bnds"].values, ds["lon_bnds"].values
    return GridWindow.from_bounds(float(lb[0, 0]), float(lb[-1, 1]), float(lo[0, 0]), float(lo[-1, 1]), res)


def coarse_predictors(static: xr.Dataset, res: float = 1.0) -> xr.Dataset:
    """Area-weighted coarse-cell summaries of the static maps that drive the climate.

    Parameters
    ----------
    static : xarray.Dataset
        :func:`~pipeline.datasets.static.static_fields` output; its window must nest in the
        ``res``° grid.
    res : float
        Climate grid resolution (degrees).

    Returns
    -------
    xarray.Dataset
        ``land_fraction``, ``continentality`` (c), ``koppen_dt`` (L Σ p_k δT_k, K) and
        ``koppen_pmult`` (M) on the coarse grid.
    """
    f = coarsen_factor(FINE_RES, res)
    fwin = _window_of(static, FINE_RES)
    cwin = fwin.coarsen(f)
    a = fwin.row_area_m2[:, None]
    lf = static["land_fraction"].values.astype(np.float64)
    kp = static["koppen"].values
    d = np.minimum(static["distance_to_coast"].values / 1000.0, 1.0)

    def bsum(x):
        ny, nx = x.shape
        return (x * a).reshape(ny // f, f, nx // f, f).sum(axis=(1, 3))

    area = bsum(np.ones_like(lf))
    land_area = bsum(lf)
    L = land_area / area
    with np.errstate(invalid="ignore", divide="ignore"):
        c_land = np.where(land_area > 0, bsum(lf * d) / land_area, 0.0)
        k_area = bsum((kp > 0).astype(float))
        dt = np.where(k_area > 0, bsum(KOPPEN_DT[kp].astype(float)) / k_area, 0.0)
        pm = np.where(k_area > 0, bsum(np.where(kp > 0, KOPPEN_PMULT[kp], 0.0)) / k_area, 1.0)
    ds = xr.Dataset(
        {
            "land_fraction": (("lat", "lon"), L.astype(np.float32), {"units": "1"}),
            "continentality": (("lat", "lon"), (L * c_land).astype(np.float32), {"units": "1"}),
            "koppen_dt": (("lat", "lon"), (L * dt).astype(np.float32), {"units": "K"}),
            "koppen_pmult": (("lat", "lon"), (L * pm + (1 - L)).astype(np.float32), {"units": "1"}),
        },
        coords=cwin.coords(),
    )
    return ds


def _month_times(a: int, b: int) -> pd.DatetimeIndex:
    return pd.date_range(f"{a}-01-01", f"{b}-12-01", freq="MS")


def _toa_insolation(lat_deg: np.ndarray, doy: float) -> np.ndarray:
    """Daily-mean top-of-atmosphere insolation (W m-2)."""
    phi = np.deg2rad(lat_deg)
    decl = np.deg2rad(23.44) * np.sin(2 * np.pi * (284 + doy) / 365.0)
    h0 = np.arccos(np.clip(-np.tan(phi) * np.tan(decl), -1, 1))
    ecc = 1 + 0.033 * np.cos(2 * np.pi * doy / 365.0)
    q = 1361.0 / np.pi * ecc * (h0 * np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.sin(h0))
    return np.maximum(q, 0.0)


def climate_arrays(cpred: xr.Dataset, years: tuple[int, int], scenario: str, seed: int,
                   res: float) -> dict[str, np.ndarray]:
    """Monthly ``tas`` (K), ``pr`` (mm/day) and ``rsds`` (W m-2) for one scenario, float32.

    Years may start at the spin-up year 1949 (used for the LAI lags). Shape ``(12 n_years, ny, nx)``.
    """
    a, b = years
    cwin = _window_of(cpred, res)
    lat = cwin.lat[:, None]
    phi = np.deg2rad(lat)
    L = cpred["land_fraction"].values
    c = cpred["continentality"].values
    s2 = np.sin(phi) ** 2
    w = np.exp(-(((np.abs(lat) - 37.0) / 8.0) ** 2))
    t_zon = np.interp(cwin.lat, _LAT_NODES, _T_ZONAL_C)[:, None]
    p_zon = np.interp(cwin.lat, _LAT_NODES, _P_ZONAL_MMD)[:, None]
    amp_t = 20 * np.abs(np.sin(phi)) * (0.35 + 0.65 * c)
    sig_t = 0.6 + 1.6 * np.abs(np.sin(phi)) * (0.5 + 0.5 * c)
    amp_p = 0.8 * (1 - np.exp(-((lat / 12.0) ** 2)))
    sign_p = 1 - 2 * w * (1 - c)
    k_p = 0.02 - 0.07 * w
    amplify = (1 + s2) * (1 + 0.3 * L)
    p_base = p_zon * cpred["koppen_pmult"].values * (1 - 0.4 * c)
    t_base = t_zon + cpred["koppen_dt"].values
    hemi = np.sign(lat) + (lat == 0)

    # interannual AR(1) anomalies, always from the spin-up year so a year's value never depends
    # on the requested range
    rho = 0.5
    a_t = noise_field(cwin, seed, (_S_T_YEAR, SPINUP_YEAR, 0, 0))
    a_p = noise_field(cwin, seed, (_S_P_YEAR, SPINUP_YEAR, 0, 0))
    yearly: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for y in range(SPINUP_YEAR, b + 1):
        if y > SPINUP_YEAR:
            code = scenario_code(scenario, y)
            a_t = rho * a_t + math.sqrt(1 - rho**2) * noise_field(cwin, seed, (_S_T_YEAR, y, 0, code))
            a_p = rho * a_p + math.sqrt(1 - rho**2) * noise_field(cwin, seed, (_S_P_YEAR, y, 0, code))
        if y >= a:
            yearly[y] = (a_t, a_p)

    n = 12 * (b - a + 1)
    out = {k: np.empty((n,) + cwin.shape, np.float32) for k in ("tas", "pr", "rsds")}
    for y in range(a, b + 1):
        code = scenario_code(scenario, y)
        at, ap = yearly[y]
        for m in range(12):
            tm = (m + 0.5) / 12.0
            tau = y + tm
            dT = float(global_warming(np.array([tau]), scenario)[0]) * amplify
            e_t = noise_field(cwin, seed, (_S_T_MONTH, y, m + 1, code))
            e_p = noise_field(cwin, seed, (_S_P_MONTH, y, m + 1, code))
            season = -np.cos(2 * np.pi * (tm - 0.04))
            tas = 273.15 + t_base + amp_t * hemi * season + dT + sig_t * (0.6 * at + 0.8 * e_t)
            p_season = np.cos(2 * np.pi * (tm - np.where(hemi > 0, 0.54, 0.04)))
            pr = (p_base * (1 + amp_p * sign_p * p_season) * np.clip(1 + k_p * dT, 0.2, None)
                  * np.exp(0.45 * (0.5 * ap + 0.866 * e_p) - 0.45**2 / 2))
            q = _toa_insolation(cwin.lat, 365.0 * tm + 1)[:, None]
            rsds = q * (0.78 - 0.35 * pr / (pr + 2.0))
            i = 12 * (y - a) + m
            out["tas"][i], out["pr"][i], out["rsds"][i] = tas, pr, np.broadcast_to(rsds, cwin.shape)
    return out


def _labels(names) -> np.ndarray:
    # variable-length (object) strings: zarr v3 has no stable spec for fixed-width unicode
    return np.array(list(names), dtype=object)


def _synthetic_attrs(seed: int, **extra) -> dict:
    return {"synthetic": "yes", "comment": SYNTHETIC_COMMENT, "synthetic_seed": int(seed), **extra}


def generate_climate(static: xr.Dataset, years: tuple[int, int], scenarios=("ssp126", "ssp585"),
                     seed: int = 0, res: float = 1.0) -> xr.Dataset:
    """Monthly climate drivers on the coarse grid for each scenario.

    Parameters
    ----------
    static : xarray.Dataset
        Static 0.05° predictors (:func:`~pipeline.datasets.static.static_fields`) whose window
        nests in the ``res``° grid.
    years : (int, int)
        Inclusive year range within 1950-2100.
    scenarios : sequence of str
        Names from :data:`SCENARIOS`.
    seed : int
        Random seed; the same seed gives identical output.
    res : float
        Climate grid resolution in degrees (default 1°).

    Returns
    -------
    xarray.Dataset
        ``tas`` (K), ``pr`` (kg m-2 s-1), ``rsds`` (W m-2), dims ``(scenario, time, lat, lon)``.
    """
    years = _check_years(years)
    scenarios = check_scenarios(scenarios)
    cpred = coarse_predictors(static, res)
    per = [climate_arrays(cpred, years, s, seed, res) for s in scenarios]
    attrs = {
        "tas": {"standard_name": "air_temperature", "long_name": "near-surface air temperature",
                "units": "K", "cell_methods": "time: mean area: mean"},
        "pr": {"standard_name": "precipitation_flux", "long_name": "precipitation",
               "units": "kg m-2 s-1", "cell_methods": "time: mean area: mean"},
        "rsds": {"standard_name": "surface_downwelling_shortwave_flux_in_air",
                 "long_name": "surface downwelling shortwave radiation", "units": "W m-2",
                 "cell_methods": "time: mean area: mean"},
    }
    data = {}
    for v in ("tas", "pr", "rsds"):
        arr = np.stack([p[v] for p in per])
        if v == "pr":
            arr = arr / np.float32(86400.0)  # mm/day → kg m-2 s-1
        data[v] = (("scenario", "time", "lat", "lon"), arr.astype(np.float32), {**attrs[v], **_synthetic_attrs(seed)})
    coords = {**_window_of(cpred, res).coords(), "time": ("time", _month_times(*years)),
              "scenario": ("scenario", _labels(scenarios), {"long_name": "forcing scenario (identical up to 2020)"})}
    return xr.Dataset(data, coords=coords, attrs={"title": "terrascale semi-synthetic climate drivers"})


# --------------------------------------------------------------------------- land use
def _crop_beta(y: np.ndarray, s: Scenario) -> np.ndarray:
    y = np.asarray(y, float)
    hist = np.where(y <= 1980, 0.10 + 0.15 * (y - FIRST_YEAR) / 30.0, 0.25 * (2019 - y) / 39.0)
    b2020 = 0.25 * (2019 - 2020) / 39.0
    return np.where(y <= LAST_HISTORICAL_YEAR, hist, b2020 + s.crop_trend * (y - LAST_HISTORICAL_YEAR) / 80.0)


def generate_lulc(lulc2019: xr.Dataset, years: tuple[int, int], scenarios=("ssp126", "ssp585"),
                  seed: int = 0, res: float = 0.25) -> xr.Dataset:
    """Yearly land-use trajectories of the coarse group fractions (module docstring).

    Parameters
    ----------
    lulc2019 : xarray.Dataset
        :func:`~pipeline.datasets.fractions.lulc_fractions_2019` output (``lulc_fraction_2019``).
    years, scenarios, seed
        As for :func:`generate_climate`.
    res : float
        Resolution of ``lulc2019`` (degrees).

    Returns
    -------
    xarray.Dataset
        ``lulc_fraction(scenario, time, group, lat, lon)`` float32 plus ``lulc_fraction_2019``.
    """
    a, b = _check_years(years)
    scenarios = check_scenarios(scenarios)
    f19 = lulc2019["lulc_fraction_2019"].values.astype(np.float64)
    groups = [str(g) for g in lulc2019["group"].values]
    fixed = {"water_snow_wetland", "bare"}
    gi = {g: i for i, g in enumerate(groups)}
    natural = [i for g, i in gi.items() if g not in fixed | {"cropland", "urban"}]
    C19 = f19[gi["cropland"]] if "cropland" in gi else np.zeros(f19.shape[1:])
    U19 = f19[gi["urban"]] if "urban" in gi else np.zeros(f19.shape[1:])
    N19 = f19[natural].sum(axis=0)
    win = _window_of(lulc2019, res)
    xi = np.clip(1 + 0.5 * noise_field(win, seed, (_S_LU, 0, 0, 0)), 0.2, 1.8)
    yrs = np.arange(a, b + 1)
    out = np.empty((len(scenarios), len(yrs)) + f19.shape, np.float32)
    fallback = gi.get("grassland", natural[0] if natural else None)
    for si, name in enumerate(scenarios):
        s = SCENARIOS[name]
        beta = _crop_beta(yrs, s)
        for yi, y in enumerate(yrs):
            if y <= LAST_HISTORICAL_YEAR:
                U = U19 * math.exp(0.015 * (y - 2019))
            else:
                U = U19 * math.exp(0.015 * 1) * math.exp(s.urban_rate * (y - LAST_HISTORICAL_YEAR))
            U = np.minimum(U, U19 + N19)
            C = np.clip(C19 * (1 + beta[yi] * xi), 0, C19 + U19 + N19 - U)
            dM = C + U - C19 - U19
            frac = f19.copy()
            if "cropland" in gi:
                frac[gi["cropland"]] = C
            if "urban" in gi:
                frac[gi["urban"]] = U
            with np.errstate(invalid="ignore", divide="ignore"):
                scale = np.where(N19 > 0, 1 - dM / N19, 0.0)
            for i in natural:
                frac[i] = f19[i] * scale
            if fallback is not None:  # natural regrowth in cells that had no natural land
                frac[fallback] += np.where(N19 > 0, 0.0, -dM)
            out[si, yi] = np.clip(frac, 0, 1)
    ds = xr.Dataset(
        {
            "lulc_fraction": (("scenario", "time", "group", "lat", "lon"), out, {
                "long_name": "area fraction of each land-cover group", "standard_name": "area_fraction",
                "units": "1", "valid_min": 0.0, "valid_max": 1.0, "cell_methods": "area: mean",
                **_synthetic_attrs(seed, comment_2019="the 2019 slice equals the real MODIS map")}),
            "lulc_fraction_2019": lulc2019["lulc_fraction_2019"],
        },
        coords={**win.coords(), "group": lulc2019["group"],
                "time": ("time", pd.to_datetime([f"{y}-01-01" for y in yrs])),
                "scenario": ("scenario", _labels(scenarios), {"long_name": "forcing scenario (identical up to 2020)"})},
        attrs={"title": "terrascale land-use fractions: real 2019 map, semi-synthetic trajectories"},
    )
    return ds


# --------------------------------------------------------------------------- LAI
class _LaiContext:
    """Everything a LAI block needs; shared by reference between dask tasks (threads)."""

    def __init__(self, static: xr.Dataset, cpred: xr.Dataset, climate: dict[str, dict[str, np.ndarray]],
                 first_year: int, seed: int, res: float, table: ClassTable):
        self.fwin = _window_of(static, FINE_RES)
        self.cwin = _window_of(cpred, res)
        self.factor = coarsen_factor(FINE_RES, res)
        self.igbp = static["igbp"].values
        self.koppen = static["koppen"].values
        self.dt_c = cpred["koppen_dt"].values
        self.pm_c = cpred["koppen_pmult"].values
        self.climate = climate  # scenario → var → (months from Jan of first_year − 1, ny, nx)
        self.first_year = first_year
        self.seed = seed
        self.lo, self.hi, self.ev = table.lai_lookup()
        self._token = uuid.uuid4().hex  # cheap dask token: never hash the big arrays

    def __dask_tokenize__(self):
        return self._token


def _lai_block(ctx: _LaiContext, scenario: str, year: int, i0: int, i1: int, j0: int, j1: int,
               with_obs: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """LAI truth (and the observed copy) for 12 months of ``year`` on fine rows/cols ``[i0,i1) x [j0,j1)``."""
    fw = GridWindow(ctx.fwin.cpd, ctx.fwin.i0 + i0, ctx.fwin.i0 + i1, ctx.fwin.j0 + j0, ctx.fwin.j0 + j1)
    cls = ctx.igbp[i0:i1, j0:j1]
    hi_c = ctx.hi[cls]
    valid = np.isfinite(hi_c)
    li, lj = np.nonzero(valid)
    lai = np.full((12,) + fw.shape, np.nan, np.float32)
    obs = np.full((12,) + fw.shape, np.nan, np.float32) if with_obs else None
    if li.size == 0:
        return lai, obs
    c = cls[li, lj]
    kf = ctx.koppen[i0:i1, j0:j1][li, lj]
    ci = (fw.i0 + li) // ctx.factor - ctx.cwin.i0
    cj = (fw.j0 + lj) // ctx.factor - ctx.cwin.j0
    clim = ctx.climate[scenario]
    n0 = 12 * (year - ctx.first_year + 1) - 2  # two lag months before January
    sl = slice(n0, n0 + 14)
    T = clim["tas"][sl][:, ci, cj] - np.float32(273.15) + (KOPPEN_DT[kf] - ctx.dt_c[ci, cj])
    P = clim["pr"][sl][:, ci, cj] * (KOPPEN_PMULT[kf] / ctx.pm_c[ci, cj])
    R = clim["rsds"][sl][:, ci, cj]
    pet = np.float32(0.0135 * 0.0864 / 2.45) * np.maximum(T + np.float32(17.8), 0) * R

    def sum3(x):
        return x[2:] + x[1:-1] + x[:-2]

    W = sum3(P) / (sum3(pet) + np.float32(0.3))
    f_t = 1 / (1 + np.exp(-((T[2:] + T[1:-1]) / 2 - 5) / np.float32(2.5)))
    g = f_t * (1 - np.exp(-W / np.float32(0.4)))
    ev = ctx.ev[c]
    g = g + ev * np.float32(0.5) * (1 - g)
    lo, hi = ctx.lo[c], hi_c[li, lj]
    # MA(2) noise: persistent like AR(1) but built from per-month draws, so any year can be
    # generated alone
    months = [(year - 1, 10), (year - 1, 11)] + [(year, m) for m in range(12)]
    eta = np.stack([tile_noise(fw, ctx.seed, (_S_LAI, y, m + 1, scenario_code(scenario, y)), need=valid)[li, lj]
                    for y, m in months])
    eps = (eta[2:] + np.float32(0.6) * eta[1:-1] + np.float32(0.36) * eta[:-2]) / np.float32(math.sqrt(1.4896))
    val = np.clip(lo + (hi - lo) * g + (np.float32(0.05) + np.float32(0.08) * (hi - lo)) * eps, 0,
                  np.float32(LAI_OVERSHOOT) * hi)
    lai[:, li, lj] = val
    if with_obs:
        code = scenario_code(scenario, year)
        zeta = np.stack([tile_noise(fw, ctx.seed, (_S_OBS, year, m + 1, code), need=valid)[li, lj] for m in range(12)])
        u = np.stack([tile_noise(fw, ctx.seed, (_S_GAP, year, m + 1, code), kind="uniform", need=valid)[li, lj] for m in range(12)])
        p_gap = np.float32(0.1) + np.float32(0.5) * P[2:] / (P[2:] + np.float32(4.0))
        p_gap = np.where(T[2:] < -2, np.float32(0.9), p_gap)
        # the retrieval noise is unbounded: kept inside the plausible LAI range a reader checks
        o = np.clip(val + (np.float32(0.1) + np.float32(0.1) * val) * zeta, 0, np.float32(LAI_RANGE[1]))
        obs[:, li, lj] = np.where(u < p_gap, np.float32(np.nan), o)
    return lai, obs


def generate_lai(static: xr.Dataset, years: tuple[int, int], scenarios=("ssp126", "ssp585"), seed: int = 0,
                 res: float = 1.0, table: ClassTable | None = None, chunks: tuple[int, int] = (200, 1800),
                 ) -> xr.Dataset:
    """Monthly LAI on the 0.05° grid as a lazy, chunked (dask) dataset.

    Parameters
    ----------
    static : xarray.Dataset
        Static 0.05° predictors; the window must nest in the ``res``° climate grid.
    years, scenarios, seed, res
        As for :func:`generate_climate` (the LAI uses exactly those drivers).
    table : ClassTable, optional
        Supplies the per-class LAI envelope (default: packaged table).
    chunks : (int, int)
        Fine rows and columns per dask block; each block is one year (12 months). Memory per
        block is about 60 bytes x rows x cols x 14 months.

    Returns
    -------
    xarray.Dataset
        ``lai(scenario, time, lat, lon)`` (truth) and, when the years overlap 2000-2020,
        ``lai_obs(time, lat, lon)`` (NaN outside the satellite era and in gaps), float32
        m2 m-2, dask-backed: writing the dataset streams it block by block.
    """
    a, b = _check_years(years)
    scenarios = check_scenarios(scenarios)
    table = table or load_class_table()
    cpred = coarse_predictors(static, res)
    # one year more than asked for: the two lag months of January (a >= 1950 > spin-up year 1949)
    climate = {s: climate_arrays(cpred, (a - 1, b), s, seed, res) for s in scenarios}
    ctx = _LaiContext(static, cpred, climate, a, seed, res, table)
    if ctx.igbp.shape != ctx.fwin.shape:
        raise InputDataError(f"static 'igbp' has shape {ctx.igbp.shape} but its lat/lon bounds describe "
                             f"{ctx.fwin.shape} cells of 0.05°; rebuild it with static_fields()")
    ny, nx = ctx.fwin.shape
    by, bx = min(chunks[0], ny), min(chunks[1], nx)
    rows = [(i, min(i + by, ny)) for i in range(0, ny, by)]
    cols = [(j, min(j + bx, nx)) for j in range(0, nx, bx)]
    sat = [y for y in range(a, b + 1) if SATELLITE_ERA[0] <= y <= SATELLITE_ERA[1]]
    block = dask.delayed(_lai_block, nout=2, pure=True)
    shared: dict = {}  # historical blocks are computed once and shared by every scenario

    def parts(s, y, r, c):
        key = (s if y > LAST_HISTORICAL_YEAR else "", y, r, c)
        if key not in shared:
            shared[key] = block(ctx, s, y, *r, *c, y in sat)
        return shared[key]

    def arr(d, r, c):
        return da.from_delayed(d, shape=(12, r[1] - r[0], c[1] - c[0]), dtype=np.float32)

    lai = da.block([[[[arr(parts(s, y, r, c)[0], r, c)[None] for c in cols]
                      for r in rows] for y in range(a, b + 1)] for s in scenarios])
    lai_attrs = {"long_name": "leaf area index (synthetic truth)", "standard_name": "leaf_area_index",
                 "units": "m2 m-2", "valid_min": 0.0, "valid_max": 15.0, "cell_methods": "time: mean"}
    data = {"lai": (("scenario", "time", "lat", "lon"), lai, {**lai_attrs, **_synthetic_attrs(seed)})}
    if sat:
        # same time axis as the truth so the two align; months outside the satellite era are NaN
        obs = da.block([[[arr(parts(scenarios[0], y, r, c)[1], r, c) if y in sat
                          else da.full((12, r[1] - r[0], c[1] - c[0]), np.nan, dtype=np.float32)
                          for c in cols] for r in rows] for y in range(a, b + 1)])
        data["lai_obs"] = (("time", "lat", "lon"), obs, {
            **lai_attrs, "long_name": "leaf area index as observed by a satellite (synthetic, with gaps)",
            "valid_period": f"{max(a, SATELLITE_ERA[0])}-{min(b, SATELLITE_ERA[1])}",
            "comment_gaps": "NaN where clouds or snow hide the surface, and outside the satellite era 2000-2020",
            **_synthetic_attrs(seed)})
    coords = {**ctx.fwin.coords(), "time": ("time", _month_times(a, b)),
              "scenario": ("scenario", _labels(scenarios), {"long_name": "forcing scenario (identical up to 2020)"})}
    return xr.Dataset(data, coords=coords, attrs={"title": "terrascale semi-synthetic monthly LAI"})
