"""Prediction of a whole image in overlapping tiles, blended without seams.

A fully convolutional network could run on the whole region at once, but not within a GPU's
memory at 1 km over a continent; so the image is cut into ``patch``-sized tiles that overlap by
``overlap`` cells, each tile is predicted, and the tiles are blended with a weight window:

* a Gaussian centred on the tile (σ = patch / 4), so that each cell leans on the tile that sees
  the most context around it, and the weights change smoothly from one tile to the next;
* times a ramp that is exactly 0 in the outer ``overlap // 4`` cells of every tile and rises
  (raised cosine) to 1 at ``overlap - overlap // 4`` cells from the tile edge: the cells next to a
  tile edge, which the network computed from padding instead of real context, never count, and
  no weight jumps, so no seam shows.

Consequences: a network whose receptive field reaches at most ``overlap // 4`` cells from the
output cell gives exactly the untiled prediction away from the image edges (to rounding), and a
constant prediction stays constant. The image is reflect-padded by ``overlap // 4`` cells (so the
edge tiles' zero margins fall on the padding) and up to one patch when it is smaller than a patch.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from pipeline.errors import ConfigError

__all__ = ["blend_window", "predict_tiled", "reflect_indices", "tile_starts"]


def reflect_indices(n: int, before: int, after: int) -> np.ndarray:
    """Indices into an axis of length ``n`` that reflect-pad it by ``before`` and ``after`` cells.

    Unlike :func:`torch.nn.functional.pad`, any padding works, also wider than the axis (the
    reflection repeats, like NumPy's ``mode="reflect"``); an axis of one cell is repeated.
    """
    i = np.arange(-before, n + after)
    if n == 1:
        return np.zeros(i.size, dtype=np.int64)
    period = 2 * (n - 1)
    i = np.mod(i, period)
    return np.where(i >= n, period - i, i).astype(np.int64)


def tile_starts(length: int, patch: int, overlap: int) -> np.ndarray:
    """Start offsets of tiles of ``patch`` cells covering ``length`` cells (``length >= patch``).

    Tiles step by ``patch - overlap``; the last one is aligned with the end (it overlaps its
    neighbour more).
    """
    step = patch - overlap
    starts = list(range(0, max(length - patch, 0) + 1, step))
    if starts[-1] + patch < length:
        starts.append(length - patch)
    return np.asarray(starts, dtype=np.int64)


def blend_window(patch: int, overlap: int) -> np.ndarray:
    """The (patch, patch) blending weights of one tile (see the module docstring)."""
    x = np.arange(patch, dtype=np.float64)
    gauss = np.exp(-0.5 * ((x - (patch - 1) / 2) / (patch / 4)) ** 2)
    d = np.minimum(x + 0.5, patch - x - 0.5)  # distance of the cell centre to the tile edge
    margin = overlap // 4
    width = overlap - 2 * margin
    if width <= 0:
        ramp = np.ones(patch)
    else:
        ramp = np.where(d <= margin, 0.0, np.sin(0.5 * math.pi * np.clip((d - margin) / width, 0.0, 1.0)) ** 2)
    w = gauss * ramp
    return np.outer(w, w)


def predict_tiled(fn: Callable[[torch.Tensor], torch.Tensor], image, patch: int, overlap: int, *,
                  batch: int = 8):
    """Apply ``fn`` to overlapping tiles of ``image`` and blend the tiles into one image.

    Parameters
    ----------
    fn : callable
        ``fn(tiles)`` maps (B, C, patch, patch) to (B, C_out, patch, patch).
    image : torch.Tensor or numpy.ndarray
        (C, H, W) input; any H, W >= 1 (reflect-padded when smaller than a patch).
    patch : int
        Tile size.
    overlap : int
        Cells shared by neighbouring tiles, ``0 <= overlap < patch``.
    batch : int
        Tiles per call of ``fn``.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        (C_out, H, W) blended prediction (NumPy if ``image`` was NumPy).
    """
    if not 0 <= overlap < patch:
        raise ConfigError(f"tile overlap {overlap} must be at least 0 and smaller than the patch size {patch}")
    as_numpy = isinstance(image, np.ndarray)
    img = torch.as_tensor(image)
    if img.ndim != 3:
        raise ValueError(f"image must be (channels, height, width), not {tuple(img.shape)}")
    _, H, W = img.shape
    margin = overlap // 4
    pads = []
    for n in (H, W):
        extra = max(0, patch - (n + 2 * margin))
        pads.append((margin + extra // 2, margin + extra - extra // 2))
    rows = torch.from_numpy(reflect_indices(H, *pads[0])).to(img.device)
    cols = torch.from_numpy(reflect_indices(W, *pads[1])).to(img.device)
    padded = img.index_select(1, rows).index_select(2, cols)
    Hp, Wp = padded.shape[1:]
    window = torch.from_numpy(blend_window(patch, overlap)).to(device=img.device)
    starts = [(r, c) for r in tile_starts(Hp, patch, overlap) for c in tile_starts(Wp, patch, overlap)]
    out = None
    wsum = torch.zeros((Hp, Wp), dtype=torch.float64, device=img.device)
    for lo in range(0, len(starts), batch):
        chunk = starts[lo:lo + batch]
        tiles = torch.stack([padded[:, r:r + patch, c:c + patch] for r, c in chunk])
        pred = fn(tiles)
        if out is None:
            out = torch.zeros((pred.shape[1], Hp, Wp), dtype=torch.float64, device=img.device)
        for k, (r, c) in enumerate(chunk):
            out[:, r:r + patch, c:c + patch] += pred[k].to(torch.float64) * window
            wsum[r:r + patch, c:c + patch] += window
    top, left = pads[0][0], pads[1][0]
    # every cell of the image has a positive weight (see the module docstring); the padding may not
    res = (out[:, top:top + H, left:left + W] / wsum[top:top + H, left:left + W]).to(img.dtype if img.is_floating_point()
                                                                                     else torch.float32)
    return res.cpu().numpy() if as_numpy else res
