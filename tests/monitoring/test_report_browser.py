"""The HTML report in a real browser: Debian's chromium, driven by Playwright.

It must render its charts from the file alone: every request the page makes is recorded,
and none may leave the file (or loopback). A screenshot is kept in the test's folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from shipyard.monitoring import build_report, parse_duration
from shipyard.registry import Registry

from .._browser import CHROMIUM, FLAGS
from . import _data

SCREENSHOT_COPY = "SHIPYARD_REPORT_SCREENSHOT"  # also copy the screenshot here, when set


@pytest.mark.integration  # starts a browser process
def test_the_report_renders_its_charts_without_a_request_leaving_the_file(
    monitored: Registry, capture_dir: Path, tmp_path: Path
) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    hour = 3600.0
    base = 1_900_000_000.0 // hour * hour
    for i, shift in enumerate((0.0, 2.0, 5.0)):
        _data.capture(capture_dir, _data.rows(400, 70 + i, shift), at=base + i * hour + 60)
    html, run = build_report(
        monitored, "demo", "production", folder=capture_dir, window=parse_duration("1h")
    )
    assert run.drifted
    report = tmp_path / "report.html"
    report.write_text(html)

    requests: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.goto(report.as_uri())
            page.wait_for_load_state("networkidle")
            charts = page.locator("svg").count()
            heading = page.locator("h1").inner_text()
            drift_cells = page.locator("tr.drifted").count()
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert heading == "Monitoring: demo / production"
    assert charts >= 6 and drift_cells >= 1  # distributions and histories of 3 inputs
    left = [u for u in requests if not _stays_home(u)]
    assert left == [], f"the report asked the network for {left}"
    assert requests == [report.as_uri()]
    assert shot.stat().st_size > 10_000
    if os.environ.get(SCREENSHOT_COPY):
        shutil.copyfile(shot, os.environ[SCREENSHOT_COPY])


def _stays_home(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("file", "data", "about"):
        return True
    return parts.hostname in ("127.0.0.1", "localhost", "::1")
