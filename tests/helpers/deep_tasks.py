"""Small synthetic tables on a fine lat-lon grid for the deep models and the constraint layers.

Every table has the columns the deep models read: ``cell`` (flat index over the grid), ``parent``
(the coarse cell: ``factor`` x ``factor`` blocks of fine cells), ``area`` (exact spherical areas
from :func:`pipeline.sphere.box_areas`), numeric features ``x1``, ``x2`` and a categorical ``zone``.

* :func:`make_lai_table`: ``lai = truth(x1, x2, zone) + N(0, sigma)``, so ``sigma`` is the RMSE
  noise floor; ``lai_coarse`` is every parent's area-weighted mean of ``lai`` (what the coarse
  data would hold). ``smooth=True`` draws the features as smooth random fields (for the U-Net),
  else independently per cell.
* :func:`make_lulc_table`: classes drawn from known softmax probabilities of the features;
  ``frac_*`` columns hold the parent's area fraction of each class group among its fine cells.
* :func:`lulc_problems`: a hypothesis strategy of raw inputs of the LULC constraint and
  allocation functions (probabilities with zeros, areas over two orders of magnitude, coarse
  fractions with zeros and not summing to 1).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter

from pipeline.models import TaskSpec
from pipeline.sphere import box_areas

LULC_CLASSES = (1, 4, 10, 12, 14)
LULC_GROUPS = ("forest", "forest", "grass", "crop", "crop")
GROUP_COLUMNS = {"forest": "frac_forest", "grass": "frac_grass", "crop": "frac_crop"}
ZONES = ("A", "B", "C")


class Split(NamedTuple):
    """Training, validation and test tables of a task (split along whole coarse cells)."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    spec: TaskSpec


