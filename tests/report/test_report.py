"""The HTML report: self-contained, headline sentences, escaping, optional parts, atomic writes."""

from __future__ import annotations

import base64
import html
import re

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import InputDataError
from pipeline.report import FieldMaps, ReportContext, TaskReport, render_html, render_report
from pipeline.report import figures as figs
from pipeline.report.render import NOT_SIGNIFICANT, fmt_interval, fmt_num, fmt_p, fmt_seconds, headline_sentences
from tests.helpers.report_data import make_minimal_context, make_report_context

IMG_RE = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
SRC_RE = re.compile(r'\bsrc="([^"]*)"')
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_self_contained(text: str) -> None:
    """No reference to anything outside the file: no address, no linked file, only data: images."""
    low = text.lower()
    for bad in ("http://", "https://", 'src="/', "<link", "url(", "@import", "<iframe", "<object", "<embed",
                "<script"):
        assert bad not in low, f"{bad!r} in the report"
    for href in re.findall(r'href="([^"]*)"', text):
        assert href.startswith("#"), f"link out of the page: {href}"
    for tag in IMG_RE.findall(text):
        src = SRC_RE.search(tag).group(1)
        assert src.startswith("data:image/png;base64,"), tag[:80]
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(PNG_MAGIC)
        assert b"matplotlib.org" not in png  # no address in the PNG metadata either


