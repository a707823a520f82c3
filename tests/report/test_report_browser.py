"""The report in a real browser: headless Chromium loads it, draws every figure, logs no error.

Chromium's ``--dump-dom`` prints the DOM after the page's ``load`` event. A copy of the report
gets a small script that, on ``load``, writes each image's decoded size (``naturalWidth``) and
rendered size (``getBoundingClientRect``) into the DOM, where the dump shows them: no WebDriver
needed. Console messages (an uncaught error, a resource that failed to load) come from
``--enable-logging=stderr``. Host names resolve to nothing, so the page could not reach the
network even if it tried (it would log a failed load).

Needs a Chromium binary (Debian: ``apt-get install chromium``; or set ``TERRASCALE_CHROMIUM``);
the test is skipped without one. Set ``TERRASCALE_REPORT_SCREENSHOT=/some/file.png`` to keep the
screenshot for a look.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CHROMIUM = os.environ.get("TERRASCALE_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
WINDOW = (1280, 4000)

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium browser, none on PATH: apt-get install "
                                                "chromium (or set TERRASCALE_CHROMIUM to its path)"),
    pytest.mark.slow,
]

PROBE = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    var r = img.getBoundingClientRect();
    return {complete: img.complete, natural: [img.naturalWidth, img.naturalHeight], shown: [r.width, r.height],
            data: img.currentSrc.indexOf("data:image/png;base64,") === 0};
  });
  var pre = document.createElement("pre");
  pre.id = "terrascale-probe";
  pre.textContent = JSON.stringify({title: document.title, images: images, scripts: document.scripts.length,
                                    scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth});
  document.body.appendChild(pre);
});
</script>
"""


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with a private profile (parallel runs do not share one) and no network."""
    cmd = [CHROMIUM, "--headless=new", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
           "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chromium-profile'}",
           "--host-resolver-rules=MAP * ~NOTFOUND", f"--window-size={WINDOW[0]},{WINDOW[1]}",
           "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def console_errors(stderr: str) -> list[str]:
    """Console lines of the page that report an error."""
    return [line for line in stderr.splitlines()
            if "CONSOLE" in line and re.search(r"Uncaught|Failed to load|net::ERR_|Refused to", line)]


def test_report_loads_and_every_figure_is_drawn(full_report, tmp_path):
    path, text = full_report
    n_images = text.count("<img ")
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", PROBE + "</body>"), encoding="ascii")
    done = run_chromium(tmp_path, "--dump-dom", probe.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert "<title>terrascale report: demo-iberia</title>" in done.stdout
    found = re.search(r'<pre id="terrascale-probe">(.*?)</pre>', done.stdout, re.S)
    assert found, "the probe did not run: the page's load event never came"
    state = json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert state["title"] == "terrascale report: demo-iberia"
    assert state["scripts"] == 1, "the report itself must hold no script (only the probe's)"
    assert state["scrollWidth"] <= state["innerWidth"], "something is wider than the window"
    assert len(state["images"]) == n_images == 11
    for k, img in enumerate(state["images"], 1):
        (nw, nh), (w, h) = img["natural"], img["shown"]
        assert img["complete"] and img["data"], f"image {k} not loaded from its data: URI"
        assert nw > 0 and nh > 0, f"image {k} did not decode"
        assert w > 100 and h > 50, f"image {k} rendered at {w} x {h} px"
        assert w <= WINDOW[0] and abs(w / h - nw / nh) < 0.02 * nw / nh, f"image {k} distorted: {w} x {h}"
    assert console_errors(done.stderr) == []


def test_report_screenshot(full_report, tmp_path):
    path, _ = full_report
    shot = tmp_path / "report.png"
    done = run_chromium(tmp_path, f"--screenshot={shot}", path.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    assert console_errors(done.stderr) == []
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    assert pixels[..., :3].std() > 0.05, "the screenshot is blank"
    keep = os.environ.get("TERRASCALE_REPORT_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)