def _grid(nlat: int, nlon: int, factor: int, lat0: float = 30.0, res: float = 0.1) -> pd.DataFrame:
    """The fine cells of a regular grid with their parent, area and position."""
    i, j = np.meshgrid(np.arange(nlat), np.arange(nlon), indexing="ij")
    i, j = i.ravel(), j.ravel()
    lat_s = lat0 + res * i
    area = box_areas(lat_s, lat_s + res, res * j, res * (j + 1))
    parent = (i // factor) * ((nlon + factor - 1) // factor) + j // factor
    return pd.DataFrame({"cell": (i * nlon + j).astype(np.int64), "parent": parent.astype(np.int64),
                         "area": area, "row": i, "col": j})


def _features(frame: pd.DataFrame, nlat: int, nlon: int, smooth: bool, rng) -> None:
    if smooth:
        for name in ("x1", "x2"):
            field = gaussian_filter(rng.standard_normal((nlat, nlon)), 3.0, mode="reflect")
            field = (field - field.mean()) / field.std()
            frame[name] = field.ravel()
        zone = np.clip(((frame["col"] / nlon) * len(ZONES)).astype(int), 0, len(ZONES) - 1)
    else:
        frame["x1"] = rng.uniform(-2, 2, len(frame))
        frame["x2"] = rng.uniform(-1.5, 1.5, len(frame))
        zone = rng.integers(0, len(ZONES), len(frame))
    frame["zone"] = pd.Categorical.from_codes(zone, categories=list(ZONES))


def lai_truth(x1, x2, zone_codes) -> np.ndarray:
    """The noiseless LAI of :func:`make_lai_table`: smooth in the features, an offset per zone."""
    offset = np.array([0.0, 0.8, -0.5])[zone_codes]
    return 2.5 + np.sin(1.5 * x1) + 0.5 * x2**2 + offset


def _split(frame: pd.DataFrame, spec: TaskSpec, rng, by_rows: bool) -> Split:
    parents = frame["parent"].unique()
    if by_rows:  # contiguous bands of coarse rows: the U-Net needs regions
        band = frame.groupby("parent")["row"].transform("min").to_numpy()
        top = band.max()
        test = band >= top * 0.75
        valid = (band >= top * 0.6) & ~test
    else:
        shuffled = rng.permutation(parents)
        n = len(shuffled)
        test = frame["parent"].isin(shuffled[: n // 4]).to_numpy()
        valid = frame["parent"].isin(shuffled[n // 4: n // 4 + n // 8]).to_numpy()
    train = ~test & ~valid
    return Split(frame[train].reset_index(drop=True), frame[valid].reset_index(drop=True),
                 frame[test].reset_index(drop=True), spec)


def make_lai_table(nlat: int = 48, nlon: int = 48, factor: int = 4, sigma: float = 0.2, smooth: bool = False,
                   downscaling: bool = True, seed: int = 0, split_by_rows: bool = False) -> Split:
    """A LAI table with a known relation and noise ``sigma`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    frame = _grid(nlat, nlon, factor)
    _features(frame, nlat, nlon, smooth, rng)
    frame["truth"] = lai_truth(frame["x1"].to_numpy(), frame["x2"].to_numpy(), frame["zone"].cat.codes.to_numpy())
    frame["lai"] = frame["truth"] + sigma * rng.standard_normal(len(frame))
    w = frame["area"] * frame["lai"]
    frame["lai_coarse"] = (w.groupby(frame["parent"]).transform("sum")
                           / frame["area"].groupby(frame["parent"]).transform("sum"))
    spec = TaskSpec(task="lai", target="lai", features=("x1", "x2", "zone"), categorical=("zone",),
                    coarse_target="lai_coarse" if downscaling else None, grid_shape=(nlat, nlon))
    return _split(frame, spec, rng, split_by_rows)


def lulc_probabilities(x1, x2, zone_codes) -> np.ndarray:
    """The true class probabilities of :func:`make_lulc_table` (softmax of linear scores)."""
    W = np.array([[2.0, 0.0], [1.0, 1.5], [-1.0, 1.0], [-1.5, -1.0], [0.0, -2.0]])
    b = np.array([[0.0, 0.5, 0.0, 0.3, -0.2], [0.5, -0.5, 0.0, 0.0, 0.2], [-0.3, 0.0, 0.6, 0.0, 0.0]])
    s = np.stack([x1, x2], axis=1) @ W.T + b[zone_codes]
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def make_lulc_table(nlat: int = 32, nlon: int = 32, factor: int = 4, smooth: bool = False, seed: int = 0,
                    split_by_rows: bool = False) -> Split:
    """A LULC table: classes drawn from known probabilities, parents' group fractions consistent."""
    rng = np.random.default_rng(seed)
    frame = _grid(nlat, nlon, factor)
    _features(frame, nlat, nlon, smooth, rng)
    p = lulc_probabilities(frame["x1"].to_numpy(), frame["x2"].to_numpy(), frame["zone"].cat.codes.to_numpy())
    k = (p.cumsum(axis=1) > rng.random((len(frame), 1))).argmax(axis=1)
    frame["igbp"] = np.asarray(LULC_CLASSES)[k]
    groups = np.asarray(LULC_GROUPS)[k]
    total = frame["area"].groupby(frame["parent"]).transform("sum")
    for g, col in GROUP_COLUMNS.items():
        frame[col] = (frame["area"] * (groups == g)).groupby(frame["parent"]).transform("sum") / total
    spec = TaskSpec(task="lulc", target="igbp", features=("x1", "x2", "zone"), categorical=("zone",),
                    classes=LULC_CLASSES, class_groups=LULC_GROUPS, group_columns=dict(GROUP_COLUMNS),
                    grid_shape=(nlat, nlon))
    return _split(frame, spec, rng, split_by_rows)


def group_fraction_error(frame: pd.DataFrame, probs: np.ndarray, spec: TaskSpec) -> float:
    """Largest |predicted − coarse| group fraction over the parents of ``frame`` (probabilities or one-hot)."""
    groups = list(spec.group_columns)
    area = frame["area"].to_numpy()
    worst = 0.0
    for g in groups:
        members = [k for k, cg in enumerate(spec.class_groups) if cg == g]
        mass = pd.Series(area * probs[:, members].sum(axis=1)).groupby(frame["parent"].to_numpy()).sum()
        total = pd.Series(area).groupby(frame["parent"].to_numpy()).sum()
        coarse = frame.groupby("parent")[spec.group_columns[g]].first()
        # the fractions of a parent need not sum to 1 in general; here they do, so no renormalisation
        worst = max(worst, float(np.max(np.abs(mass / total - coarse.reindex(mass.index)))))
    return worst


@st.composite
def lulc_problems(draw):
    """Random probabilities (with zeros), areas over two orders of magnitude, fractions with zeros."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_parent = draw(st.integers(1, 12))
    K = draw(st.integers(1, 8))
    G = draw(st.integers(1, K))
    class_group = np.concatenate([np.arange(G), rng.integers(0, G, K - G)])
    rng.shuffle(class_group)
    n = draw(st.integers(n_parent, 12 * n_parent))
    parent = np.concatenate([np.arange(n_parent), rng.integers(0, n_parent, n - n_parent)])
    area = 10 ** rng.uniform(-1, 1, n)
    probs = rng.dirichlet(np.full(K, 0.3), n)
    probs[rng.random((n, K)) < draw(st.sampled_from([0.0, 0.3, 0.6]))] = 0.0
    fractions = rng.dirichlet(np.full(G, 0.5), n_parent)
    fractions[rng.random((n_parent, G)) < draw(st.sampled_from([0.0, 0.3, 0.6]))] = 0.0
    empty = fractions.sum(axis=1) == 0
    fractions[empty, rng.integers(0, G, empty.sum())] = 1.0
    # coarse files need not sum to 1: the layer renormalises
    fractions *= rng.uniform(0.7, 1.3, (n_parent, 1))
    return probs, parent, area, class_group, fractions
