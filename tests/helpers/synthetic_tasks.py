"""Small synthetic tables with a known relation and a known noise level, for both tasks.

Each maker returns a :class:`SyntheticTask` (a named tuple: ``X_train, y_train, X_test, y_test,
spec, noise_floor``). Training and test rows come from different coarse parents, as in a
spatial split.

* :func:`make_lai_task`: ``y = f(land cover, Köppen zone, month, elevation) + N(0, sigma)``;
  ``noise_floor`` is ``sigma``, the RMSE of the true ``f`` (no model can do better on average).
  The coarse LAI column is the parent's mean of ``f`` for the month (what a bilinear
  interpolation of the coarse field would carry, without the interpolation).
* :func:`make_lulc_task`: classes drawn from known probabilities (softmax of linear functions of
  two features plus a Köppen zone offset); the parent's group fractions are the mean over its
  children of the true group probabilities, so they are consistent with the classes drawn and sum
  to 1; ``noise_floor`` is the Bayes log-loss on the test rows (mean of -log p_true(y)).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from pipeline.models import TaskSpec

ZONES = ("Af", "BSk", "Cfb", "Dfc")
LAI_CLASSES = (1, 4, 10, 12, 16)
LULC_CLASSES = (1, 4, 5, 10, 12, 14, 16)
LULC_GROUPS = ("forest", "forest", "forest", "grass", "crop", "crop", "bare")
GROUP_COLUMNS = {"forest": "frac_forest", "grass": "frac_grass", "crop": "frac_crop", "bare": "frac_bare"}


class SyntheticTask(NamedTuple):
    """A task's tables, with the spec and the best score any model can reach on average."""

    X_train: pd.DataFrame
    y_train: np.ndarray
    X_test: pd.DataFrame
    y_test: np.ndarray
    spec: TaskSpec
    noise_floor: float


def _split(frame: pd.DataFrame, y: np.ndarray, test_parents: np.ndarray) -> tuple:
    test = frame["parent"].isin(test_parents).to_numpy()
    return (frame[~test].reset_index(drop=True), y[~test], frame[test].reset_index(drop=True), y[test])


