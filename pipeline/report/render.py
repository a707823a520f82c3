"""Render a :class:`~pipeline.report.context.ReportContext` as one self-contained HTML file.

The file works offline and alone: CSS is inline, every figure is a base64 PNG in a ``data:``
URI, and there is no script, font, stylesheet or link to anything outside it, so it can be
mailed, archived next to the run's outputs, or opened on a cluster's login node years later.

Text from the context is HTML-escaped (jinja2 autoescape), and anything that looks like a web
address (``scheme://``) is made inert by a zero-width space after the colon, so that the report
holds no address at all (not even as text that a viewer might turn into a link).

Order of the page: headline (which model wins, by how much, with the interval and the p-value;
a sentence when the difference is not significant), metric tables, timing, data and splits,
conservation errors, drift flags, figures, provenance. Parts that a run did not compute are
left out; a figure that cannot be drawn from odd data is replaced by a note rather than costing
the whole report.
"""

from __future__ import annotations

import base64
import math
import re
import struct
import warnings
from collections.abc import Callable
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup, escape

from pipeline.errors import InputDataError
from pipeline.io import write_text_atomically
from pipeline.report import figures as figs
from pipeline.report.context import Headline, ReportContext, TaskReport

TEMPLATE = "report.html.j2"
# CSS px per PNG px: figures are saved at figs.DPI and shown at 96 CSS px per inch
_CSS_SCALE = 96.0 / figs.DPI
_URL_RE = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*):(//)")
#: Text of the sentence that states a non-significant headline (tests and readers look for it).
NOT_SIGNIFICANT = "The difference is not significant"


# -------------------------------------------------------------------------------------- formatting


def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def fmt_num(x, *, signed: bool = False) -> str:
    """A number for a table: 3 decimals in the usual range, fewer figures for large or tiny values.

    Parameters
    ----------
    x : float
        The value; NaN or None gives an en dash.
    signed : bool
        Whether to show ``+`` on positive values (differences).

    Returns
    -------
    str
    """
    if not _finite(x):
        return "–"
    x = float(x)
    sign = "+" if signed else ""
    a = abs(x)
    if a >= 1e5 or (0 < a < 1e-3):
        return f"{x:{sign}.2e}"
    if a >= 1000:
        return f"{x:{sign},.0f}"
    if a >= 100:
        return f"{x:{sign}.1f}"
    return f"{x:{sign}.3f}"


def fmt_interval(value, lo, hi, *, signed: bool = False) -> str:
    """``value [lo, hi]``, e.g. ``0.123 [0.110, 0.137]``; just the value without a finite interval."""
    if _finite(lo) and _finite(hi):
        return f"{fmt_num(value, signed=signed)} [{fmt_num(lo, signed=signed)}, {fmt_num(hi, signed=signed)}]"
    return fmt_num(value, signed=signed)


def fmt_p(p) -> str:
    """A p-value as ``p = 0.031`` or ``p < 0.001``."""
    if not _finite(p):
        return "p not computed"
    p = float(p)
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def fmt_seconds(s) -> str:
    """A duration: ``0.42 s``, ``12.3 s``, ``4 min 12 s``, ``1 h 02 min``."""
    if not _finite(s):
        return "–"
    s = float(s)
    if s < 10:
        return f"{s:.2f} s"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(round(s % 60)):02d} s"
    return f"{int(s // 3600)} h {int(round(s % 3600 / 60)):02d} min"


def fmt_int(n) -> str:
    """A count with thousands separators."""
    return f"{float(n):,.0f}" if _finite(n) else "–"


def fmt_share(x) -> str:
    """A share 0..1 as a percentage."""
    if not _finite(x):
        return "–"
    x = 100 * float(x)
    return f"{x:.1f} %" if x >= 0.1 or x == 0 else f"{x:.2g} %"


def _inert(value) -> Markup:
    """Escape ``value`` and break any ``scheme://`` in it (the jinja finalize hook: every ``{{ }}`` goes here)."""
    if isinstance(value, Markup):
        return value  # already built by this module (figures' data URIs, pre-escaped sentences)
    if value is None:
        return Markup("")
    return Markup(_URL_RE.sub(r"\1:&#8203;\2", str(escape(value))))


def _metric_label(task: TaskReport, metric: str) -> str:
    return task.metric_labels.get(metric, metric)


# ---------------------------------------------------------------------------------------- headline


