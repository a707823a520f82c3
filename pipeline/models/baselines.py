"""Statistical baselines: what any learnt model has to beat.

LULC (class probabilities):

* :class:`CoarsePrior` shares the parent coarse cell's group fractions among each group's classes
  by their training frequency in the fine cell's Köppen zone.
* :class:`ParentMajority` puts probability 1 on the most frequent class (in the Köppen zone) of
  the parent's largest group.

LAI (values):

* :class:`Climatology`: training mean per land-cover class x Köppen zone x month, with fallbacks.
* :class:`Bilinear`: the coarse LAI interpolated to the fine cells (a column of the table).

The learnt state is small tables of counts and means, saved as ``state.npz`` (read with
``allow_pickle=False``) and ``state.json`` (the zone and class keys).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config.models import BilinearParams, ClimatologyParams, CoarsePriorParams, ParentMajorityParams
from pipeline.errors import ConfigError, InputDataError
from pipeline.models.base import Model, TaskSpec
from pipeline.models.columns import category_keys, class_indices, key_positions, require_columns, training_rows

__all__ = ["Bilinear", "Climatology", "CoarsePrior", "ParentMajority"]

_ARRAYS = "state.npz"
_META = "state.json"


def _write_state(directory: Path, arrays: dict[str, np.ndarray], meta: dict) -> list[str]:
    """Write the arrays (``.npz``, no object arrays) and the JSON-able keys; return the file names."""
    np.savez(directory / _ARRAYS, **{k: np.asarray(v) for k, v in arrays.items()})
    (directory / _META).write_text(json.dumps(meta, indent=1))
    return [_ARRAYS, _META]


def _read_state(directory: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and keys :func:`_write_state` wrote (pickled objects are refused by NumPy)."""
    try:
        with np.load(directory / _ARRAYS, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads((directory / _META).read_text())
    except (OSError, ValueError) as err:
        raise InputDataError(f"model {directory}: its state cannot be read ({err}); save the model again") from None
    return arrays, meta


class _Baseline(Model):
    """Typed parameters for every baseline (a dict or ``None`` is validated into ``params_type``)."""

    family = "baseline"
    params_type = CoarsePriorParams


class _ZoneClassCounts(_Baseline):
    """Training counts of each LULC class per Köppen zone, shared by the two LULC baselines."""

    tasks = frozenset({"lulc"})

    def __init__(self, spec: TaskSpec, params=None, **kwargs):
        super().__init__(spec, params, **kwargs)
        if not spec.class_groups:
            raise ConfigError(f"model {self.name!r} ({self.kind}) needs the coarse group of every class "
                              "(TaskSpec.class_groups)")
        #: the groups in first-appearance order, and each class's group position
        self.groups: tuple[str, ...] = tuple(dict.fromkeys(spec.class_groups))
        self.class_group = np.array([self.groups.index(g) for g in spec.class_groups], dtype=np.int64)
        missing = [g for g in self.groups if g not in spec.group_columns]
        if missing:
            raise ConfigError(f"model {self.name!r} ({self.kind}): group(s) {missing} have no column of parent "
                              "fractions (TaskSpec.group_columns)")
        self.zones: list[str] = []
        self.counts = np.zeros((0, spec.n_classes))
        self.global_counts = np.zeros(spec.n_classes)

    def _fit(self, X, y, X_valid, y_valid) -> None:
        X, y = training_rows(X, y, self.name)
        require_columns(X, [self.spec.koppen], self.name)
        k = class_indices(y, self.spec.classes, self.name)
        zone_key = category_keys(X[self.spec.koppen])
        # a row without a zone counts only towards the global frequencies
        self.zones = sorted(set(zone_key.tolist()) - {""})
        z = key_positions(X[self.spec.koppen], self.zones)
        K = self.spec.n_classes
        has = z >= 0
        self.counts = np.bincount(z[has] * K + k[has], minlength=len(self.zones) * K).reshape(len(self.zones), K)
        self.counts = self.counts.astype(np.float64)
        self.global_counts = np.bincount(k, minlength=K).astype(np.float64)

    def _zone_rows(self, X: pd.DataFrame) -> np.ndarray:
        """Each row's zone position in :meth:`_zone_table` (an unseen or missing zone: the global row)."""
        require_columns(X, [self.spec.koppen], self.name)
        z = key_positions(X[self.spec.koppen], self.zones)
        return np.where(z >= 0, z, len(self.zones))

    def _zone_table(self) -> np.ndarray:
        """(zones + 1, classes) counts; the last row is the global one."""
        return np.vstack([self.counts, self.global_counts[None, :]])

    def _group_fractions(self, X: pd.DataFrame) -> np.ndarray:
        """(rows, groups) parent fractions, NaN kept."""
        cols = [self.spec.group_columns[g] for g in self.groups]
        require_columns(X, cols, self.name)
        return np.column_stack([pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
                                for c in cols])

    def _global_frequencies(self, smoothing: float) -> np.ndarray:
        counts = self.global_counts + smoothing
        total = counts.sum()
        return counts / total if total > 0 else np.full(self.spec.n_classes, 1.0 / self.spec.n_classes)

    def _save(self, directory: Path) -> list[str]:
        return _write_state(directory, {"counts": self.counts, "global_counts": self.global_counts},
                            {"zones": self.zones, "groups": list(self.groups)})

    def _load(self, directory: Path) -> None:
        arrays, meta = _read_state(directory)
        self.zones = list(meta["zones"])
        self.counts = arrays["counts"].astype(np.float64).reshape(len(self.zones), self.spec.n_classes)
        self.global_counts = arrays["global_counts"].astype(np.float64)


class CoarsePrior(_ZoneClassCounts):
    """Parent group fractions shared among each group's classes by their frequency in the Köppen zone.

    For a fine cell in zone *z* whose parent has fraction *F_g* of group *g*, class *c* of group
    *g* gets ``F_g * (n[z, c] + s) / sum_{c' in g} (n[z, c'] + s)``, with ``n`` the training
    counts and ``s`` the smoothing (an unseen zone uses the global counts). Summed over a group's
    classes this is the parent's fraction of the group; rows are renormalised to sum to 1 (the
    groups may not cover the whole parent), and a parent with no fraction at all (0 or NaN) gets
    the global class frequencies.
    """

    kind = "coarse_prior"
    params_type = CoarsePriorParams

    def _shares(self) -> np.ndarray:
        """(zones + 1, classes): each class's share of its group, per zone (last row: global)."""
        s = float(self.params.smoothing)
        table = self._zone_table() + s
        shares = np.zeros_like(table)
        for g in range(len(self.groups)):
            cols = np.flatnonzero(self.class_group == g)
            part = table[:, cols]
            total = part.sum(axis=1, keepdims=True)
            # no count in the zone (smoothing 0): the global shares; none at all: an even share
            glob = part[-1] / total[-1] if total[-1, 0] > 0 else np.full(len(cols), 1.0 / len(cols))
            shares[:, cols] = np.where(total > 0, part / np.where(total > 0, total, 1.0), glob[None, :])
        return shares

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        F = self._group_fractions(X)
        F = np.where(np.isfinite(F) & (F > 0), F, 0.0)
        prob = F[:, self.class_group] * self._shares()[self._zone_rows(X)]
        total = prob.sum(axis=1, keepdims=True)
        empty = ~(total[:, 0] > 0)
        prob[empty] = self._global_frequencies(float(self.params.smoothing))
        total[empty] = 1.0
        return prob / total


class ParentMajority(_ZoneClassCounts):
    """Probability 1 for the most frequent class, in the Köppen zone, of the parent's largest group.

    The most frequent class is counted in the fine cell's Köppen zone (the global counts for an
    unseen zone or a group never seen in the zone; a group never seen at all: its first class).
    A parent with no fraction at all (0 or NaN) gets the globally most frequent class.
    """

    kind = "parent_majority"
    params_type = ParentMajorityParams

    def _best(self) -> np.ndarray:
        """(zones + 1, groups): the position of each group's most frequent class, per zone."""
        table = self._zone_table()
        best = np.zeros((table.shape[0], len(self.groups)), dtype=np.int64)
        for g in range(len(self.groups)):
            cols = np.flatnonzero(self.class_group == g)
            part = table[:, cols]
            glob = cols[int(np.argmax(part[-1]))]  # argmax of all zeros is the group's first class
            best[:, g] = np.where(part.sum(axis=1) > 0, cols[np.argmax(part, axis=1)], glob)
        return best

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        F = self._group_fractions(X)
        F = np.where(np.isfinite(F), F, -np.inf)
        largest = np.argmax(F, axis=1)
        empty = ~(np.max(F, axis=1) > 0) if F.shape[1] else np.ones(len(X), dtype=bool)
        choice = self._best()[self._zone_rows(X), largest]
        choice[empty] = int(np.argmax(self.global_counts))
        prob = np.zeros((len(X), self.spec.n_classes))
        prob[np.arange(len(X)), choice] = 1.0
        return prob


class Climatology(_Baseline):
    """Training mean LAI per land-cover class x Köppen zone x month, with fallbacks.

    A combination with fewer than ``min_count`` training rows falls back to the class x month
    mean, then the month mean, then the global mean (also for a row without class, zone or time).
    """

    kind = "climatology"
    tasks = frozenset({"lai"})
    params_type = ClimatologyParams

    def __init__(self, spec: TaskSpec, params=None, **kwargs):
        super().__init__(spec, params, **kwargs)
        self.classes: list[str] = []
        self.zones: list[str] = []
        self.tables: dict[str, np.ndarray] = {}

    def _months(self, X: pd.DataFrame) -> np.ndarray:
        """Month 0..11 of each row, -1 where the time is missing."""
        require_columns(X, [self.spec.time], self.name)
        col = X[self.spec.time]
        if not pd.api.types.is_datetime64_any_dtype(col.dtype):
            raise ConfigError(f"model {self.name!r} ({self.kind}): column {self.spec.time!r} has dtype {col.dtype}, "
                              "not datetime64; the climatology needs the month of each row")
        m = col.dt.month.to_numpy(dtype=np.float64, na_value=np.nan)
        return np.where(np.isfinite(m), m - 1, -1).astype(np.int64)

    def _keys(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        require_columns(X, [self.spec.land_cover, self.spec.koppen], self.name)
        return (key_positions(X[self.spec.land_cover], self.classes), key_positions(X[self.spec.koppen], self.zones),
                self._months(X))

    def _fit(self, X, y, X_valid, y_valid) -> None:
        X, y = training_rows(X, y.astype(np.float64), self.name)
        require_columns(X, [self.spec.land_cover, self.spec.koppen], self.name)
        self.classes = sorted(set(category_keys(X[self.spec.land_cover]).tolist()) - {""})
        self.zones = sorted(set(category_keys(X[self.spec.koppen]).tolist()) - {""})
        c, z, m = self._keys(X)
        L, Z = len(self.classes), len(self.zones)

        def table(index: np.ndarray, ok: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
            size = int(np.prod(shape))
            n = np.bincount(index[ok], minlength=size).astype(np.float64)
            total = np.bincount(index[ok], weights=y[ok], minlength=size)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(n > 0, total / np.where(n > 0, n, 1.0), np.nan)
            return mean.reshape(shape), n.reshape(shape)

        has_m, has_c, has_z = m >= 0, c >= 0, z >= 0
        self.tables = {}
        self.tables["mean_czm"], self.tables["count_czm"] = table((c * Z + z) * 12 + m, has_c & has_z & has_m,
                                                                  (L, Z, 12))
        self.tables["mean_cm"], self.tables["count_cm"] = table(c * 12 + m, has_c & has_m, (L, 12))
        self.tables["mean_m"], self.tables["count_m"] = table(m, has_m, (12,))
        self.tables["mean_all"] = np.array(float(np.mean(y)))

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        c, z, m = self._keys(X)
        t, need = self.tables, int(self.params.min_count)
        out = np.full(len(X), float(t["mean_all"]))
        # coarsest level first, finest last: the finest level with enough rows wins
        for level, index in (("m", (m,)), ("cm", (c, m)), ("czm", (c, z, m))):
            count = t[f"count_{level}"]
            ok = np.logical_and.reduce([i >= 0 for i in index])
            if count.size == 0 or not ok.any():
                continue
            rows = tuple(i[ok] for i in index)
            use = np.flatnonzero(ok)[count[rows] >= need]
            out[use] = t[f"mean_{level}"][tuple(i[use] for i in index)]
        return out

    def _save(self, directory: Path) -> list[str]:
        return _write_state(directory, self.tables, {"classes": self.classes, "zones": self.zones})

    def _load(self, directory: Path) -> None:
        self.tables, meta = _read_state(directory)
        self.classes, self.zones = list(meta["classes"]), list(meta["zones"])


class Bilinear(_Baseline):
    """The coarse LAI interpolated bilinearly to the fine cells (downscaling only).

    The feature builder already puts the coarse LAI on the fine grid bilinearly
    (``TaskSpec.coarse_target``); this baseline returns that column as it is, NaN included.
    Reconstruction has no coarse LAI: the model refuses a spec without ``coarse_target``.
    """

    kind = "bilinear"
    tasks = frozenset({"lai"})
    params_type = BilinearParams

    def __init__(self, spec: TaskSpec, params=None, **kwargs):
        super().__init__(spec, params, **kwargs)
        if spec.coarse_target is None:
            raise ConfigError(f"model {self.name!r} (bilinear) needs the coarse LAI on the fine grid, but the task "
                              "has no coarse target (reconstruction mode); drop this model or use LAI downscaling")

    def _fit(self, X, y, X_valid, y_valid) -> None:
        require_columns(X, [self.spec.coarse_target], self.name)

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        require_columns(X, [self.spec.coarse_target], self.name)
        return pd.to_numeric(X[self.spec.coarse_target], errors="coerce").to_numpy(dtype=np.float64,
                                                                                    na_value=np.nan)

    def _save(self, directory: Path) -> list[str]:
        # nothing is learnt; the column name is recorded for a reader of the directory
        (directory / _META).write_text(json.dumps({"column": self.spec.coarse_target}))
        return [_META]

    def _load(self, directory: Path) -> None:
        meta = json.loads((directory / _META).read_text())
        if meta.get("column") != self.spec.coarse_target:
            raise InputDataError(f"model {directory}: state.json names column {meta.get('column')!r}, the spec "
                                 f"{self.spec.coarse_target!r}; save the model again")