def lai_truth(igbp: np.ndarray, zone: np.ndarray, month: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    """The noiseless LAI of :func:`make_lai_task` (``zone``: position in :data:`ZONES`, ``month`` 1..12).

    A per-class base and seasonal amplitude, a seasonal peak per zone (half a year apart between
    the hemispheres' zones), damped linearly with elevation (km).
    """
    base = {1: 4.0, 4: 1.5, 10: 0.6, 12: 0.8, 16: 0.1}
    amp = {1: 1.0, 4: 3.5, 10: 1.8, 12: 3.0, 16: 0.2}
    peak = np.array([1.0, 4.0, 7.0, 7.0])
    b = np.vectorize(base.get)(igbp).astype(float)
    a = np.vectorize(amp.get)(igbp).astype(float)
    season = 0.5 + 0.5 * np.cos(2 * np.pi * (month - peak[zone]) / 12)
    return (b + a * season) * (1.0 - 0.2 * elevation)


def make_lai_task(n_parents: int = 400, children: int = 9, sigma: float = 0.4, test_fraction: float = 0.25,
                  downscaling: bool = True, seed: int = 0) -> SyntheticTask:
    """A monthly LAI table (one year) with ``y = lai_truth(...) + N(0, sigma)``.

    Parameters
    ----------
    n_parents, children : int
        Coarse cells and fine cells per coarse cell (rows: ``n_parents * children * 12``).
    sigma : float
        Standard deviation of the noise: the noise floor of the RMSE.
    test_fraction : float
        Fraction of the parents whose rows are test rows.
    downscaling : bool
        Give the spec a coarse target (``lai_coarse``); ``False``: reconstruction (no coarse LAI).
    seed : int
        Seed of every draw.

    Returns
    -------
    SyntheticTask
    """
    rng = np.random.default_rng(seed)
    n_cells = n_parents * children
    parent = np.repeat(np.arange(n_parents), children)
    zone_of_parent = rng.integers(0, len(ZONES), n_parents)
    zone = zone_of_parent[parent]
    # land cover is patchy: most children share their parent's dominant class
    dominant = rng.choice(LAI_CLASSES, n_parents)[parent]
    igbp = np.where(rng.random(n_cells) < 0.75, dominant, rng.choice(LAI_CLASSES, n_cells))
    elevation = rng.uniform(0.0, 3.0, n_cells)
    months = np.arange(1, 13)
    # rows: month-major, cell-minor (the table order of the feature builder)
    m = np.repeat(months, n_cells)
    c = np.tile(np.arange(n_cells), 12)
    f = lai_truth(igbp[c], zone[c], m, elevation[c])
    y = f + rng.normal(0.0, sigma, f.size)
    # the parent's mean of the true field, per month: the coarse LAI on the fine grid
    p = parent[c]
    key = (m - 1) * n_parents + p
    coarse = (np.bincount(key, weights=f, minlength=12 * n_parents) / np.bincount(key, minlength=12 * n_parents))[key]
    frame = pd.DataFrame({
        "cell": c,
        "parent": p,
        "area": np.full(c.size, 1.0e8),
        "time": pd.to_datetime({"year": np.full(c.size, 2019), "month": m, "day": np.ones(c.size, int)}),
        "igbp": pd.Categorical.from_codes(np.searchsorted(LAI_CLASSES, igbp[c]), categories=list(LAI_CLASSES)),
        "koppen": pd.Categorical.from_codes(zone[c], categories=list(ZONES)),
        "elevation": elevation[c].astype(np.float32),
        "month_sin": np.sin(2 * np.pi * m / 12).astype(np.float32),
        "month_cos": np.cos(2 * np.pi * m / 12).astype(np.float32),
        "lai_coarse": coarse.astype(np.float32),
    })
    features = ("elevation", "month_sin", "month_cos", "igbp", "koppen") + (("lai_coarse",) if downscaling else ())
    spec = TaskSpec(task="lai", target="lai", features=features, categorical=("igbp", "koppen"),
                    coarse_target="lai_coarse" if downscaling else None)
    test_parents = rng.choice(n_parents, int(round(test_fraction * n_parents)), replace=False)
    X_train, y_train, X_test, y_test = _split(frame, y, test_parents)
    return SyntheticTask(X_train, y_train, X_test, y_test, spec, float(sigma))


def lulc_probabilities(wet: np.ndarray, elevation: np.ndarray, zone: np.ndarray) -> np.ndarray:
    """The true class probabilities of :func:`make_lulc_task`, (rows, classes) in :data:`LULC_CLASSES` order."""
    a = np.array([1.6, 1.0, 0.8, -0.6, 0.2, 0.4, -1.8])  # wetness: forests wet, bare dry
    b = np.array([-0.5, 1.8, 0.3, 0.8, -1.5, -1.2, 0.6])  # elevation: crops low, needleleaf high
    offset = np.array([
        [1.0, -1.0, 0.5, 0.0, 0.2, -0.5, -1.0],
        [-1.0, -0.5, -0.5, 1.0, 0.3, 0.3, 1.2],
        [0.2, 0.3, 0.8, 0.2, 1.0, 0.8, -1.0],
        [-0.3, 1.5, 0.2, 0.3, -0.5, -0.2, 0.0],
    ])
    logits = wet[:, None] * a + elevation[:, None] * b + offset[zone]
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def make_lulc_task(n_parents: int = 700, children: int = 16, test_fraction: float = 0.25,
                   seed: int = 0) -> SyntheticTask:
    """A LULC table: classes drawn from :func:`lulc_probabilities`, with consistent parent group fractions.

    Parameters
    ----------
    n_parents, children : int
        Coarse cells and fine cells per coarse cell (one row per fine cell).
    test_fraction : float
        Fraction of the parents whose rows are test rows.
    seed : int
        Seed of every draw.

    Returns
    -------
    SyntheticTask
        ``noise_floor``: the Bayes log-loss of the test rows.
    """
    rng = np.random.default_rng(seed)
    n = n_parents * children
    parent = np.repeat(np.arange(n_parents), children)
    zone_of_parent = rng.integers(0, len(ZONES), n_parents)
    # a parent-level wetness shared by its children (so parents differ), plus fine-scale detail
    wet_of_parent = rng.normal(np.array([1.0, -1.5, 0.3, -0.2])[zone_of_parent], 1.0)
    zone = zone_of_parent[parent]
    wet = wet_of_parent[parent] + rng.normal(0.0, 0.5, n)
    elevation = rng.uniform(0.0, 2.0, n)
    p_true = lulc_probabilities(wet, elevation, zone)
    k = (rng.random(n)[:, None] > np.cumsum(p_true, axis=1)).sum(axis=1)
    k = np.minimum(k, len(LULC_CLASSES) - 1)
    y = np.asarray(LULC_CLASSES)[k]
    groups = tuple(dict.fromkeys(LULC_GROUPS))
    frame = pd.DataFrame({
        "cell": np.arange(n),
        "parent": parent,
        "area": np.full(n, 1.0e8),
        "koppen": pd.Categorical.from_codes(zone, categories=list(ZONES)),
        "wetness": wet.astype(np.float32),
        "elevation": elevation.astype(np.float32),
    })
    for g in groups:
        in_group = np.array([cg == g for cg in LULC_GROUPS])
        prob_g = p_true[:, in_group].sum(axis=1)
        frame[GROUP_COLUMNS[g]] = (np.bincount(parent, weights=prob_g) / children)[parent]
    features = ("wetness", "elevation", "koppen", *(GROUP_COLUMNS[g] for g in groups))
    spec = TaskSpec(task="lulc", target="igbp", features=features, categorical=("koppen",),
                    classes=LULC_CLASSES, class_groups=LULC_GROUPS, group_columns=dict(GROUP_COLUMNS))
    test_parents = rng.choice(n_parents, int(round(test_fraction * n_parents)), replace=False)
    test = np.isin(parent, test_parents)
    floor = float(np.mean(-np.log(p_true[test, k[test]])))
    X_train, y_train, X_test, y_test = _split(frame, y, test_parents)
    return SyntheticTask(X_train, y_train, X_test, y_test, spec, floor)


def log_loss(prob: np.ndarray, y: np.ndarray, classes=LULC_CLASSES) -> float:
    """Mean -log of the probability given to the true class (clipped at 1e-15)."""
    k = np.searchsorted(np.asarray(classes), y)
    return float(np.mean(-np.log(np.clip(prob[np.arange(len(y)), k], 1e-15, None))))


def constant_probabilities(y_train: np.ndarray, n: int, classes=LULC_CLASSES) -> np.ndarray:
    """The constant predictor: the training class frequencies on every row."""
    k = np.searchsorted(np.asarray(classes), y_train)
    freq = np.bincount(k, minlength=len(classes)) / len(k)
    return np.tile(freq, (n, 1))


def rmse(pred: np.ndarray, y: np.ndarray) -> float:
    """Root mean squared error."""
    return float(np.sqrt(np.mean((np.asarray(pred, dtype=float) - y) ** 2)))