def headline_sentences(task: TaskReport, h: Headline) -> list[tuple[str, str]]:
    """The headline of one task in words, as ``(css_class, sentence)`` pairs.

    Parameters
    ----------
    task : TaskReport
        The task (its metric labels name the metric when the headline has no label).
    h : Headline
        The comparison.

    Returns
    -------
    list of (str, str)
        Who wins and the two values; the difference with its interval and p-value; whether the
        difference is significant (class ``significant`` or ``not-significant``).
    """
    label = h.metric_label or _metric_label(task, h.metric)
    better = "higher" if h.higher_is_better else "lower"
    level = f"{h.alpha:.0%}".replace("%", " %")
    conf = f"{1 - h.alpha:.0%}".replace("%", " %")
    # "beats" only when the bootstrap supports it; a better point estimate alone merely "scores better"
    verb = ("beats" if h.significant else "scores better than") if h.model_wins else "does not beat"
    first = (f"{h.best_model} {verb} the best baseline, {h.baseline}, on {label} ({better} is better, "
             f"{h.split} split): {fmt_num(h.best_value)} against {fmt_num(h.baseline_value)}.")
    how = "paired block bootstrap"
    details = [d for d in (h.blocks, f"{h.n_resamples:,} resamples" if h.n_resamples else None) if d]
    if details:
        how += " over " + ", ".join(details)
    second = (f"Difference {h.best_model} − {h.baseline}: {fmt_interval(h.difference, h.lo, h.hi, signed=True)} "
              f"({conf} interval, {how}), {fmt_p(h.p_value)}.")
    if h.significant:
        third = ("significant", f"The difference is significant at the {level} level: {h.best_model} is "
                 f"{'better' if h.model_wins else 'worse'} than {h.baseline} on {label}.")
    else:
        if h.lo <= 0 <= h.hi or not (math.isfinite(h.lo) and math.isfinite(h.hi)):
            why = f"{fmt_p(h.p_value)}; the {conf} interval includes 0"
        else:
            why = fmt_p(h.p_value)
        text = (f"{NOT_SIGNIFICANT} at the {level} level ({why}): {h.best_model} is not "
                f"demonstrably {'better' if h.model_wins else 'worse'} than {h.baseline} on {label}.")
        floor = min_p_value(h.n_resamples)
        if floor is not None and floor >= h.alpha:
            # the test cannot reach the level at all: say so rather than let the reader trust the verdict
            need = math.floor(2 / h.alpha - 1) + 1
            text += (f" With {h.n_resamples:,} resamples the smallest p-value this test can give is {floor:.2g}, "
                     f"not below {h.alpha:g}: set report.bootstrap_samples to at least {need} (200 by default) "
                     "for a verdict.")
        third = ("not-significant", text)
    return [("", first), ("", second), third]


def min_p_value(n_resamples: int | None) -> float | None:
    """The smallest two-sided p-value a paired bootstrap test with ``n_resamples`` resamples can give.

    The test counts the resamples on each side of 0 with one added (:func:`pipeline.evaluate.paired_block_bootstrap`),
    so its p-value is at least ``2 / (n + 1)``; ``None`` when the count is unknown.
    """
    if not n_resamples:
        return None
    return min(1.0, 2 / (n_resamples + 1))


# -------------------------------------------------------------------------------------------- tables


def metric_tables(task: TaskReport) -> list[dict]:
    """Model × metric tables of one task, one per split, cells formatted as ``value [lo, hi]``.

    Parameters
    ----------
    task : TaskReport
        The task.

    Returns
    -------
    list of dict
        ``split``, ``columns`` (metric labels), ``rows`` (``model``, ``family``, ``cells`` of
        ``{"text", "best"}``); the best value of each metric with a known direction is marked.
    """
    df = task.metrics.copy()
    for col in ("model", "family", "split", "metric"):
        df[col] = df[col].astype(str)
    out = []
    for split in dict.fromkeys(df["split"]):
        sub = df[df["split"] == split]
        metrics = list(dict.fromkeys(sub["metric"]))
        models = list(dict.fromkeys(sub["model"]))
        best = {}
        for m in metrics:
            direction = task.metric_directions.get(m)
            vals = sub[sub["metric"] == m]["value"].astype(float)
            if direction and vals.notna().any() and len(models) > 1:
                best[m] = vals.max() if direction == "higher" else vals.min()
        rows = []
        for model in models:
            rs = sub[sub["model"] == model]
            cells = []
            for m in metrics:
                r = rs[rs["metric"] == m]
                if r.empty:
                    cells.append(dict(text="–", best=False))
                    continue
                r = r.iloc[0]
                cells.append(dict(text=fmt_interval(r["value"], r["lo"], r["hi"]),
                                  best=m in best and _finite(r["value"]) and float(r["value"]) == best[m]))
            rows.append(dict(model=model, family=rs["family"].iloc[0], cells=cells))
        out.append(dict(split=split, columns=[_metric_label(task, m) for m in metrics], rows=rows,
                        has_best=bool(best)))
    return out


