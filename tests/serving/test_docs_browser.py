"""``/docs`` in a real browser (Debian's chromium, driven by Playwright): Swagger UI comes
from the server itself, so the page works on a host with no way out."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from shipyard.serving import ModelRunner, ServingApp, bundle_table
from shipyard.web import swagger_asset

from .conftest import guarded_server

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# A name for the server that is not loopback's, as a bank's host has: Swagger UI treats a
# document served from localhost or 127.0.0.1 apart (it never asks its online validator,
# validator.swagger.io, about one), so the page is loaded under this name too.
HOST = "models.bank.internal"


@pytest.mark.integration  # starts a browser process
@pytest.mark.parametrize("named", [False, True], ids=["loopback", "host-name"])
def test_the_docs_page_renders_swagger_ui_with_no_request_off_loopback(
    demo_runner: ModelRunner, named: bool
) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    assert swagger_asset("swagger-ui-bundle.js") is not None, "make installs Swagger UI"
    requests: list[str] = []
    app = ServingApp(bundle_table([demo_runner]), seed=1)
    # chromium resolves HOST to loopback and nothing else (any other name fails to resolve)
    rules = f"MAP {HOST} 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"
    flags = [*FLAGS, f"--host-resolver-rules={rules}"]
    with guarded_server(app) as base, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=flags)
        try:
            page = browser.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.goto((base.replace("127.0.0.1", HOST) if named else base) + "/docs")
            page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
            title = page.locator(".swagger-ui .info .title").inner_text()
            operations = page.locator(".opblock").count()
        finally:
            browser.close()
    assert "Shipyard" in title
    assert operations >= 1
    here = ("127.0.0.1", "localhost", HOST)
    away = [u for u in requests if urlsplit(u).hostname not in here]
    assert away == [], f"the docs page asked the network for {away}"
    assert any(u.endswith("/docs/assets/swagger-ui-bundle.js") for u in requests)


def test_an_unknown_docs_asset_is_a_json_404(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/docs/assets/../../etc/passwd")
    assert response.status_code == 404
    missing = client.get("/docs/assets/other.js")
    assert missing.status_code == 404 and "no docs asset 'other.js'" in missing.text
