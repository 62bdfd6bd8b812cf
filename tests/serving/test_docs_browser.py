"""``/docs`` in a real browser (Debian's chromium, driven by Playwright): Swagger UI comes
from the server itself, so the page works on a host with no way out."""

from __future__ import annotations

import pytest

from shipyard.serving import ModelRunner, ServingApp, bundle_table
from shipyard.web import swagger_asset

from .._browser import open_docs
from .conftest import guarded_server


@pytest.mark.integration  # starts a browser process
@pytest.mark.parametrize("named", [False, True], ids=["loopback", "host-name"])
def test_the_docs_page_renders_swagger_ui_with_no_request_off_loopback(
    demo_runner: ModelRunner, named: bool
) -> None:
    assert swagger_asset("swagger-ui-bundle.js") is not None, "make installs Swagger UI"
    app = ServingApp(bundle_table([demo_runner]), seed=1)
    with guarded_server(app) as base:
        page = open_docs(base, named)
    assert "Shipyard" in page.title
    assert page.operations >= 1
    assert page.off_loopback() == [], f"the docs page asked the network for {page.off_loopback()}"
    assert any(u.endswith("/docs/assets/swagger-ui-bundle.js") for u in page.requests)


def test_an_unknown_docs_asset_is_a_json_404(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/docs/assets/../../etc/passwd")
    assert response.status_code == 404
    missing = client.get("/docs/assets/other.js")
    assert missing.status_code == 404 and "no docs asset 'other.js'" in missing.text
