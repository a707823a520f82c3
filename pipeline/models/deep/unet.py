"""A U-Net on the fine grid (both tasks), trained on random patches, predicted in blended tiles.

The table's rows are scattered onto images of the fine grid through the ``spec.cell`` column
(flat C-order index over ``spec.grid_shape``), one image per time step (``spec.time`` when the
table has that column), cropped to the bounding box of the rows (the region). Channels: the
standardised numeric features, a mask channel (1 where the table has the cell), and the
categorical features through embeddings (``params.embedding_dim`` wide); cells absent from the table
get zero inputs and no loss.

The network: ``params.depth`` resolution levels (two 3x3 convolutions with reflect padding and
ReLU each, average pooling down, nearest upsampling and skip connections up), ``params.base_channels``
channels at the finest level, doubling per level. Training draws random ``params.patch_size``
patches (``training.batch_size // patch_size²`` per batch, at least one); prediction covers each
image with tiles overlapping by ``params.overlap`` blended by :func:`~pipeline.models.deep.tiling.predict_tiled`.

Constraints as in the MLP: in training the differentiable layers act on the blocks (coarse
cell × time step) that lie wholly inside a patch; at prediction the exact NumPy projection runs on
the rows of the call (give it whole coarse cells).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from pipeline.config.models import UNetParams
from pipeline.errors import ConfigError, InputDataError
from pipeline.models.deep import DeepModel, TableEncoder, lai_scale
from pipeline.models.deep.loop import train_epochs
from pipeline.models.deep.tiling import predict_tiled, reflect_indices, tile_starts

__all__ = ["UNetModel"]

#: expected number of times a training epoch's patches cover each cell of the region
EPOCH_COVERAGE = 2.0


class _ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        # reflect padding: the region's edge cells see a mirror of their neighbours, not zeros
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1, padding_mode="reflect"), nn.ReLU())


class _UNetNet(nn.Module):
    """U-Net on (B, numeric + mask + categorical, H, W) inputs, categorical channels as indices."""

    def __init__(self, n_numeric: int, cardinalities: list[int], depth: int, base: int, n_out: int, embedding_dim: int):
        super().__init__()
        self.n_dense = n_numeric + 1  # numeric channels and the mask
        self.embeddings = nn.ModuleList(nn.Embedding(c, embedding_dim) for c in cardinalities)
        chans = [base * 2**level for level in range(depth)]
        cin = self.n_dense + len(cardinalities) * embedding_dim
        self.down = nn.ModuleList()
        for ch in chans:
            self.down.append(_ConvBlock(cin, ch))
            cin = ch
        self.up = nn.ModuleList(_ConvBlock(chans[level + 1] + chans[level], chans[level])
                                for level in range(depth - 2, -1, -1))
        self.head = nn.Conv2d(chans[0], n_out, 1)
        self.factor = 2 ** (depth - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        ph, pw = (-H) % self.factor, (-W) % self.factor
        if ph or pw:  # pooling needs sizes divisible by 2^(depth-1); cropped again below
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        parts = [x[:, :self.n_dense]]
        cat = x[:, self.n_dense:].round().long()
        parts += [emb(cat[:, j]).permute(0, 3, 1, 2) for j, emb in enumerate(self.embeddings)]
        h = torch.cat(parts, dim=1)
        skips = []
        for level, block in enumerate(self.down):
            if level:
                h = F.avg_pool2d(h, 2)
            h = block(h)
            skips.append(h)
        for k, block in enumerate(self.up):
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = block(torch.cat([h, skips[-2 - k]], dim=1))
        return self.head(h)[..., :H, :W]


class _Images:
    """A table's rows as images: inputs, targets, constraint blocks, and where each row went."""

    x: np.ndarray  # (T, C, H, W) float32
    y: np.ndarray | None  # (T, H, W): LULC class index (-1: none) or LAI (NaN: none)
    block: np.ndarray | None  # (T, H, W) block index (-1: none)
    area: np.ndarray | None  # (T, H, W) fine cell area (relative)
    t: np.ndarray
    r: np.ndarray
    c: np.ndarray