def _timing_rows(task: TaskReport) -> list[dict]:
    return [dict(model=t.model, family=t.family, fit=fmt_seconds(t.fit_s), predict=fmt_seconds(t.predict_s),
                 device=t.device, cluster=t.cluster) for t in task.timing]


def _split_rows(task: TaskReport) -> list[dict]:
    if task.splits is None:
        return []
    rows = []
    for _, r in task.splits.iterrows():
        rows.append(dict(split=r["split"], rows=fmt_int(r["rows"]), cells=fmt_int(r["cells"]),
                         area=fmt_int(r["area_km2"]), years=r["years"] or "–",
                         row_share=fmt_share(r["row_fraction"]) if "row_fraction" in r else None,
                         area_share=fmt_share(r["area_fraction"]) if "area_fraction" in r else None))
    return rows


def _conservation_rows(task: TaskReport) -> list[dict]:
    if task.conservation is None:
        return []
    tol = task.conservation_tolerance
    rows = []
    for _, r in task.conservation.iterrows():
        rel = float(r["max_rel_error"])
        bad = tol is not None and (not _finite(rel) or rel > tol)
        rows.append(dict(model=r["model"], grid=r["grid"], quantity=r["quantity"], abs=fmt_num(r["max_abs_error"]),
                         rel=fmt_num(rel), bad=bad))
    return rows


def _drift_rows(drift: pd.DataFrame | None) -> list[dict]:
    if drift is None:
        return []
    return [dict(feature=r["feature"], scenario=r["scenario"], psi=fmt_num(r["psi"]),
                 outside=fmt_share(r["outside_share"]), flag=bool(r["flag"])) for _, r in drift.iterrows()]


# ------------------------------------------------------------------------------------------ figures


def _png_size(png: bytes) -> tuple[int, int]:
    """Width and height of a PNG from its IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return struct.unpack(">II", png[16:24])


def _figure(title: str, draw: Callable[[], figs.RenderedFigure]) -> dict:
    """Draw one figure for the page; odd data that breaks a drawing costs that figure, not the report."""
    try:
        fig = draw()
    except Exception as err:  # noqa: BLE001 - the report is the run's last stage: keep the rest of it
        warnings.warn(f"report figure {title!r} could not be drawn: {err!r}", RuntimeWarning, stacklevel=2)
        return dict(title=title, error=f"{type(err).__name__}: {err}")
    w, h = _png_size(fig.png)
    uri = Markup("data:image/png;base64," + base64.b64encode(fig.png).decode("ascii"))
    return dict(title=title, src=uri, caption=fig.caption, width=round(w * _CSS_SCALE), height=round(h * _CSS_SCALE))


def task_figures(task: TaskReport, class_table: pd.DataFrame, colours: dict[str, str]) -> list[dict]:
    """The figures of one task that its data allow, in page order."""
    out = []
    if task.maps is not None and task.maps.predictions:
        m = task.maps
        out.append(_figure(f"{m.variable}: observed and predicted", lambda: figs.field_maps(m, class_table)))
        out.append(_figure(f"{m.variable}: errors", lambda: figs.error_maps(m)))
    if task.obs_pred:
        out.append(_figure("Predicted against observed", lambda: figs.obs_pred_hexbin(task.obs_pred)))
    if task.class_f1 is not None and not task.class_f1.empty:
        out.append(_figure("F1 per class", lambda: figs.class_f1_bars(task.class_f1, class_table, colours=colours)))
    if task.confusion:
        out.append(_figure("Confusion matrices", lambda: figs.confusion_matrices(task.confusion, class_table)))
    if task.seasonal_cycles is not None and not task.seasonal_cycles.empty:
        out.append(_figure("Seasonal cycles by Köppen zone",
                           lambda: figs.seasonal_cycles(task.seasonal_cycles, colours=colours)))
    if task.learning_curves is not None and not task.learning_curves.empty:
        out.append(_figure("Learning curves", lambda: figs.learning_curves(task.learning_curves,
                                                                           loss_label=task.loss_label,
                                                                           colours=colours)))
    return out


# ------------------------------------------------------------------------------------------- render


def _class_table(ctx: ReportContext) -> pd.DataFrame | None:
    if ctx.class_table is not None:
        return ctx.class_table
    if not any((t.maps is not None and t.maps.kind == "categorical") or t.confusion or t.class_f1 is not None
               for t in ctx.tasks):
        return None  # no figure shows classes: do not read the table
    from pipeline.datasets import load_class_table

    return load_class_table().frame


def build_view(ctx: ReportContext) -> dict:
    """Everything the template shows, formatted: the template only lays it out.

    Parameters
    ----------
    ctx : ReportContext
        The run's report context.

    Returns
    -------
    dict
        Template variables.
    """
    class_table = _class_table(ctx)
    tasks = []
    for t in ctx.tasks:
        colours = figs.model_colours(t.models())
        tasks.append(dict(
            task=t.task, title=t.title,
            headline=headline_sentences(t, t.headline) if t.headline is not None else None,
            headline_obj=t.headline,
            headline_label=(t.headline.metric_label or _metric_label(t, t.headline.metric)) if t.headline else None,
            tables=metric_tables(t), timing=_timing_rows(t), splits=_split_rows(t),
            conservation=_conservation_rows(t), conservation_tolerance=t.conservation_tolerance,
            figures=task_figures(t, class_table, colours),
        ))
    extra = []
    if ctx.scenario_series is not None and not ctx.scenario_series.empty:
        extra.append(_figure("Scenario time series",
                             lambda: figs.scenario_series(ctx.scenario_series, model=ctx.scenario_model)))
    if ctx.grid_maps:
        extra.append(_figure("ESM target grids", lambda: figs.grid_maps(ctx.grid_maps)))
    drift = _drift_rows(ctx.drift)
    p = ctx.provenance
    n_figures = sum(len(t["figures"]) for t in tasks) + len(extra)
    return dict(
        title=f"{ctx.title}: {ctx.run_name}", ctx=ctx, tasks=tasks, extra_figures=extra, n_figures=n_figures,
        drift=drift, drift_flagged=sum(r["flag"] for r in drift), drift_rule=ctx.drift_rule,
        any_timing=any(t["timing"] for t in tasks), any_splits=any(t["splits"] for t in tasks),
        any_conservation=any(t["conservation"] for t in tasks),
        any_headline=any(t["headline"] for t in tasks),
        provenance=p, stage_times=[(k, fmt_seconds(v)) for k, v in p.stage_wall_s.items()],
        total_wall=fmt_seconds(p.total_wall_s) if p.stage_wall_s else None,
        packages=sorted(p.packages.items(), key=lambda kv: kv[0].lower()),
    )


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.report", "templates"),
        autoescape=True,
        finalize=_inert,
        undefined=jinja2.StrictUndefined,  # a misspelt variable is a bug to see, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt_num
    return env


def render_html(ctx: ReportContext) -> str:
    """The report of ``ctx`` as one self-contained HTML document.

    Parameters
    ----------
    ctx : ReportContext
        The run's report context.

    Returns
    -------
    str
        The HTML text.
    """
    view = build_view(ctx)
    return _environment().get_template(TEMPLATE).render(**view)


def render_report(ctx: ReportContext, path: str | Path) -> Path:
    """Write the report of ``ctx`` to ``path`` (normally ``RUN/report.html``), atomically.

    Parameters
    ----------
    ctx : ReportContext
        The run's report context.
    path : str or Path
        The HTML file to write; replaced if it exists (never a directory).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputDataError
        When ``path`` is a directory or cannot be written.
    """
    path = Path(path)
    # Non-ASCII characters (°, ², Köppen) as character references: the file is then the same
    # bytes whatever the locale's encoding that write_text_atomically writes with.
    text = render_html(ctx).encode("ascii", "xmlcharrefreplace").decode("ascii")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # RUN/ may not exist yet when a run reports early
    except OSError as err:
        raise InputDataError(f"cannot create the directory of the report {path} ({err.strerror or err}); choose "
                             "a writable output path") from None
    write_text_atomically(path, text)
    return path


__all__ = [
    "NOT_SIGNIFICANT", "build_view", "fmt_interval", "fmt_num", "fmt_p", "fmt_seconds", "headline_sentences",
    "metric_tables", "render_html", "render_report",
]
