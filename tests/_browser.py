"""A server's ``/docs`` opened in a real browser (Debian's chromium, driven by Playwright)
that can reach loopback and nothing else; both servers' docs tests use it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

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


@dataclass(frozen=True)
class DocsPage:
    """What the browser showed and asked for: the API's title, its operations, the URLs."""

    title: str
    operations: int
    requests: list[str]

    def off_loopback(self) -> list[str]:
        """Every URL the page asked for that is not this machine's."""
        here = ("127.0.0.1", "localhost", HOST)
        return [u for u in self.requests if urlsplit(u).hostname not in here]


def open_docs(base: str, named: bool) -> DocsPage:
    """Load ``base``/docs (under HOST when ``named``) and wait for Swagger UI to render it.

    Skips when Playwright or Debian's chromium is missing (.ci/run installs chromium).
    """
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    requests: list[str] = []
    # chromium resolves HOST to loopback and nothing else (any other name fails to resolve)
    rules = f"MAP {HOST} 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=[*FLAGS, f"--host-resolver-rules={rules}"]
        )
        try:
            page = browser.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.goto((base.replace("127.0.0.1", HOST) if named else base) + "/docs")
            page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
            title = page.locator(".swagger-ui .info .title").inner_text()
            operations = page.locator(".opblock").count()
        finally:
            browser.close()
    return DocsPage(title, operations, requests)
