"""The report's figures: matplotlib drawings returned as PNG bytes with a caption.

Every public function takes parts of a :class:`~pipeline.report.context.ReportContext` and returns
a :class:`RenderedFigure` ``(png, caption)``; the caption says what the figure shows, so that the
HTML never shows a figure without one.

Figures are built with :class:`matplotlib.figure.Figure` on an Agg canvas, never through
``pyplot``: no global figure registry (a long run making dozens of figures cannot leak them, and
rendering works in threads and without a display). Each figure is cleared once its PNG is saved.

Colours
-------
* LAI: a sequential green map (``YlGn``) from 0;
* errors (prediction − truth): a diverging map (``RdBu_r``) centred at 0 with symmetric limits
  (the 98th percentile of the absolute error, so that a few outliers do not wash the map out);
* IGBP classes: the class table's colours, with a legend of the classes present;
* PFT fractions: a sequential map (``viridis``) on 0..1;
* models: one colour each (``tab10``), the same in every figure when the caller passes ``colours``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm, to_hex
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from pipeline.report.context import OBSERVED, ConfusionMatrix, FieldMaps, GridMap, ObsPred

#: Dots per inch of the PNGs; the HTML shows them at 96 CSS px per inch, so they stay sharp on HiDPI screens.
DPI = 120
#: Width (inches) of a full-width figure: 1056 CSS px, the report's content width.
FULL_WIDTH = 11.0
LAI_CMAP = "YlGn"
ERROR_CMAP = "RdBu_r"
FRACTION_CMAP = "viridis"
COUNT_CMAP = "viridis"
CONFUSION_CMAP = "Blues"
# background of map axes: where a field has no data (sea, masked cells)
NO_DATA_COLOUR = "#e6e6e6"
COAST_COLOUR = "#202020"
N_CLASSES = 17  # IGBP values 0..16
#: Most cells drawn per map panel: a panel is a few hundred pixels wide, so more cells only cost time.
MAX_MAP_CELLS = 200_000
MONTHS = "JFMAMJJASOND"


class RenderedFigure(NamedTuple):
    """A figure as PNG bytes and the caption that says what it shows."""

    png: bytes
    caption: str


def _to_png(fig: Figure) -> bytes:
    """Render ``fig`` to PNG bytes with the Agg canvas and release its artists."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    # No "Software" metadata: matplotlib's names its home page, and the report must hold no address.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    fig.clear()
    return buf.getvalue()


def _new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _label(text) -> str:
    """Text safe to hand to matplotlib: ``$`` would start mathtext, a leading ``_`` hides a legend entry."""
    s = str(text).replace("$", r"\$")
    return " " + s if s.startswith("_") else s


def model_colours(models: Sequence[str]) -> dict[str, str]:
    """One colour per model (``tab10`` in order, then ``tab20``), for consistent figures.

    Parameters
    ----------
    models : sequence of str
        Model names in display order.

    Returns
    -------
    dict of str to str
        Model → hex colour.
    """
    palette = list(matplotlib.colormaps["tab10"].colors) + list(matplotlib.colormaps["tab20"].colors[1::2])
    return {m: to_hex(palette[k % len(palette)]) for k, m in enumerate(dict.fromkeys(models))}