class UNetModel(DeepModel):
    """U-Net on patches of the fine grid (PyTorch), tiles blended by a Gaussian window."""

    kind = "unet"
    tasks = frozenset({"lulc", "lai"})
    params_type = UNetParams
    state_file = "unet.json"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        p = self.params
        if p.patch_size < 2**p.depth:
            raise ConfigError(f"model {self.name!r} (unet): params.patch_size {p.patch_size} is too small for "
                              f"params.depth {p.depth}; it needs at least {2**p.depth} (2^depth) cells")
        if p.overlap >= p.patch_size:
            raise ConfigError(f"model {self.name!r} (unet): params.overlap {p.overlap} must be smaller than "
                              f"params.patch_size {p.patch_size}")
        self.net: _UNetNet | None = None

    # ------------------------------------------------------------------ table ↔ images
    def _grid(self) -> tuple[int, int]:
        shape = tuple(self.spec.grid_shape)
        if len(shape) != 2 or min(shape) < 1:
            raise ConfigError(f"model {self.name!r} (unet) needs the fine grid's shape (TaskSpec.grid_shape = "
                              f"(nlat, nlon)) to place the rows on the grid; got {shape}")
        return shape

    def _images(self, X: pd.DataFrame, y=None, *, with_blocks: bool = False) -> _Images:
        spec = self.spec
        nlat, nlon = self._grid()
        if spec.cell not in X.columns:
            raise InputDataError(f"model {self.name!r} (unet): the table has no cell column {spec.cell!r}")
        cell = X[spec.cell].to_numpy()
        if cell.dtype.kind not in "iu" or (len(cell) and (cell.min() < 0 or cell.max() >= nlat * nlon)):
            raise InputDataError(f"model {self.name!r} (unet): column {spec.cell!r} must hold integer cell indices "
                                 f"in [0, {nlat * nlon}) of the {nlat} x {nlon} grid")
        row, col = np.divmod(cell.astype(np.int64), nlon)
        if spec.time in X.columns:
            t = pd.factorize(X[spec.time])[0].astype(np.int64)
            if np.any(t < 0):
                raise InputDataError(f"model {self.name!r} (unet): column {spec.time!r} has missing time stamps")
        else:
            t = np.zeros(len(X), dtype=np.int64)
        T = int(t.max()) + 1
        r0, c0 = int(row.min()), int(col.min())
        H, W = int(row.max()) - r0 + 1, int(col.max()) - c0 + 1
        r, c = row - r0, col - c0
        flat = (t * H + r) * W + c
        if np.unique(flat).size != flat.size:
            raise InputDataError(f"model {self.name!r} (unet): some cell appears twice at the same time step; "
                                 f"the table must have one row per cell ({spec.cell!r}) and time ({spec.time!r})")
        num, cat = self.encoder.transform(X, self.name)
        n_num = num.shape[1]
        img = _Images()
        img.x = np.zeros((T, n_num + 1 + cat.shape[1], H, W), dtype=np.float32)
        img.x[t, :n_num, r, c] = num
        img.x[t, n_num, r, c] = 1.0
        img.x[t, n_num + 1:, r, c] = cat.astype(np.float32)
        img.t, img.r, img.c = t, r, c
        img.y = img.block = img.area = None
        if y is not None:
            if self.spec.task == "lulc":
                img.y = np.full((T, H, W), -1, dtype=np.int64)
                img.y[t, r, c] = self.class_indices(y)
            else:
                img.y = np.full((T, H, W), np.nan, dtype=np.float32)
                img.y[t, r, c] = np.asarray(y, dtype=np.float32)
        cons = self.constraint_inputs(X) if with_blocks else None
        if cons is not None:
            img.block = np.full((T, H, W), -1, dtype=np.int64)
            img.block[t, r, c] = cons["block"]
            img.area = np.zeros((T, H, W), dtype=np.float32)
            img.area[t, r, c] = cons["area"] / max(float(np.mean(cons["area"])), 1e-300)
            key = "fractions" if self.spec.task == "lulc" else "coarse"
            img.targets = np.asarray(cons[key], dtype=np.float32)
            img.block_rows = np.bincount(cons["block"], minlength=cons["n_blocks"])
        return img

    # ------------------------------------------------------------------ batches and loss
    def _tensors(self, img: _Images) -> dict:
        dev = self.torch_device()
        d = {"x": torch.from_numpy(img.x).to(dev), "y": torch.from_numpy(img.y).to(dev)}
        if img.block is not None:
            d.update(block=torch.from_numpy(img.block).to(dev), area=torch.from_numpy(img.area).to(dev),
                     targets=torch.from_numpy(img.targets).to(dev),
                     block_rows=torch.from_numpy(img.block_rows).to(dev))
        return d

    @staticmethod
    def _cut(d: dict, starts: list[tuple[int, int, int]], p: int) -> tuple:
        """Patches at (time, row, col) starts: (x, y[, block, area])."""
        keys = ["x", "y"] + (["block", "area"] if "block" in d else [])
        return tuple(torch.stack([d[k][t, ..., r:r + p, c:c + p] for t, r, c in starts]) for k in keys)

    def _train_factory(self, d: dict, n_rows: int):
        p = self.params.patch_size
        T, _, H, W = d["x"].shape
        per_batch = max(1, self.training.batch_size // (p * p))
        n_patches = max(per_batch, math.ceil(EPOCH_COVERAGE * n_rows / (p * p)))

        def factory(generator, epoch):
            for lo in range(0, n_patches, per_batch):
                b = min(per_batch, n_patches - lo)
                ts = torch.randint(T, (b,), generator=generator).tolist()
                rs = torch.randint(H - p + 1, (b,), generator=generator).tolist()
                cs = torch.randint(W - p + 1, (b,), generator=generator).tolist()
                yield self._cut(d, list(zip(ts, rs, cs)), p)

        return factory

    def _valid_factory(self, d: dict):
        """Fixed tiles covering every validation image (reflect-padded when smaller than a patch)."""
        p = self.params.patch_size
        T, _, H, W = d["x"].shape
        if H < p or W < p:
            d = self._pad(d, p)
            H, W = d["x"].shape[-2:]
        starts = [(t, r, c) for t in range(T) for r in tile_starts(H, p, 0).tolist()
                  for c in tile_starts(W, p, 0).tolist()]
        per_batch = max(1, self.training.batch_size // (p * p))

        def factory(generator, epoch):
            for lo in range(0, len(starts), per_batch):
                yield self._cut(d, starts[lo:lo + per_batch], p)

        return factory

    @staticmethod
    def _pad(d: dict, p: int) -> dict:
        """Inputs reflect-padded up to a patch; the padding has no target and no block."""
        _, _, H, W = d["x"].shape
        ph, pw = max(0, p - H), max(0, p - W)
        dev = d["x"].device
        rows = torch.from_numpy(reflect_indices(H, 0, ph)).to(dev)
        cols = torch.from_numpy(reflect_indices(W, 0, pw)).to(dev)
        out = dict(d)
        out["x"] = d["x"].index_select(2, rows).index_select(3, cols)
        fill = {"y": -1 if d["y"].dtype == torch.int64 else math.nan, "block": -1, "area": 0.0}
        for k, v in fill.items():
            if k in d:
                out[k] = F.pad(d[k], (0, pw, 0, ph), value=v)
        return out

    def _loss(self, net: nn.Module, batch, d_blocks: dict | None) -> torch.Tensor:
        x, y = batch[0], batch[1]
        out = net(x)  # (B, n_out, p, p)
        B, n_out = out.shape[:2]
        present = x[:, self.encoder_n_dense - 1] > 0.5  # the mask channel
        if self.spec.task == "lulc":
            present = present & (y >= 0)
        rows_out = out.permute(0, 2, 3, 1)[present]  # (n, n_out)
        rows_y = y[present]
        if len(batch) == 2 or d_blocks is None:
            return self.row_loss(rows_out, rows_y)
        block = batch[2][present]
        area = batch[3][present]
        patch = torch.arange(B, device=x.device)[:, None, None].expand(B, *x.shape[-2:])[present]
        # a block counts only when all its rows lie in this patch (patches cut through coarse cells)
        n_blocks = d_blocks["block_rows"].shape[0]
        key = torch.where(block >= 0, patch * n_blocks + block, torch.full_like(block, -1))
        ukey, inverse, counts = torch.unique(key, return_inverse=True, return_counts=True)
        ublock = torch.where(ukey >= 0, ukey % n_blocks, torch.zeros_like(ukey))
        whole = (ukey >= 0) & (counts == d_blocks["block_rows"][ublock])
        sel = whole[inverse]
        local = (torch.cumsum(whole.long(), 0) - 1)[inverse][sel]
        targets = d_blocks["targets"][ublock[whole]]
        return self.row_loss(rows_out, rows_y, (sel, local, area[sel], targets))

    # ------------------------------------------------------------------ Model interface
    def _build(self) -> _UNetNet:
        p = self.params
        n_out = self.spec.n_classes if self.spec.task == "lulc" else 1
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = _UNetNet(len(self.encoder.numeric), self.encoder.cardinalities, p.depth, p.base_channels, n_out, p.embedding_dim)
        return net.to(self.torch_device())

    @property
    def encoder_n_dense(self) -> int:
        """Numeric channels plus the mask channel."""
        return len(self.encoder.numeric) + 1

    def _fit(self, X: pd.DataFrame, y: np.ndarray, X_valid, y_valid) -> None:
        p = self.params.patch_size
        if self.spec.task == "lai":
            yf = np.asarray(y, dtype=np.float64)
            if not np.isfinite(yf).any():
                raise InputDataError(f"model {self.name!r}: every LAI target is missing")
            self.y_mean, self.y_std = lai_scale(yf[np.isfinite(yf)])
        self.encoder = TableEncoder.for_spec(self.spec).fit(X, self.name)
        cg = self.class_groups() if self.spec.task == "lulc" else None
        self._cg_t = None if cg is None else torch.from_numpy(cg).to(self.torch_device())
        img = self._images(X, y, with_blocks=True)
        H, W = img.x.shape[-2:]
        if H < p or W < p:
            raise ConfigError(f"model {self.name!r} (unet): params.patch_size {p} is larger than the training "
                              f"region ({H} x {W} fine cells); set params.patch_size to at most {min(H, W)} "
                              "or train on a larger region")
        d = self._tensors(img)
        self.net = self._build()
        blocks = d if "block" in d else None
        train = self._train_factory(d, len(X))
        valid = None
        dv_blocks = None
        if X_valid is not None and len(X_valid):
            dv = self._tensors(self._images(X_valid, y_valid, with_blocks=True))
            dv_blocks = dv if "block" in dv else None
            valid = self._valid_factory(dv)

        def loss(net, batch):
            # validation batches come from their own images, with their own block tables
            own = blocks if net.training else dv_blocks
            return self._loss(net, batch, own)

        result = train_epochs(self.net, loss, train, valid, **self.loop_kwargs(),
                              fingerprint=self.fingerprint(rows=len(X), valid_rows=0 if valid is None else len(X_valid),
                                                           encoder=self.encoder.to_dict(), y=[self.y_mean, self.y_std],
                                                           region=[int(H), int(W)]))
        self.history = result.history

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        n_out = self.spec.n_classes if self.spec.task == "lulc" else 1
        if len(X) == 0:
            return np.zeros((0, n_out)) if self.spec.task == "lulc" else np.zeros(0)
        img = self._images(X)
        x = torch.from_numpy(img.x).to(self.torch_device())
        p = self.params
        self.net.eval()

        def fn(tiles):
            out = self.activate(self.net(tiles))
            return out if out.ndim == 4 else out[:, None]

        pred = np.empty((len(X), n_out))
        with torch.no_grad():
            for t in range(x.shape[0]):
                full = predict_tiled(fn, x[t], p.patch_size, p.overlap).cpu().numpy()
                rows = np.flatnonzero(img.t == t)
                pred[rows] = full[:, img.r[rows], img.c[rows]].T
        if self.spec.task == "lai":
            pred = pred[:, 0]
        else:  # blending is a convex combination; renormalise away the float32 rounding
            pred /= pred.sum(axis=1, keepdims=True)
        return self.apply_constraint(X, pred)
