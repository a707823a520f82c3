"""A multilayer perceptron on the table's rows (both tasks), with the exact constraint layers.

Inputs: the numeric features standardised, each categorical feature through an embedding
(``params.embedding_dim`` wide). Hidden layers ``params.hidden`` with ReLU and dropout.

LULC
    A softmax over ``spec.classes``. With ``params.constrained`` and the parent, area and group
    fraction columns in the table, training applies the differentiable balancing
    (:func:`~pipeline.models.constraints.balance_lulc_torch`, batches of whole coarse cells) and
    prediction the exact projection (:func:`~pipeline.models.constraints.balance_lulc`), so every
    coarse cell's group fractions are reproduced to 1e-9.
LAI
    A non-negative regression (softplus output). In downscaling mode (``spec.coarse_target`` set,
    ``params.constrained``, parent and area columns present) the multiplicative correction makes
    every coarse cell's area-weighted mean equal its coarse LAI, in training and prediction.

The constraints hold over the rows of one ``predict`` call: give it whole coarse cells.

Every epoch reports a validation score besides the loss: the accuracy (LULC) or the RMSE in LAI
units (LAI). As one rank of a data-parallel group (:attr:`~pipeline.models.deep.DeepModel.data_parallel`,
set by :func:`pipeline.train.fit_on_cluster`) the model trains on its share of every batch.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import nn

from pipeline.config.models import MLPParams
from pipeline.errors import ConfigError, InputDataError
from pipeline.models.constraints import balance_lulc_torch, correct_lai_torch
from pipeline.models.deep import TRAIN_SINKHORN_ITER, DeepModel, TableEncoder, lai_scale
from pipeline.models.deep.loop import ValidScore, block_batches, row_batches, train_epochs

__all__ = ["MLPModel"]

#: rows per forward pass at prediction (bounds memory, not results)
PREDICT_CHUNK = 65536


class _MLPNet(nn.Module):
    """Embeddings of the categorical columns, concatenated with the numeric ones, then an MLP."""

    def __init__(self, n_numeric: int, cardinalities: list[int], embedding_dim: int, hidden: list[int],
                 dropout: float, n_out: int):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c, embedding_dim) for c in cardinalities)
        layers: list[nn.Module] = []
        width = n_numeric + len(cardinalities) * embedding_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, n_out))
        self.body = nn.Sequential(*layers)

    def forward(self, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        parts = [num] + [emb(cat[:, j]) for j, emb in enumerate(self.embeddings)]
        return self.body(torch.cat(parts, dim=1))


def _with_block_targets(factory, targets: torch.Tensor):
    """Replace the batches' global block indices by those blocks' coarse targets."""

    def wrapped(generator, epoch):
        for batch in factory(generator, epoch):
            yield (*batch[:-1], targets[batch[-1]])

    return wrapped


class MLPModel(DeepModel):
    """Multilayer perceptron on the table (PyTorch), with exact conservation constraint layers."""

    kind = "mlp"
    tasks = frozenset({"lulc", "lai"})
    params_type = MLPParams
    state_file = "mlp.json"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if any(h < 1 for h in self.params.hidden):
            raise ConfigError(f"model {self.name!r} (mlp): params.hidden {list(self.params.hidden)} must list "
                              "layer widths of at least 1")
        self.net: _MLPNet | None = None

    # ------------------------------------------------------------------ pieces
    def _build(self) -> _MLPNet:
        p = self.params
        n_out = self.spec.n_classes if self.spec.task == "lulc" else 1
        # the initial weights depend on the model's seed only, not on the process's random state
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = _MLPNet(len(self.encoder.numeric), self.encoder.cardinalities, p.embedding_dim, list(p.hidden),
                          p.dropout, n_out)
        return net.to(self.torch_device())

    def _inputs(self, X: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        num, cat = self.encoder.transform(X, self.name)
        dev = self.torch_device()
        return torch.from_numpy(num).to(dev), torch.from_numpy(cat).to(dev)

    def _targets(self, y: np.ndarray) -> torch.Tensor:
        dev = self.torch_device()
        if self.spec.task == "lulc":
            return torch.from_numpy(self.class_indices(y)).to(dev)
        return torch.from_numpy(np.asarray(y, dtype=np.float32)).to(dev)

    def _data(self, X: pd.DataFrame, y: np.ndarray, shuffle: bool):
        """Training or validation batches: whole blocks when the constraint applies, else rows."""
        num, cat = self._inputs(X)
        yt = self._targets(y)
        batch_size = self.training.batch_size
        rank, world = self.data_parallel
        cons = self.constraint_inputs(X)
        if cons is None:
            return row_batches((num, cat, yt), batch_size, shuffle=shuffle, rank=rank, world_size=world)
        dev = self.torch_device()
        # only area ratios within a coarse cell matter; scaling to ~1 keeps float32 sums accurate
        area = cons["area"] / max(float(np.mean(cons["area"])), 1e-300)
        area_t = torch.from_numpy(area.astype(np.float32)).to(dev)
        key = "fractions" if self.spec.task == "lulc" else "coarse"
        targets = torch.from_numpy(np.asarray(cons[key], dtype=np.float32)).to(dev)
        factory = block_batches((num, cat, yt, area_t), cons["block"], batch_size, shuffle=shuffle, rank=rank,
                                world_size=world)
        return _with_block_targets(factory, targets)

    def _loss(self, net: nn.Module, batch) -> torch.Tensor:
        out = net(batch[0], batch[1])
        if len(batch) == 6:  # whole blocks with their coarse targets: the constraint layer applies
            area, local, targets = batch[3], batch[4], batch[5]
            return self.row_loss(out, batch[2], (None, local, area, targets))
        return self.row_loss(out, batch[2])

    def _score_batch(self, net: nn.Module, batch) -> tuple:
        """(correct rows, rows) for LULC, (squared error in LAI units, rows with a target) for LAI."""
        y = batch[2]
        if y.shape[0] == 0:
            return 0.0, 0
        out = net(batch[0], batch[1]).float()
        blocks = len(batch) == 6  # whole blocks with their coarse targets: the training constraint applies
        if self.spec.task == "lulc":
            probs = torch.softmax(out, dim=1)
            if blocks:
                probs = balance_lulc_torch(probs, batch[4], batch[3], self._cg_t, batch[5], n_iter=TRAIN_SINKHORN_ITER)
            return float((probs.argmax(dim=1) == y).sum()), int(y.shape[0])
        pred = self.activate(out)
        if blocks:
            pred = correct_lai_torch(pred, batch[4], batch[3], batch[5])
        ok = torch.isfinite(y)
        return float(((pred[ok] - y[ok]) ** 2).sum()), int(ok.sum())

    def validation_score(self) -> ValidScore:
        """Accuracy (LULC) or RMSE in LAI units (LAI) of the validation rows, every epoch."""
        if self.spec.task == "lulc":
            return ValidScore("accuracy", self._score_batch)
        return ValidScore("rmse", self._score_batch, math.sqrt)

    # ------------------------------------------------------------------ Model interface
    def _fit(self, X: pd.DataFrame, y: np.ndarray, X_valid, y_valid) -> None:
        if self.spec.task == "lai":
            X, y = self._finite_rows(X, y)
            if X_valid is not None:
                X_valid, y_valid = self._finite_rows(X_valid, y_valid)
            self.y_mean, self.y_std = lai_scale(y.astype(np.float64))
        self.encoder = TableEncoder.for_spec(self.spec).fit(X, self.name)
        cg = self.class_groups() if self.spec.task == "lulc" else None
        self._cg_t = None if cg is None else torch.from_numpy(cg).to(self.torch_device())
        self.net = self._build()
        train = self._data(X, y, shuffle=True)
        valid = None if X_valid is None or len(X_valid) == 0 else self._data(X_valid, y_valid, shuffle=False)
        result = train_epochs(self.net, self._loss, train, valid, **self.loop_kwargs(),
                              fingerprint=self.fingerprint(rows=len(X), valid_rows=0 if valid is None else len(X_valid),
                                                           encoder=self.encoder.to_dict(), y=[self.y_mean, self.y_std]))
        self.history = result.history

    def _finite_rows(self, X: pd.DataFrame, y) -> tuple[pd.DataFrame, np.ndarray]:
        """LAI rows with a target (gaps in the observations are not learnt from)."""
        y = np.asarray(y, dtype=np.float64)
        ok = np.isfinite(y)
        if not ok.any():
            raise InputDataError(f"model {self.name!r}: every LAI target is missing")
        return (X, y) if ok.all() else (X.loc[ok], y[ok])

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        num, cat = self._inputs(X)
        self.net.eval()
        outs = []
        with torch.no_grad():
            for lo in range(0, len(X), PREDICT_CHUNK):
                outs.append(self.activate(self.net(num[lo:lo + PREDICT_CHUNK], cat[lo:lo + PREDICT_CHUNK])).cpu())
        n_out = self.spec.n_classes if self.spec.task == "lulc" else None
        if outs:
            pred = torch.cat(outs).numpy().astype(np.float64)
        else:
            pred = np.zeros((0, n_out) if n_out else 0)
        return self.apply_constraint(X, pred)