def _colours_for(models: Sequence[str], colours: Mapping[str, str] | None) -> dict[str, str]:
    own = model_colours(models)
    return {m: (colours or {}).get(m, own[m]) for m in models}


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges of 1-D cell centres (half-way between centres, extrapolated at both ends)."""
    c = np.asarray(centres, dtype=np.float64)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[:-1] + c[1:]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _geo_axes(ax, lat: np.ndarray, lon: np.ndarray, *, left: bool = True, bottom: bool = True) -> None:
    """Lat/lon axes: degree labels, and an aspect that keeps a degree of longitude its true length."""
    ax.set_facecolor(NO_DATA_COLOUR)
    mid = float(np.clip(np.nanmean(lat), -80, 80))
    ax.set_aspect(1.0 / math.cos(math.radians(mid)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(_lon_text))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(_lat_text))
    ax.xaxis.set_major_locator(ticker.MaxNLocator(4))
    ax.yaxis.set_major_locator(ticker.MaxNLocator(4))
    ax.tick_params(labelsize=8, labelleft=left, labelbottom=bottom)


def _lon_text(x, _pos=None) -> str:
    x = (x + 180) % 360 - 180
    return f"{abs(x):g}°{'E' if x > 0 else 'W' if x < 0 else ''}"


def _lat_text(y, _pos=None) -> str:
    return f"{abs(y):g}°{'N' if y > 0 else 'S' if y < 0 else ''}"


def _coastline(ax, lat: np.ndarray, lon: np.ndarray, land_mask: np.ndarray | None) -> None:
    """The coastline as the 0.5 contour of the land mask (nothing to draw on all-land or all-sea maps)."""
    if land_mask is None:
        return
    m = np.asarray(land_mask, dtype=np.float64)
    if m.min() == m.max() or min(m.shape) < 2:
        return  # contour would warn "no contour levels were found"
    ax.contour(lon, lat, m, levels=[0.5], colors=COAST_COLOUR, linewidths=0.7)


def _mesh(ax, lat, lon, values, **kwargs):
    return ax.pcolormesh(_edges(lon), _edges(lat), np.ma.masked_invalid(values), shading="flat", **kwargs)


def _stride(lat: np.ndarray, lon: np.ndarray) -> int:
    """Every how many rows and columns a map is sampled so that a panel has at most :data:`MAX_MAP_CELLS` cells."""
    return max(1, math.ceil(math.sqrt(lat.size * lon.size / MAX_MAP_CELLS)))


def _thin(step: int, *arrays: np.ndarray) -> list[np.ndarray]:
    """Every ``step``-th row and column (1-D: every ``step``-th value); nearest-neighbour, so classes stay classes."""
    if step == 1:
        return [np.asarray(a) for a in arrays]
    return [np.asarray(a)[::step] if np.ndim(a) == 1 else np.asarray(a)[::step, ::step] for a in arrays]


def _thinned_note(step: int) -> str:
    return f" One cell in {step} along each axis is drawn." if step > 1 else ""


def _panel_grid(fig: Figure, n: int, ncols: int):
    nrows = max(1, math.ceil(n / ncols))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return flat[:n], nrows


def _map_size(lat: np.ndarray, lon: np.ndarray, ncols: int, nrows: int, extra_w: float = 0.9,
              extra_h: float = 0.9) -> tuple[float, float]:
    """Figure size for ``nrows x ncols`` map panels of one region, at most :data:`FULL_WIDTH` wide."""
    lat_span = max(float(np.ptp(_edges(lat))), 1e-6)
    lon_span = max(float(np.ptp(_edges(lon))), 1e-6)
    mid = float(np.clip(np.nanmean(lat), -80, 80))
    ratio = lat_span / (lon_span * math.cos(math.radians(mid)))  # panel height / width on the page
    panel_w = min((FULL_WIDTH - extra_w) / ncols, 4.2)
    panel_h = min(panel_w * ratio, 4.5)
    return min(panel_w * ncols + extra_w, FULL_WIDTH), panel_h * nrows + extra_h


# ---------------------------------------------------------------------------------------- classes


def _class_frame(class_table: pd.DataFrame | None) -> pd.DataFrame:
    if class_table is not None:
        return class_table
    from pipeline.datasets import load_class_table

    return load_class_table().frame


def _class_cmap(table: pd.DataFrame) -> tuple[ListedColormap, BoundaryNorm]:
    colours = [table["colour"].get(v, "#000000") for v in range(N_CLASSES)]
    return ListedColormap(colours), BoundaryNorm(np.arange(-0.5, N_CLASSES + 0.5), N_CLASSES)


def _class_values(arrays: Sequence[np.ndarray]) -> list[int]:
    """Class values 0..16 present in any of the arrays, sorted."""
    found: set[int] = set()
    for a in arrays:
        v = np.asarray(a, dtype=np.float64)
        v = v[np.isfinite(v) & (v >= 0) & (v < N_CLASSES)]
        found.update(np.unique(v).astype(int).tolist())
    return sorted(found)


def _class_name(table: pd.DataFrame, value: int, *, long: bool = True) -> str:
    if value not in table.index:
        return str(value)
    short = str(table.loc[value, "short_name"])
    return f"{short} {table.loc[value, 'name']}" if long else short


def _as_classes(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return np.where((v >= 0) & (v < N_CLASSES), v, np.nan)


# ------------------------------------------------------------------------------------------- maps


def field_maps(maps: FieldMaps, class_table: pd.DataFrame | None = None) -> RenderedFigure:
    """Observed field and every model's prediction side by side, on one colour scale.

    Parameters
    ----------
    maps : FieldMaps
        Truth and predictions on the fine grid.
    class_table : pandas.DataFrame, optional
        IGBP class table (for categorical maps); the packaged one by default.

    Returns
    -------
    RenderedFigure
    """
    models = list(maps.predictions)
    panels = [(OBSERVED, maps.truth)] + [(m, maps.predictions[m]) for m in models]
    ncols = min(len(panels), 4)
    categorical = maps.kind == "categorical"
    width, height = _map_size(maps.lat, maps.lon, ncols, math.ceil(len(panels) / ncols),
                              extra_h=1.6 if categorical else 0.9)
    fig = _new_figure(width, height)
    axes, _ = _panel_grid(fig, len(panels), ncols)
    if categorical:
        table = _class_frame(class_table)
        cmap, norm = _class_cmap(table)
        kwargs = dict(cmap=cmap, norm=norm)
    else:
        finite = np.concatenate([np.ravel(a)[np.isfinite(np.ravel(a))] for _, a in panels] + [np.zeros(1)])
        vmax = float(np.nanpercentile(finite, 99.5)) or 1.0
        kwargs = dict(cmap=LAI_CMAP, vmin=0.0, vmax=vmax)
    mesh = None
    step = _stride(maps.lat, maps.lon)
    lat, lon, land = _thin(step, maps.lat, maps.lon, maps.land_mask)
    for k, (ax, (name, values)) in enumerate(zip(axes, panels, strict=True)):
        _geo_axes(ax, lat, lon, left=k % ncols == 0)
        (shown,) = _thin(step, values)
        mesh = _mesh(ax, lat, lon, _as_classes(shown) if categorical else shown, **kwargs)
        _coastline(ax, lat, lon, land)
        ax.set_title(_label(name), fontsize=10, fontweight="bold" if name == OBSERVED else "normal")
    if categorical:
        present = _class_values([v for _, v in panels])
        handles = [Patch(facecolor=table["colour"][v], edgecolor="0.4", linewidth=0.5,
                         label=_label(_class_name(table, v))) for v in present]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(4, max(1, len(handles))), fontsize=8,
                   frameon=False)
        caption = (f"{maps.variable} ({maps.when}): observed classes (left) and the classes predicted by "
                   f"{_join(models)}, in the IGBP colours; the legend lists the classes present. Grey: no data. "
                   "Black line: coastline from the land mask." + _thinned_note(step))
    else:
        units = f" ({maps.units})" if maps.units else ""
        fig.colorbar(mesh, ax=axes, shrink=0.8, label=_label(f"{maps.variable}{units}"))
        caption = (f"{maps.variable}{units}, {maps.when}: observed (left) and predicted by {_join(models)}, on one "
                   "green colour scale starting at 0. Grey: no data. Black line: coastline from the land mask."
                   + _thinned_note(step))
    return RenderedFigure(_to_png(fig), caption)


def error_maps(maps: FieldMaps) -> RenderedFigure:
    """Every model's error map: prediction − truth (continuous) or where the classes differ (categorical).

    Parameters
    ----------
    maps : FieldMaps
        Truth and predictions on the fine grid.

    Returns
    -------
    RenderedFigure
    """
    models = list(maps.predictions)
    errors = [maps.error(m) for m in models]
    ncols = min(len(models), 3)
    categorical = maps.kind == "categorical"
    width, height = _map_size(maps.lat, maps.lon, ncols, math.ceil(len(models) / ncols),
                              extra_h=1.3 if categorical else 0.9)
    fig = _new_figure(width, height)
    axes, _ = _panel_grid(fig, len(models), ncols)
    if categorical:
        cmap = ListedColormap(["#c7e9c0", "#cb181d"])  # agrees: pale green; differs: red
        kwargs = dict(cmap=cmap, vmin=-0.5, vmax=1.5)
    else:
        finite = np.concatenate([np.abs(e[np.isfinite(e)]) for e in errors] + [np.zeros(1)])
        vlim = float(np.percentile(finite, 98)) or float(finite.max()) or 1.0
        kwargs = dict(cmap=ERROR_CMAP, vmin=-vlim, vmax=vlim)
    mesh = None
    step = _stride(maps.lat, maps.lon)
    lat, lon, land = _thin(step, maps.lat, maps.lon, maps.land_mask)
    for k, (ax, name, err) in enumerate(zip(axes, models, errors, strict=True)):
        _geo_axes(ax, lat, lon, left=k % ncols == 0)
        mesh = _mesh(ax, lat, lon, _thin(step, err)[0], **kwargs)
        _coastline(ax, lat, lon, land)
        valid = np.isfinite(err)
        if categorical:
            share = float(np.nanmean(err[valid])) if valid.any() else float("nan")
            ax.set_title(f"{_label(name)}: {share:.0%} of cells differ" if np.isfinite(share) else _label(name),
                         fontsize=10)
        else:
            ax.set_title(_label(name), fontsize=10)
    if categorical:
        fig.legend(handles=[Patch(facecolor="#c7e9c0", label="predicted class = observed"),
                            Patch(facecolor="#cb181d", label="predicted class differs")],
                   loc="outside lower center", ncols=2, fontsize=8, frameon=False)
        caption = (f"{maps.variable} errors ({maps.when}) of {_join(models)}: red where the predicted class differs "
                   "from the observed one, green where it agrees; the panel titles give the share of cells that "
                   "differ (unweighted). Grey: no data." + _thinned_note(step))
    else:
        units = f" ({maps.units})" if maps.units else ""
        fig.colorbar(mesh, ax=axes, shrink=0.8, label=_label(f"prediction − truth{units}"))
        caption = (f"{maps.variable} errors{units}, {maps.when}: prediction minus observation of {_join(models)}; "
                   f"red: overestimate, blue: underestimate, on one scale symmetric about 0 (±{vlim:.3g}, the 98th "
                   "percentile of the absolute error). Grey: no data." + _thinned_note(step))
    return RenderedFigure(_to_png(fig), caption)


def grid_maps(maps: Sequence[GridMap]) -> RenderedFigure:
    """Fields aggregated onto the ESM target grids (PFT fractions, LAI), one panel each.

    Parameters
    ----------
    maps : sequence of GridMap
        At least one map.

    Returns
    -------
    RenderedFigure
    """
    if not maps:
        raise ValueError("grid_maps needs at least one map")
    ncols = min(len(maps), 3)
    nrows = math.ceil(len(maps) / ncols)
    ref = next((g for g in maps if g.regular), maps[0])
    width, height = _map_size(ref.lat, ref.lon, ncols, nrows, extra_w=0.9 + 0.5 * ncols)
    fig = _new_figure(width, height)
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[len(maps):]:
        ax.set_visible(False)
    for ax, g in zip(axes, maps, strict=False):
        if g.kind == "fraction":
            kwargs = dict(cmap=FRACTION_CMAP, vmin=0.0, vmax=1.0)
        else:
            top = float(np.nanpercentile(g.values, 99.5)) if np.isfinite(g.values).any() else 1.0
            kwargs = dict(cmap=LAI_CMAP, vmin=0.0, vmax=top or 1.0)
        _geo_axes(ax, g.lat, g.lon)
        if g.regular:
            step = _stride(g.lat, g.lon)
            lat, lon, values = _thin(step, g.lat, g.lon, g.values)
            art = _mesh(ax, lat, lon, values, **kwargs)
            _coastline(ax, lat, lon, None if g.land_mask is None else _thin(step, g.land_mask)[0])
        else:
            ok = np.isfinite(g.values)
            art = ax.scatter(g.lon[ok], g.lat[ok], c=g.values[ok], s=12, marker="s", linewidths=0, **kwargs)
        ax.set_title(_label(f"{g.label} [{g.grid}]"), fontsize=9)
        fig.colorbar(art, ax=ax, shrink=0.8, label=_label(g.units if g.units not in ("", "1") else "fraction"))
    grids = _join(list(dict.fromkeys(g.grid for g in maps)))
    caption = (f"Fields aggregated onto the ESM target grid(s) {grids}: " + "; ".join(g.label for g in maps)
               + ". Fractions on a 0-1 scale, LAI on a green scale from 0; grey: no data; points for unstructured "
                 "grids.")
    return RenderedFigure(_to_png(fig), caption)


# ------------------------------------------------------------------------------ model evaluation


def obs_pred_hexbin(pairs: Mapping[str, ObsPred], *, variable: str = "LAI", units: str = "m² m⁻²",
                    gridsize: int = 40) -> RenderedFigure:
    """Density of predicted against observed values, one panel per model, with the 1:1 line.

    Parameters
    ----------
    pairs : mapping of str to ObsPred
        Model → observed/predicted values.
    variable, units : str
        Axis labels.
    gridsize : int
        Hexagons across the x axis.

    Returns
    -------
    RenderedFigure
    """
    models = list(pairs)
    if not models:
        raise ValueError("obs_pred_hexbin needs at least one model")
    ncols = min(len(models), 3)
    nrows = math.ceil(len(models) / ncols)
    side = min((FULL_WIDTH - 1.0) / ncols, 3.6)
    fig = _new_figure(side * ncols + 1.0, side * nrows + 0.4)
    axes, _ = _panel_grid(fig, len(models), ncols)
    finite = [(p.obs[np.isfinite(p.obs) & np.isfinite(p.pred)], p.pred[np.isfinite(p.obs) & np.isfinite(p.pred)])
              for p in pairs.values()]
    allv = np.concatenate([np.concatenate([o, q]) for o, q in finite] + [np.zeros(1)])
    lo, hi = float(min(allv.min(), 0.0)), float(allv.max()) or 1.0
    hb = None
    for k, (ax, name, (o, q)) in enumerate(zip(axes, models, finite, strict=True)):
        if o.size:
            hb = ax.hexbin(o, q, gridsize=gridsize, extent=(lo, hi, lo, hi), mincnt=1, cmap=COUNT_CMAP,
                           norm=LogNorm(), linewidths=0)
            rmse = float(np.sqrt(np.mean((q - o) ** 2)))
            bias = float(np.mean(q - o))
            ax.text(0.03, 0.97, f"n = {o.size:,}\nRMSE = {rmse:.3g}\nbias = {bias:+.3g}", transform=ax.transAxes,
                    va="top", fontsize=8, bbox=dict(facecolor="white", edgecolor="none", alpha=0.8))
        ax.plot([lo, hi], [lo, hi], color="k", linestyle="--", linewidth=1, label="1:1")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_title(_label(name), fontsize=10)
        ax.set_xlabel(_label(f"observed {variable} ({units})"), fontsize=9)
        if k % ncols == 0:
            ax.set_ylabel(_label(f"predicted {variable} ({units})"), fontsize=9)
        ax.tick_params(labelsize=8)
    if hb is not None:
        fig.colorbar(hb, ax=axes, shrink=0.8, label="rows per hexagon")
    caption = (f"Predicted against observed {variable} ({units}) of {_join(models)}: colour is the number of rows "
               "per hexagon (log scale), the dashed line is 1:1; n, RMSE and bias (prediction − observation, "
               "unweighted) in the corner.")
    return RenderedFigure(_to_png(fig), caption)


def class_f1_bars(class_f1: pd.DataFrame, class_table: pd.DataFrame | None = None, *,
                  colours: Mapping[str, str] | None = None) -> RenderedFigure:
    """Per-class F1 of every model as grouped bars over the classes that occur.

    Parameters
    ----------
    class_f1 : pandas.DataFrame
        Columns ``model, class_value, f1``; NaN F1 (class absent from truth and prediction) is left out.
    class_table : pandas.DataFrame, optional
        IGBP class table for the short names; the packaged one by default.
    colours : mapping of str to str, optional
        Model → colour.

    Returns
    -------
    RenderedFigure
    """
    table = _class_frame(class_table)
    df = class_f1.dropna(subset=["f1"])
    models = list(dict.fromkeys(class_f1["model"].astype(str)))
    classes = sorted(int(v) for v in df["class_value"].unique())
    col = _colours_for(models, colours)
    fig = _new_figure(FULL_WIDTH, 3.8)
    ax = fig.subplots()
    x = np.arange(len(classes))
    width = 0.8 / max(len(models), 1)
    for k, m in enumerate(models):
        sub = df[df["model"].astype(str) == m].set_index("class_value")["f1"]
        vals = [float(sub.get(c, np.nan)) for c in classes]
        ax.bar(x - 0.4 + width * (k + 0.5), vals, width=width, color=col[m], label=_label(m))
    ax.set_xticks(x, [_class_name(table, c, long=False) for c in classes], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    fig.legend(loc="outside upper center", ncols=min(len(models), 5), fontsize=8, frameon=False)
    caption = (f"F1 score of each land-cover class (IGBP short names) for {_join(models)}; classes absent from both "
               "the observations and a model's prediction have no bar.")
    return RenderedFigure(_to_png(fig), caption)


def confusion_matrices(confusion: Mapping[str, ConfusionMatrix],
                       class_table: pd.DataFrame | None = None) -> RenderedFigure:
    """Row-normalised confusion matrices, one heat map per model, over the classes that occur.

    Parameters
    ----------
    confusion : mapping of str to ConfusionMatrix
        Model → confusion matrix (rows: true class, columns: predicted class).
    class_table : pandas.DataFrame, optional
        IGBP class table for the short names; the packaged one by default.

    Returns
    -------
    RenderedFigure
    """
    models = list(confusion)
    if not models:
        raise ValueError("confusion_matrices needs at least one model")
    table = _class_frame(class_table)
    # One class list for every panel (those with area in any truth or prediction), so panels compare.
    present: dict[int, None] = {}
    for cm in confusion.values():
        used = (cm.matrix.sum(axis=0) > 0) | (cm.matrix.sum(axis=1) > 0)
        present.update({int(v): None for v in cm.labels[used]})
    classes = sorted(present)
    ncols = min(len(models), 3)
    nrows = math.ceil(len(models) / ncols)
    side = min((FULL_WIDTH - 1.0) / ncols, 3.7)
    fig = _new_figure(side * ncols + 1.0, side * nrows + 0.5)
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[len(models):]:
        ax.set_visible(False)
    names = [_class_name(table, c, long=False) for c in classes]
    img = None
    for k, (ax, m) in enumerate(zip(axes, models, strict=False)):
        cm = confusion[m]
        pos = {int(v): i for i, v in enumerate(cm.labels)}
        idx = [pos.get(c) for c in classes]
        sub = np.zeros((len(classes), len(classes)))
        for i, a in enumerate(idx):
            for j, b in enumerate(idx):
                if a is not None and b is not None:
                    sub[i, j] = cm.matrix[a, b]
        rows = sub.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            norm = np.where(rows > 0, sub / rows, np.nan)
        img = ax.imshow(np.ma.masked_invalid(norm), cmap=CONFUSION_CMAP, vmin=0, vmax=1, interpolation="nearest")
        ax.set_facecolor(NO_DATA_COLOUR)
        if len(classes) <= 12:  # beyond that the numbers no longer fit in the cells
            for i in range(len(classes)):
                for j in range(len(classes)):
                    if np.isfinite(norm[i, j]) and norm[i, j] >= 0.05:
                        ax.text(j, i, f"{norm[i, j] * 100:.0f}", ha="center", va="center", fontsize=6,
                                color="white" if norm[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(classes)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(classes)), names if k % ncols == 0 else [""] * len(classes), fontsize=7)
        ax.set_xlabel("predicted class", fontsize=8)
        if k % ncols == 0:
            ax.set_ylabel("true class", fontsize=8)
        ax.set_title(_label(m), fontsize=10)
    fig.colorbar(img, ax=axes[: len(models)], shrink=0.7, label="share of the true class")
    caption = (f"Confusion matrices of {_join(models)}, normalised by row: each row shows how the area (or count) "
               "of one observed class is split among the predicted classes (numbers: percent, shown from 5 %); "
               "the diagonal is the recall. Grey rows: class absent from the observations.")
    return RenderedFigure(_to_png(fig), caption)


def seasonal_cycles(cycles: pd.DataFrame, *, variable: str = "LAI", units: str = "m² m⁻²",
                    colours: Mapping[str, str] | None = None) -> RenderedFigure:
    """Mean seasonal cycle per Köppen zone: observations in black, each model in its colour.

    Parameters
    ----------
    cycles : pandas.DataFrame
        Columns ``zone, month, model, value``; observations under ``model == "observed"``.
    variable, units : str
        Axis label.
    colours : mapping of str to str, optional
        Model → colour.

    Returns
    -------
    RenderedFigure
    """
    zones = list(dict.fromkeys(cycles["zone"].astype(str)))
    models = [m for m in dict.fromkeys(cycles["model"].astype(str)) if m != OBSERVED]
    col = _colours_for(models, colours)
    ncols = min(len(zones), 5)
    nrows = math.ceil(len(zones) / ncols)
    fig = _new_figure(FULL_WIDTH, 2.6 * nrows + 0.6)
    axes, _ = _panel_grid(fig, len(zones), ncols)
    for k, (ax, zone) in enumerate(zip(axes, zones, strict=True)):
        sub = cycles[cycles["zone"].astype(str) == zone]
        for m in [OBSERVED, *models]:
            s = sub[sub["model"].astype(str) == m].sort_values("month")
            if s.empty:
                continue
            if m == OBSERVED:
                ax.plot(s["month"], s["value"], color="k", linewidth=2.2, label=OBSERVED, zorder=3)
            else:
                ax.plot(s["month"], s["value"], color=col[m], linewidth=1.3, label=_label(m))
        ax.set_title(_label(zone), fontsize=10)
        ax.set_xticks(range(1, 13), list(MONTHS), fontsize=8)
        ax.set_xlim(0.5, 12.5)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if k % ncols == 0:
            ax.set_ylabel(_label(f"{variable} ({units})"), fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), 6), fontsize=8, frameon=False)
    caption = (f"Mean seasonal cycle of {variable} ({units}) by Köppen-Geiger climate zone: observations (black) and "
               f"{_join(models)}, month by month (J = January).")
    return RenderedFigure(_to_png(fig), caption)


def scenario_series(series: pd.DataFrame, *, model: str | None = None) -> RenderedFigure:
    """Regional time series per scenario: one panel per variable, one line per scenario.

    Parameters
    ----------
    series : pandas.DataFrame
        Columns ``time, scenario, variable, value``.
    model : str, optional
        The model the projections come from, for the caption.

    Returns
    -------
    RenderedFigure
    """
    variables = list(dict.fromkeys(series["variable"].astype(str)))
    scenarios = list(dict.fromkeys(series["scenario"].astype(str)))
    palette = ["#222222", "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"]
    col = {s: palette[k % len(palette)] for k, s in enumerate(scenarios)}
    ncols = min(len(variables), 3)
    nrows = math.ceil(len(variables) / ncols)
    fig = _new_figure(FULL_WIDTH, 2.5 * nrows + 0.6)
    # no shared x axis: a panel above an empty slot of the last row keeps its year labels
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[len(variables):]:
        ax.set_visible(False)
    for ax, var in zip(axes, variables, strict=False):
        sub = series[series["variable"].astype(str) == var]
        for s in scenarios:
            part = sub[sub["scenario"].astype(str) == s].sort_values("time")
            if not part.empty:
                ax.plot(_plot_time(part["time"]), part["value"], color=col[s], linewidth=1.4, label=_label(s))
        ax.set_title(_label(var), fontsize=10)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), 6), fontsize=8, frameon=False)
    source = f" predicted by {model}" if model else ""
    caption = (f"Regional means per scenario{source}: {_join(variables)}; one line per scenario "
               f"({_join(scenarios)}).")
    return RenderedFigure(_to_png(fig), caption)


def learning_curves(curves: pd.DataFrame, *, loss_label: str = "loss",
                    colours: Mapping[str, str] | None = None) -> RenderedFigure:
    """Training and validation loss per epoch, one panel per deep model.

    Parameters
    ----------
    curves : pandas.DataFrame
        Columns ``model, epoch, train_loss, valid_loss``.
    loss_label : str
        Name of the loss for the y axis.
    colours : mapping of str to str, optional
        Model → colour.

    Returns
    -------
    RenderedFigure
    """
    models = list(dict.fromkeys(curves["model"].astype(str)))
    col = _colours_for(models, colours)
    ncols = min(len(models), 3)
    nrows = math.ceil(len(models) / ncols)
    fig = _new_figure(min(FULL_WIDTH, 3.7 * ncols + 0.4), 2.8 * nrows + 0.3)
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[len(models):]:
        ax.set_visible(False)
    for k, (ax, m) in enumerate(zip(axes, models, strict=False)):
        sub = curves[curves["model"].astype(str) == m].sort_values("epoch")
        ax.plot(sub["epoch"], sub["train_loss"], color=col[m], linewidth=1.5, label="training")
        ax.plot(sub["epoch"], sub["valid_loss"], color=col[m], linewidth=1.5, linestyle="--", label="validation")
        valid = sub["valid_loss"].to_numpy(dtype=np.float64)
        if np.isfinite(valid).any():
            best = int(np.nanargmin(valid))
            ax.plot(sub["epoch"].iloc[best], valid[best], "o", color="k", markersize=4, label="best validation")
        losses = sub[["train_loss", "valid_loss"]].to_numpy(dtype=np.float64)
        losses = losses[np.isfinite(losses)]
        if losses.size and losses.min() > 0 and losses.max() / losses.min() > 10:
            ax.set_yscale("log")  # losses that fall by decades read better on a log axis
        ax.set_title(_label(m), fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        if k % ncols == 0:
            ax.set_ylabel(_label(loss_label), fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    caption = (f"Learning curves of {_join(models)}: {loss_label} on the training (solid) and validation (dashed) "
               "rows per epoch; the dot marks the epoch with the lowest validation loss.")
    return RenderedFigure(_to_png(fig), caption)


def _plot_time(times: pd.Series):
    """Times matplotlib can draw: numbers and datetimes as they are, cftime dates as decimal years.

    Scenario runs to 2100 often use a model calendar (``noleap``, ``360_day``) that xarray decodes
    to cftime objects, which matplotlib cannot place on an axis without ``nc-time-axis``.
    """
    if times.dtype.kind in "iufM":
        return times.to_numpy()
    first = times.iloc[0]
    if hasattr(first, "year") and hasattr(first, "month") and not isinstance(first, pd.Timestamp):
        return np.array([t.year + (t.month - 1) / 12 + (getattr(t, "day", 1) - 1) / 365 for t in times])
    return times.to_numpy()


def _join(items: Sequence[str]) -> str:
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