def visible_text(text: str) -> str:
    """The page text with tags removed and character references decoded."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


def test_full_report_is_self_contained(full_report):
    path, text = full_report
    assert path.name == "report.html"
    assert text.startswith("<!DOCTYPE html>")
    assert "<title>terrascale report: demo-iberia</title>" in text
    assert_self_contained(text)
    assert not list(path.parent.glob(".report.html.*")), "temporary left behind"


def test_full_report_has_every_figure_with_a_caption(full_report):
    _, text = full_report
    images = IMG_RE.findall(text)
    # LULC: maps, errors, F1, confusion; LAI: maps, errors, hexbin, seasonal, learning curves; scenarios, ESM grids
    assert len(images) == 11
    assert text.count("<figcaption>") == len(images)
    assert "could not be drawn" not in text
    for tag in images:
        width = int(re.search(r'width="(\d+)"', tag).group(1))
        assert 200 <= width <= 1056, "a figure wider than the page or too small to read"
        assert re.search(r'alt="[^"]{20,}"', tag), "every image has its caption as alt text"


def test_headline_sentences_significant_and_not(full_report):
    _, text = full_report
    page = visible_text(text)
    assert page.index("Headline") < page.index("Metrics") < page.index("Provenance")
    # LULC: significant
    assert "xgboost beats the best baseline, majority, on macro F1 (higher is better, test split)" in page
    assert "The difference is significant at the 5 % level: xgboost is better than majority on macro F1." in page
    # LAI: not significant, said in so many words
    assert "unet scores better than the best baseline, climatology, on RMSE (lower is better, test split)" in page
    assert (f"{NOT_SIGNIFICANT} at the 5 % level (p = 0.31; the 95 % interval includes 0): unet is not "
            "demonstrably better than climatology on RMSE.") in page
    assert "paired block bootstrap over 2° × 2° spatial blocks, 1,000 resamples" in page
    assert "p = 0.002" in page


def test_headline_when_the_model_loses():
    ctx = make_report_context(with_figures=False)
    task = ctx.tasks[1]
    h = task.headline
    h.best_value, h.difference, h.lo, h.hi, h.significant, h.p_value = 0.7, 0.09, 0.05, 0.13, True, 0.004
    sentences = [s for _, s in headline_sentences(task, h)]
    assert sentences[0].startswith("unet does not beat the best baseline, climatology, on RMSE")
    assert sentences[2] == "The difference is significant at the 5 % level: unet is worse than climatology on RMSE."


def test_metric_tables_show_intervals_and_mark_the_best(full_report):
    _, text = full_report
    assert fmt_interval(0.123, 0.110, 0.137) == "0.123 [0.110, 0.137]"
    # xgboost, LULC test split, macro F1 0.59 with its interval, bold as the best of the column
    assert '<td class="n best">0.590 [0.577, 0.604]</td>' in text
    assert "<td>majority</td><td>baseline</td>" in text
    page = visible_text(text)
    for heading in ("overall accuracy", "macro F1", "mean IoU", "RMSE", "KGE", "test split", "train split"):
        assert heading in page


def test_tables_timing_data_conservation_drift(full_report):
    _, text = full_report
    page = visible_text(text)
    assert "10 min 12 s" in page and "cuda:0 (NVIDIA H200)" in page  # unet fit time, device
    assert "1,254,000" in page and "99,812" in page and "2001-2019" in page  # rows, area km², years
    # conservation: the N32 forest fraction above the 1e-6 tolerance is highlighted
    bad = re.findall(r'<tr class="bad"><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)<', text)
    assert ("xgboost", "N32", "forest fraction") in bad
    # drift: co2 is flagged in all three scenarios, and only those rows
    drift = text[text.index('<section id="drift">'):text.index('<section id="figures">')]
    flagged = re.findall(r'<tr class="bad"><td>([^<]*)</td><td>([^<]*)</td>', drift)
    assert flagged == [("co2", "ssp126"), ("co2", "ssp245"), ("co2", "ssp585")]
    assert "3 of 12 feature/scenario pairs flagged" in page


def test_provenance_footer(full_report):
    _, text = full_report
    footer = visible_text(text[text.index('<footer id="provenance">'):])
    for piece in ("3f7a9c0d1e2b4a59", "a33e3d6-dirty", "configs/demo.yaml", "doi:10.5067/MODIS/MCD12C1.006",
                  "doi:10.1038/sdata.2018.214", "CC BY 4.0", "torch 2.13.0", "29 min 34 s in all",
                  "train 25 min 31 s", "semi-synthetic"):
        assert piece in footer, piece


def test_model_names_are_escaped(tmp_path):
    evil = '<script>alert("x")</script> & $x_1$'
    ctx = make_report_context(with_figures=False, rename={"xgboost": evil})
    text = render_report(ctx, tmp_path / "report.html").read_text(encoding="ascii")
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; $x_1$" in text
    assert evil in visible_text(text)  # shown as written
    assert_self_contained(text)


def test_addresses_in_text_are_made_inert(tmp_path):
    ctx = make_report_context(with_figures=False)
    ctx.provenance.cluster = "dask dashboard at http://127.0.0.1:8787/status"
    ctx.provenance.notes.append("see HTTPS://example.org/x and ftp://host/y")
    text = render_html(ctx)
    assert_self_contained(text)
    page = visible_text(text).replace("\u200b", "")
    assert "http://127.0.0.1:8787/status" in page  # still readable, but no address in the file


def test_optional_parts_are_left_out(tmp_path):
    text = render_report(make_minimal_context(), tmp_path / "minimal.html").read_text(encoding="ascii")
    assert_self_contained(text)
    assert "<img" not in text
    for section in ('id="headline"', 'id="timing"', 'id="data"', 'id="conservation"', 'id="drift"',
                    'id="figures"'):
        assert section not in text
    assert '<td class="n">0.610</td>' in text  # a value without an interval: no brackets
    assert "unknown (not a git checkout)" in text

    ctx = make_report_context(with_deep=False, with_drift=False, with_figures=False)
    text = render_html(ctx)
    assert "unet" not in text and 'id="drift"' not in text and "Learning curves" not in text
    assert 'id="headline"' in text and 'id="conservation"' in text


def test_a_broken_figure_costs_only_that_figure(monkeypatch):
    ctx = make_report_context(with_figures=False)
    ctx.tasks[1].seasonal_cycles = pd.DataFrame(dict(zone="C", month=[1, 2], model="observed", value=[1.0, 2.0]))

    def broken(*args, **kwargs):
        raise ValueError("odd data")

    monkeypatch.setattr(figs, "seasonal_cycles", broken)
    with pytest.warns(RuntimeWarning, match="could not be drawn"):
        text = render_html(ctx)
    assert "Figure 1 (Seasonal cycles by Köppen zone) could not be drawn: ValueError: odd data" in html.unescape(text)
    assert 'id="provenance"' in text


def test_render_is_atomic_and_refuses_a_directory(tmp_path):
    ctx = make_minimal_context()
    target = tmp_path / "report.html"
    target.write_text("old")
    render_report(ctx, target)
    assert "<title>terrascale report: minimal</title>" in target.read_text()
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    with pytest.raises(InputDataError, match="directory"):
        render_report(ctx, folder)
    assert (folder / "keep.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "report.html"]


def test_context_checks_tables_and_shapes():
    metrics = pd.DataFrame(dict(task="lai", model="m", family="baseline", split="test", metric="rmse", value=[1.0]))
    with pytest.raises(ValueError, match=r"TaskReport\('lai'\)\.metrics lacks the column\(s\) lo, hi"):
        TaskReport(task="lai", title="LAI", metrics=metrics)
    with pytest.raises(ValueError, match=r"predictions\['m'\] has shape \(3, 4\), expected \(lat, lon\) = \(2, 4\)"):
        FieldMaps(kind="continuous", variable="LAI", units="", when="2019", lat=np.arange(2), lon=np.arange(4),
                  land_mask=np.ones((2, 4), bool), truth=np.zeros((2, 4)), predictions={"m": np.zeros((3, 4))})
    ctx = make_minimal_context()
    with pytest.raises(ValueError, match="repeated task names"):
        ReportContext(run_name="x", tasks=ctx.tasks * 2, provenance=ctx.provenance)


@pytest.mark.parametrize(("value", "text"), [(0.1234, "0.123"), (float("nan"), "–"), (None, "–"), (1234.5, "1,234"),
                                             (123.45, "123.5"), (2.5e-7, "2.50e-07"), (0.0, "0.000")])
def test_fmt_num(value, text):
    assert fmt_num(value) == text


def test_fmt_p_and_seconds():
    assert fmt_p(0.0004) == "p < 0.001"
    assert fmt_p(0.031) == "p = 0.031"
    assert fmt_p(float("nan")) == "p not computed"
    assert [fmt_seconds(s) for s in (0.42, 12.34, 252, 3720)] == ["0.42 s", "12.3 s", "4 min 12 s", "1 h 02 min"]


def test_headline_with_too_few_resamples_for_the_level_says_so():
    from pipeline.report.render import min_p_value

    ctx = make_report_context(with_figures=False)
    task = ctx.tasks[1]
    h = task.headline
    # 20 resamples: p >= 2/21 = 0.095 whatever the data; the interval alone excludes 0
    h.difference, h.lo, h.hi, h.significant, h.p_value, h.n_resamples = -0.05, -0.08, -0.02, False, 2 / 21, 20
    third = headline_sentences(task, h)[2][1]
    assert third.startswith(f"{NOT_SIGNIFICANT} at the 5 % level (p = 0.095):")  # no false "interval includes 0"
    assert "smallest p-value this test can give is 0.095" in third and "at least 40" in third
    assert min_p_value(40) < 0.05 <= min_p_value(39) and min_p_value(None) is None
    h.n_resamples = 1000  # enough resamples: no such advice
    assert "smallest p-value" not in headline_sentences(task, h)[2][1]
