"""Turning a table's columns into what the estimators take: typed frames, float matrices, keys, class indices.

The models of :mod:`pipeline.models` read a pandas table whose columns' roles a
:class:`~pipeline.models.base.TaskSpec` names. What they share lives here:

* :class:`FeatureEncoder` learns, on the training rows, the categories of every categorical
  feature and the median of every numeric one, and turns any later table into the same frame
  (XGBoost: categories fixed, NaN kept) or float matrix (scikit-learn, cuML: categories as their
  integer codes, NaN imputed with the training medians). Its state is plain JSON.
* :func:`category_keys` turns a column (Köppen zone, land-cover class) into string keys that
  survive a JSON round trip, whatever the column's dtype.
* :func:`class_indices`, :func:`training_rows` and :func:`spread_probabilities` handle the
  targets: class codes → positions in ``spec.classes``, rows without a target, and probabilities
  of the classes seen in training spread back onto every class of the spec.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError

__all__ = [
    "FeatureEncoder",
    "category_keys",
    "class_indices",
    "key_positions",
    "require_columns",
    "spread_probabilities",
    "training_rows",
]


def require_columns(X: pd.DataFrame, columns: Sequence[str], model: str) -> None:
    """Raise a :class:`ConfigError` naming ``model`` when a column is missing from ``X``.

    Parameters
    ----------
    X : pandas.DataFrame
        The table.
    columns : sequence of str
        The columns the model reads.
    model : str
        The model's name, for the message.
    """
    missing = [c for c in columns if c not in X.columns]
    if missing:
        raise ConfigError(f"model {model!r}: the table has no column(s) {', '.join(map(repr, missing))}; "
                          f"it has {', '.join(map(str, X.columns))}")


def _plain(value):
    """A JSON-able Python scalar from a NumPy/pandas one (integral floats become ints)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def category_keys(values) -> np.ndarray:
    """String keys of a column's values; missing values get the key ``""``.

    Integral floats and integers give the same key (``3.0`` and ``3`` → ``"3"``), so that a zone
    read as float in one table and as int in another is still the same zone.

    Parameters
    ----------
    values : array_like or pandas.Series
        The column (any dtype, categorical included).

    Returns
    -------
    numpy.ndarray
        One ``str`` key per row.
    """
    codes, uniques = pd.factorize(pd.Series(values), use_na_sentinel=True)
    # factorize once, format each distinct value once: the table may have millions of rows
    table = np.array([str(_plain(u)) for u in uniques] + [""], dtype=object)
    return table[codes]


def key_positions(values, known: Sequence[str]) -> np.ndarray:
    """Positions of a column's keys (:func:`category_keys`) in the list ``known``; -1 where absent.

    Parameters
    ----------
    values : array_like or pandas.Series
        The column.
    known : sequence of str
        Keys learnt in training.

    Returns
    -------
    numpy.ndarray
        ``int64`` positions, one per row (-1: a missing value or a key not in ``known``).
    """
    codes, uniques = pd.factorize(pd.Series(values), use_na_sentinel=True)
    where = {k: i for i, k in enumerate(known)}
    table = np.array([where.get(str(_plain(u)), -1) for u in uniques] + [-1], dtype=np.int64)
    return table[codes]


def class_indices(y, classes: Sequence[int], model: str) -> np.ndarray:
    """Positions of LULC class codes in ``classes``.

    Parameters
    ----------
    y : array_like
        Class codes (int, integral float or categorical).
    classes : sequence of int
        The spec's class codes.
    model : str
        The model's name, for the message.

    Returns
    -------
    numpy.ndarray
        ``int64`` positions, one per row.

    Raises
    ------
    ConfigError
        A code that is not one of ``classes``.
    """
    y = np.asarray(pd.Series(y).astype("float64"))
    cls = np.asarray(classes, dtype="float64")
    order = np.argsort(cls, kind="stable")
    pos = np.clip(np.searchsorted(cls[order], y), 0, len(cls) - 1)
    hit = cls[order][pos] == y
    if not hit.all():
        bad = np.unique(y[~hit])[:10]
        raise ConfigError(f"model {model!r}: target class code(s) {[_plain(v) for v in bad]} are not among the task's classes "
                          f"{list(classes)}; fix the class table or the target column")
    return order[pos].astype(np.int64)


