"""Gaussian grids: latitudes and weights (roots of P_2N), cell bounds conventions, regular ``F<N>``,
reduced ``N<N>`` (shipped point lists) and octahedral ``O<N>`` grids.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from pipeline.errors import ConfigError
from pipeline.grids.types import RectilinearGrid, ReducedGrid

_PL_FILE = Path(__file__).with_name("data") / "reduced_gg_pl.json"


@lru_cache(maxsize=32)
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Roots x (ascending) and weights of the Legendre polynomial P_2n."""
    m = 2 * n
    if m <= 512:
        return np.polynomial.legendre.leggauss(m)
    # leggauss solves an O(m^3) eigenproblem (minutes for O1280); Newton on the three-term
    # recurrence from the classic asymptotic first guess converges to the same roots in O(m^2).
    k = np.arange(1, m + 1)
    x = np.cos(np.pi * (k - 0.25) / (m + 0.5))
    for _ in range(100):
        p0, p1 = np.ones_like(x), x.copy()
        for j in range(2, m + 1):
            p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
        dp = m * (x * p1 - p0) / (x * x - 1.0)
        dx = p1 / dp
        x = x - dx
        if np.abs(dx).max() < 1e-15:
            break
    p0, p1 = np.ones_like(x), x.copy()
    for j in range(2, m + 1):
        p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
    dp = m * (x * p1 - p0) / (x * x - 1.0)
    w = 2.0 / ((1.0 - x * x) * dp * dp)
    return x[::-1].copy(), w[::-1].copy()


def gaussian_latitudes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The 2N Gaussian latitudes (degrees, ascending) and quadrature weights (summing to 2).

    Roots of P_2N from :func:`numpy.polynomial.legendre.leggauss` (Newton iteration for N > 256).
    """
    if n < 1:
        raise ConfigError(f"Gaussian grid number N must be >= 1, got {n}")
    x, w = _gauss_legendre(int(n))
    return np.degrees(np.arcsin(x)), w.copy()


def gaussian_lat_bounds(n: int, convention: str = "midpoints") -> np.ndarray:
    """2N+1 latitude bounds (degrees, ascending) of Gaussian cells.

    ``midpoints``: halfway between neighbouring Gaussian latitudes, ±90° at the ends (areas sum
    to the sphere's).
    ``weights``: sin-latitude bounds at the cumulative sums of the Gaussian weights.
    ``cdo``: what CDO 2.1 uses for its own ``F<N>`` grids: interior midpoints, but the two outer
    bounds extrapolated (``2 φ_1 − mid``, clipped to ±90°), so polar caps stay uncovered (checked
    against ``cdo gencon,F8``: its first-row area is Δλ (sin 87.0586° − sin 76.2426°)).
    """
    lat, w = gaussian_latitudes(n)
    if convention == "midpoints":
        edges = np.empty(2 * n + 1)
        edges[0], edges[-1] = -90.0, 90.0
        edges[1:-1] = 0.5 * (lat[1:] + lat[:-1])
        return edges
    if convention == "cdo":
        edges = np.empty(2 * n + 1)
        edges[1:-1] = 0.5 * (lat[1:] + lat[:-1])
        edges[0] = max(-90.0, 2 * lat[0] - edges[1])
        edges[-1] = min(90.0, 2 * lat[-1] - edges[-2])
        return edges
    if convention == "weights":
        half = np.cumsum(w[:n])  # symmetric: build the southern half and mirror it
        s = np.concatenate([[-1.0], -1.0 + half[:-1], [0.0]])
        south = np.degrees(np.arcsin(np.clip(s, -1.0, 1.0)))
        return np.concatenate([south, -south[-2::-1]])
    raise ConfigError(f"unknown Gaussian bounds convention {convention!r}; use 'midpoints', 'weights' or 'cdo'")


def regular_gaussian(n: int, *, gaussian_bounds: str = "midpoints") -> RectilinearGrid:
    """Regular Gaussian grid F<N>: 4N longitudes from 0°E, 2N Gaussian latitudes."""
    lat, _ = gaussian_latitudes(n)
    nx = 4 * n
    d = 360.0 / nx
    return RectilinearGrid(name=f"F{n}", lat_edges=gaussian_lat_bounds(n, gaussian_bounds),
                           lon_edges=(np.arange(nx + 1) - 0.5) * d, lat=lat, lon=np.arange(nx) * d,
                           kind="gaussian")


@lru_cache(maxsize=None)
def _shipped_pl() -> dict:
    return json.loads(_PL_FILE.read_text())


def shipped_point_lists() -> list[str]:
    return sorted(_shipped_pl(), key=lambda k: int(k[1:]))


def reduced_gaussian(n: int | None = None, pl=None, *, gaussian_bounds: str = "midpoints",
                     name: str | None = None) -> ReducedGrid:
    """Classic reduced Gaussian grid N<N> from a shipped point list, or from ``pl`` (2N counts, N→S)."""
    if pl is None:
        key = f"N{n}"
        if key not in _shipped_pl():
            raise ConfigError(f"no shipped point list for {key}; shipped: {', '.join(shipped_point_lists())}; "
                              "pass the 2N points per row (north to south) as pl=")
        pl = _shipped_pl()[key]["pl"]
    pl = np.asarray(pl, dtype=np.int64)
    if pl.size % 2:
        raise ConfigError(f"a reduced Gaussian point list needs 2N rows, got {pl.size}")
    n = pl.size // 2
    lat, _ = gaussian_latitudes(n)
    return ReducedGrid(name=name or f"N{n}", lat_edges=gaussian_lat_bounds(n, gaussian_bounds),
                       pl=pl[::-1].copy(), lat=lat)


def octahedral(n: int, *, gaussian_bounds: str = "midpoints") -> ReducedGrid:
    """Octahedral reduced Gaussian grid O<N>: 20 + 4i points in row i (i = 0 at the pole)."""
    half = 20 + 4 * np.arange(n)
    pl = np.concatenate([half, half[::-1]])
    lat, _ = gaussian_latitudes(n)
    return ReducedGrid(name=f"O{n}", lat_edges=gaussian_lat_bounds(n, gaussian_bounds), pl=pl, lat=lat,
                       kind="octahedral")
