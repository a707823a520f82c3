"""One full report rendered once per session: the figures are the slow part (seconds), shared by the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.report import render_report
from tests.helpers.report_data import make_report_context


@pytest.fixture(scope="session")
def full_report(tmp_path_factory) -> tuple[Path, str]:
    """The report of :func:`make_report_context` (both tasks, every figure): its path and its text."""
    path = render_report(make_report_context(), tmp_path_factory.mktemp("report") / "run" / "report.html")
    return path, path.read_text(encoding="ascii")