def training_rows(X: pd.DataFrame, y: np.ndarray, model: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows whose target is present (LAI observations have gaps; a gap teaches nothing).

    Parameters
    ----------
    X : pandas.DataFrame
        The table.
    y : numpy.ndarray
        The targets, one per row.
    model : str
        The model's name, for the message.

    Returns
    -------
    (pandas.DataFrame, numpy.ndarray)
        ``X`` and ``y`` without the rows whose target is NaN.

    Raises
    ------
    ConfigError
        No row has a target.
    """
    keep = ~pd.isna(pd.Series(y)).to_numpy()
    if not keep.any():
        raise ConfigError(f"model {model!r}: every training target is missing (NaN); nothing to learn from")
    if keep.all():
        return X, y
    return X.iloc[np.flatnonzero(keep)], y[keep]


def spread_probabilities(proba: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities of the classes seen in training put into the columns of every class.

    Classes absent from the training rows get probability 0; rows are renormalised to sum to 1
    (estimators return float32 sums a few ulps off).

    Parameters
    ----------
    proba : numpy.ndarray
        (rows, len(present)) probabilities from the estimator.
    present : numpy.ndarray
        Positions in ``spec.classes`` of the estimator's columns.
    n_classes : int
        Number of classes of the spec.

    Returns
    -------
    numpy.ndarray
        (rows, n_classes) float64 probabilities.
    """
    proba = np.asarray(proba, dtype=np.float64)
    out = np.zeros((proba.shape[0], n_classes), dtype=np.float64)
    out[:, np.asarray(present, dtype=np.int64)] = np.clip(proba, 0.0, None)
    total = out.sum(axis=1, keepdims=True)
    bad = ~(total[:, 0] > 0)
    if bad.any():  # an estimator that returned only zeros for a row: no information, spread evenly
        out[np.ix_(bad, np.asarray(present, dtype=np.int64))] = 1.0
        total = out.sum(axis=1, keepdims=True)
    return out / total


class FeatureEncoder:
    """The feature columns of a table as the estimators take them, with the encoding learnt on training rows.

    Parameters
    ----------
    features : sequence of str
        The feature columns, in order.
    categorical : sequence of str
        The features that are categories.
    categories : dict of str to list, optional
        Learnt categories of each categorical feature (set by :meth:`fit`).
    medians : dict of str to float, optional
        Learnt median of each numeric feature (set by :meth:`fit`).
    model : str
        The model's name, for the messages.
    """

    def __init__(self, features: Sequence[str], categorical: Sequence[str] = (), *,
                 categories: dict[str, list] | None = None, medians: dict[str, float] | None = None,
                 model: str = "model"):
        self.features = tuple(features)
        cat = set(categorical)
        unknown = cat - set(self.features)
        if unknown:
            raise ConfigError(f"model {model!r}: categorical column(s) {sorted(unknown)} are not among the features")
        self.categorical = tuple(f for f in self.features if f in cat)
        self.numeric = tuple(f for f in self.features if f not in cat)
        self.categories = dict(categories or {})
        self.medians = dict(medians or {})
        self.model = model
        if not self.features:
            raise ConfigError(f"model {model!r}: the task names no feature columns (TaskSpec.features)")

    @classmethod
    def fit(cls, X: pd.DataFrame, features: Sequence[str], categorical: Sequence[str] = (), *,
            model: str = "model") -> "FeatureEncoder":
        """Learn the categories and medians from the training rows ``X``.

        Parameters
        ----------
        X : pandas.DataFrame
            The training table.
        features, categorical : sequence of str
            The feature columns and the categorical ones among them.
        model : str
            The model's name, for the messages.

        Returns
        -------
        FeatureEncoder
        """
        enc = cls(features, categorical, model=model)
        require_columns(X, enc.features, model)
        for c in enc.categorical:
            col = X[c]
            if isinstance(col.dtype, pd.CategoricalDtype):
                cats = list(col.cat.categories)  # the table's full category list, used or not
            else:
                cats = sorted(pd.unique(col.dropna()).tolist())
            enc.categories[c] = [_plain(v) for v in cats]
        for c in enc.numeric:
            v = pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            # a column with no value at all imputes as 0: nothing better is known about it
            enc.medians[c] = float(np.nanmedian(v)) if np.isfinite(v).any() else 0.0
        return enc

    # ------------------------------------------------------------------ outputs
    def _codes(self, X: pd.DataFrame, c: str) -> np.ndarray:
        # codes in the training categories, in the training order: a category unseen in training is
        # -1 (missing), and every code means the same category at fit and predict time; the lookup
        # is done once per distinct value, not per row
        codes, uniques = pd.factorize(X[c], use_na_sentinel=True)
        where = {v: i for i, v in enumerate(self.categories[c])}
        table = np.array([where.get(_plain(u), -1) for u in uniques] + [-1], dtype=np.int32)
        return table[codes]

    def _categorical(self, X: pd.DataFrame, c: str) -> pd.Categorical:
        return pd.Categorical.from_codes(self._codes(X, c), dtype=pd.CategoricalDtype(self.categories[c]))

    def frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """The features as a frame: categories as pandas ``category`` (fixed lists), numbers as float32 with NaN.

        Parameters
        ----------
        X : pandas.DataFrame
            Any table with the feature columns.

        Returns
        -------
        pandas.DataFrame
            Columns in :attr:`features` order.
        """
        require_columns(X, self.features, self.model)
        cols = {}
        for c in self.features:
            if c in self.categories:
                cols[c] = self._categorical(X, c)
            else:
                cols[c] = pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=np.float32, na_value=np.nan)
        return pd.DataFrame(cols, index=X.index)

    def matrix(self, X: pd.DataFrame, dtype=np.float64) -> np.ndarray:
        """The features as a float matrix: numbers imputed with the training medians, categories as codes.

        A missing or unseen category gets code -1, a value of its own for trees; the linear models
        one-hot encode the codes (:attr:`categorical_positions`).

        Parameters
        ----------
        X : pandas.DataFrame
            Any table with the feature columns.
        dtype : numpy dtype
            Of the matrix (cuML wants float32).

        Returns
        -------
        numpy.ndarray
            (rows, features), in :attr:`features` order, without NaN.
        """
        require_columns(X, self.features, self.model)
        out = np.empty((len(X), len(self.features)), dtype=dtype)
        for j, c in enumerate(self.features):
            if c in self.categories:
                out[:, j] = self._codes(X, c)
            else:
                v = pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
                out[:, j] = np.where(np.isfinite(v), v, self.medians[c])
        return out

    @property
    def categorical_positions(self) -> list[int]:
        """Columns of :meth:`matrix` that hold category codes."""
        return [j for j, c in enumerate(self.features) if c in self.categories]

    @property
    def numeric_positions(self) -> list[int]:
        """Columns of :meth:`matrix` that hold numbers."""
        return [j for j, c in enumerate(self.features) if c not in self.categories]

    # ------------------------------------------------------------------ state
    def to_dict(self) -> dict:
        """The JSON-able state (features, categories, medians)."""
        return {"features": list(self.features), "categorical": list(self.categorical),
                "categories": self.categories, "medians": self.medians}

    @classmethod
    def from_dict(cls, d: dict, *, model: str = "model") -> "FeatureEncoder":
        """The encoder :meth:`to_dict` described."""
        return cls(d["features"], d.get("categorical", ()), categories=d.get("categories"),
                   medians=d.get("medians"), model=model)
