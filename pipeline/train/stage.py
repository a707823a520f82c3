"""The train stage: fit the config's models on the feature table and save them.

:func:`train_models` reads ``<run_dir>/features`` (written by ``terrascale features``), builds the
task's :class:`~pipeline.models.TaskSpec` from the table's ``features.json`` (:func:`lai_task_spec`),
carves a validation set out of whole training blocks (:func:`split_rows`), fits every config entry
whose kind supports the task and saves it to ``<run_dir>/models/<task>/<name>``, with a summary in
``<run_dir>/models/<task>/training.json`` (the records of the models trained before and not
retrained are kept).

Only the LAI task is built from the feature table for now; the LULC table comes with the run stage
and takes the same path (a spec and a table with ``fold`` and ``split`` columns).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError, InputDataError
from pipeline.models.base import TaskSpec

__all__ = [
    "NON_FEATURE_COLUMNS", "fit_model", "lai_task_spec", "sample_training_rows", "split_rows", "task_entries",
    "train_models",
    "validation_score",
]

#: columns of the feature table that are never predictors: row identity and the split bookkeeping
NON_FEATURE_COLUMNS: tuple[str, ...] = ("scenario", "time", "cell", "fold", "split")


def lai_task_spec(meta: dict, *, land_cover: str = "igbp") -> TaskSpec:
    """The LAI task of a feature table, from its ``features.json`` metadata.

    Every column except the row identity (``scenario``, ``time``, ``cell``), the target and the
    split bookkeeping (``fold``, ``split``) is a predictor. ``year`` stays a predictor when the
    table has it: the features stage writes it as one (the trend of the scenarios), and a model
    that should not see it can be given a table without it.

    Parameters
    ----------
    meta : dict
        The table's metadata (:func:`pipeline.features.table_meta`): ``columns``, ``categories``,
        ``target`` and ``grid`` (``lat``/``lon`` lists).
    land_cover : str
        Column of the land-cover class (the climatology baseline's groups).

    Returns
    -------
    TaskSpec
    """
    target = meta["target"]
    drop = {*NON_FEATURE_COLUMNS, target}
    features = tuple(c for c in meta["columns"] if c not in drop)
    categorical = tuple(c for c in features if c in meta.get("categories", {}))
    grid = meta.get("grid") or {}
    grid_shape = (len(grid["lat"]), len(grid["lon"])) if grid.get("lat") and grid.get("lon") else ()
    return TaskSpec(task="lai", target=target, features=features, categorical=categorical, land_cover=land_cover,
                    time="time", grid_shape=grid_shape)


def split_rows(df: pd.DataFrame, spec: TaskSpec, training, *, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training rows and a validation set of whole spatial blocks carved from them.

    Validation rows are those of randomly chosen training folds (``fold >= 0``) whose rows total
    about ``training.validation_fraction`` of the training rows, at least one fold when the
    fraction is positive: whole blocks, so that early stopping is scored on cells the model did not
    see, as the test is. Test, buffer and excluded rows are never used.

    Parameters
    ----------
    df : pandas.DataFrame
        The table, with ``fold`` (int, -1: no fold) and ``split`` (train/test/buffer/excluded).
    spec : TaskSpec
        The task (its target must be a column).
    training : pipeline.config.TrainingConfig
        ``validation_fraction`` (0: no validation rows).
    seed : int
        The run's seed (which folds are drawn).

    Returns
    -------
    train_df, valid_df : pandas.DataFrame
        Disjoint; ``valid_df`` is empty when no validation is asked for or fewer than two
        training folds exist (one must stay for training).
    """
    for col in ("fold", "split", spec.target):
        if col not in df.columns:
            raise InputDataError(f"the training table has no {col!r} column; rebuild it with `terrascale features`")
    rows = df[(df["split"] == "train").to_numpy()]
    empty = rows.iloc[:0]
    frac = float(training.validation_fraction)
    folds = rows["fold"].to_numpy()
    counts = pd.Series(folds[folds >= 0]).value_counts().sort_index()
    if frac <= 0 or len(counts) < 2:
        return rows, empty  # no validation asked for, or no fold to spare for it
    # a seeded order of the folds, then the shortest prefix that reaches the asked share
    order = np.random.default_rng(seed).permutation(counts.index.to_numpy())
    goal, total, chosen = frac * len(rows), 0, []
    for f in order:
        if chosen and total >= goal:
            break
        if len(chosen) + 1 >= len(order):
            break  # keep at least one fold for training
        chosen.append(int(f))
        total += int(counts[f])
    is_valid = np.isin(folds, chosen)
    train_df, valid_df = rows[~is_valid], rows[is_valid]
    assert (valid_df["split"] == "train").all(), "validation rows must come from training blocks only"
    return train_df, valid_df


def sample_training_rows(df: pd.DataFrame, n: int | None, seed: int, notify=None) -> pd.DataFrame:
    """``n`` rows drawn from ``df`` (seeded); all of them, and a note to ``notify``, when ``n`` exceeds them."""
    if n is None or n >= len(df):
        if n is not None and n > len(df) and notify is not None:
            notify(f"training.sample_rows {n:,} exceeds the {len(df):,} training rows; using the whole table")
        return df
    return df.sample(n=n, random_state=seed)


def _rmse(pred, y) -> float | None:
    pred, y = np.asarray(pred, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(pred) & np.isfinite(y)
    return float(np.sqrt(np.mean((pred[ok] - y[ok]) ** 2))) if ok.any() else None


def _log_loss(probs, y, classes) -> float | None:
    probs = np.asarray(probs, dtype=np.float64)
    idx = np.searchsorted(np.asarray(classes), np.asarray(y))
    ok = (idx < len(classes)) & (np.asarray(classes)[np.minimum(idx, len(classes) - 1)] == np.asarray(y))
    if not ok.any():
        return None
    p = np.clip(probs[np.flatnonzero(ok), idx[ok]], 1e-12, 1.0)
    return float(-np.mean(np.log(p)))


def validation_score(model, spec: TaskSpec, valid_df: pd.DataFrame) -> float | None:
    """The model's score on the validation rows: RMSE (LAI) or log loss (LULC); lower is better."""
    if valid_df is None or not len(valid_df):
        return None
    y = valid_df[spec.target].to_numpy()
    pred = model.predict(valid_df)
    return _rmse(pred, y) if spec.task == "lai" else _log_loss(pred, y, spec.classes)


def task_entries(cfg, task: str, *, notify: Callable[[str], None] | None = None) -> list:
    """The config's model entries trained for ``task``: their kind supports it and their ``tasks`` (if set) name it."""
    from pipeline.models.registry import model_class

    out = []
    for entry in cfg.models:
        name = entry.name or entry.kind
        if entry.tasks is not None and task not in entry.tasks:
            continue
        if task not in model_class(entry.kind).tasks:
            if entry.tasks is not None:
                raise ConfigError(f"model {name!r} ({entry.kind}) is listed for the {task} task, which its kind does "
                                  f"not support (it supports: {', '.join(sorted(model_class(entry.kind).tasks))})")
            if notify is not None:
                notify(f"skipping {name} ({entry.kind}): it does not support the {task} task")
            continue
        out.append(entry)
    return out


def fit_model(entry, spec: TaskSpec, train_df: pd.DataFrame, valid_df: pd.DataFrame, cfg, *, out_dir: Path,
              checkpoint_dir: Path | None = None, client=None, progress: Callable[[dict], None] | None = None,
              device: str = "cpu") -> dict:
    """Fit one config entry on the training rows, save it to ``out_dir/<name>`` and describe the fit.

    Parameters
    ----------
    entry : pipeline.config.ModelEntry
        The model.
    spec : TaskSpec
        The task.
    train_df, valid_df : pandas.DataFrame
        Training rows (already sampled) and validation rows (whole blocks; may be empty).
    cfg : pipeline.config.RunConfig
        ``training`` and ``seed``.
    out_dir : Path
        Directory of the task's models.
    checkpoint_dir : Path, optional
        Where a deep model checkpoints each epoch (resumed from when present and ``training.resume``).
    client : distributed.Client, optional
        Fit through the cluster (:func:`pipeline.train.fit_on_cluster`) instead of in-process.
    progress : callable, optional
        Called once per epoch of a deep model with ``{"model", "epoch", "max_epochs", "train_loss", "valid_loss"}``.
    device : str
        ``cpu`` or ``cuda``.

    Returns
    -------
    dict
        ``name``, ``kind``, ``family``, ``task``, ``fit_seconds``, ``rows``, ``valid_rows``, ``path``,
        ``valid_score`` (RMSE for LAI, log loss for LULC; ``None`` without validation rows), ``how``
        (in-process or the cluster path) and ``history`` (per-epoch losses of a deep model).
    """
    from pipeline.models.registry import create_model

    name = entry.name or entry.kind
    model = create_model(entry, spec, device=device, seed=cfg.seed)
    if hasattr(model, "configure_training"):
        model.configure_training(cfg.training, checkpoint_dir=checkpoint_dir)
    X_valid = valid_df if len(valid_df) else None
    y_valid = valid_df[spec.target].to_numpy() if len(valid_df) else None
    how = {"how": "in-process"}
    t0 = time.perf_counter()
    if client is not None:
        from pipeline.train.on_cluster import fit_on_cluster

        how = fit_on_cluster(model, client, train_df, train_df[spec.target].to_numpy(), X_valid=X_valid,
                             y_valid=y_valid, training=cfg.training, progress=progress)
    else:
        if progress is not None and hasattr(model, "on_epoch"):
            model.on_epoch = progress
        model.fit(train_df, train_df[spec.target].to_numpy(), X_valid=X_valid, y_valid=y_valid)
    fit_seconds = time.perf_counter() - t0
    saved = model.save(out_dir / name)
    history = list(getattr(model, "history", None) or [])
    return {"name": name, "kind": entry.kind, "family": model.family, "task": spec.task,
            "fit_seconds": round(fit_seconds, 3), "rows": len(train_df), "valid_rows": len(valid_df),
            "path": str(saved), "valid_score": validation_score(model, spec, valid_df), "history": history,
            "device": device, **how}


def train_models(cfg, *, task: str = "lai", models: Sequence[str] | None = None,
                 notify: Callable[[str], None] | None = None, table: pd.DataFrame | None = None,
                 spec: TaskSpec | None = None, client=None, progress: Callable[[dict], None] | None = None) -> list[dict]:
    """Fit and save the config's models for one task.

    Every model is fitted on a sample of ``training.sample_rows`` training rows, in-process or,
    given a ``client``, through the cluster (:func:`pipeline.train.fit_on_cluster`).

    Parameters
    ----------
    cfg : pipeline.config.RunConfig
        The run (``models``, ``training``, ``seed``, ``backend``, ``run_dir``).
    task : {"lai", "lulc"}
        The task. ``lai`` reads ``<run_dir>/features``; ``lulc`` needs ``table`` and ``spec``.
    models : sequence of str, optional
        Names of config entries to train (default: all trained for the task).
    notify : callable, optional
        Called with one line per event (a skipped model, a sample larger than the table).
    table, spec : optional
        A table and its spec to train on instead of the feature table (the LULC table).
    client : distributed.Client, optional
        The cluster to fit on.
    progress : callable, optional
        Per-epoch events of the deep models (:func:`fit_model`).

    Returns
    -------
    list of dict
        One record per model (:func:`fit_model`).

    Raises
    ------
    InputDataError
        No feature table in the run directory.
    ConfigError
        A ``models`` name not in the config, or no model of the config supports the task.
    """
    from pipeline.backend import resolve_backend
    from pipeline.io import write_text_atomically

    run_dir = Path(cfg.run_dir)
    names = [e.name or e.kind for e in cfg.models]
    if models:
        unknown = [m for m in models if m not in names]
        if unknown:
            raise ConfigError(f"model(s) {', '.join(unknown)} not in the config; its models are: "
                              f"{', '.join(names) or '(none)'}")
    if table is None or spec is None:
        if task != "lai":
            raise ConfigError(f"the {task} task needs its table and spec (`terrascale run` builds the LULC table)")
        from pipeline.features import META_FILE, read_feature_table, table_meta

        path = run_dir / "features"
        if not (path / META_FILE).exists():
            raise InputDataError(f"no feature table in {path}; run `terrascale features CONFIG` first")
        meta = table_meta(path)
        spec = lai_task_spec(meta)
        table = read_feature_table(path, backend="cpu")
    train_df, valid_df = split_rows(table, spec, cfg.training, seed=cfg.seed)
    train_df = train_df[np.isfinite(train_df[spec.target].to_numpy(np.float64))] if spec.task == "lai" else train_df
    valid_df = valid_df[np.isfinite(valid_df[spec.target].to_numpy(np.float64))] if spec.task == "lai" else valid_df
    if train_df.empty:
        raise InputDataError(f"the {task} table has no training rows with a target (split == 'train')")
    device = "cuda" if resolve_backend(cfg.backend).name == "gpu" else "cpu"
    entries = [e for e in task_entries(cfg, task, notify=notify) if not models or (e.name or e.kind) in models]
    if not entries:
        raise ConfigError(f"no model of the config supports the {task} task")
    rows = sample_training_rows(train_df, cfg.training.sample_rows, cfg.seed, notify)
    out_dir = run_dir / "models" / task
    results = []
    for entry in entries:
        name = entry.name or entry.kind
        results.append(fit_model(entry, spec, rows, valid_df, cfg, out_dir=out_dir,
                                 checkpoint_dir=run_dir / "checkpoints" / task / name, client=client,
                                 progress=progress, device=device))
    # a run of some models (``--model``) keeps the records of the others trained before
    record = out_dir / "training.json"
    done = {r["name"] for r in results}
    kept = [r for r in _read_records(record) if r.get("name") not in done]
    write_text_atomically(record, json.dumps(kept + results, indent=1))
    return results


def _read_records(path: Path) -> list[dict]:
    try:
        records = json.loads(path.read_text())
    except (OSError, ValueError):
        return []  # none yet, or unreadable: it is rewritten whole
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []
