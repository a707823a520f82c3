"""The run report: one self-contained HTML file (``report.html``) with the results of a run.

:class:`ReportContext` (:mod:`pipeline.report.context`) holds everything the report shows; the
run stage fills it. :func:`render_report` (:mod:`pipeline.report.render`) draws the figures
(:mod:`pipeline.report.figures`, matplotlib) and writes the HTML atomically.

``render_report`` and the figures are imported on first use, so that importing the context
(which the run stage does early) does not pay for matplotlib and jinja2.
"""

from __future__ import annotations

from pipeline.report.context import (
    OBSERVED,
    ConfusionMatrix,
    DataSourceRef,
    FieldMaps,
    GridMap,
    Headline,
    ModelTiming,
    ObsPred,
    Provenance,
    ReportContext,
    TaskReport,
)

_LAZY = {"render_report": "pipeline.report.render", "render_html": "pipeline.report.render"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipeline.report' has no attribute {name!r}")


__all__ = [
    "OBSERVED",
    "ConfusionMatrix",
    "DataSourceRef",
    "FieldMaps",
    "GridMap",
    "Headline",
    "ModelTiming",
    "ObsPred",
    "Provenance",
    "ReportContext",
    "TaskReport",
    "render_html",
    "render_report",
]
