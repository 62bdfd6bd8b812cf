"""The registry server's ``/docs``: Swagger UI of its own OpenAPI document, served from the
installed package (never a CDN), with no token, so it works on an air-gapped host."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from shipyard.registry import LocalStore, Registry, create_engine
from shipyard.registry_http import create_app
from shipyard.web import swagger_asset

from .._browser import open_docs
from ..conftest import serving


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    engine = create_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    return Registry(engine, LocalStore(tmp_path / "artifacts"), actor="server")


@pytest.mark.integration  # starts a browser process
@pytest.mark.parametrize("named", [False, True], ids=["loopback", "host-name"])
def test_the_registry_docs_page_renders_swagger_ui_with_no_request_off_loopback(
    registry: Registry, named: bool
) -> None:
    assert swagger_asset("swagger-ui-bundle.js") is not None, "make installs Swagger UI"
    with serving(create_app(lambda: registry)) as base:
        page = open_docs(base, named)
    assert "Shipyard registry" in page.title
    assert page.operations >= 20  # one an operation of the table
    assert page.off_loopback() == [], f"the docs page asked the network for {page.off_loopback()}"
    assert any(u.endswith("/docs/assets/swagger-ui-bundle.js") for u in page.requests)


def test_docs_need_no_token_and_an_unknown_asset_is_a_json_404(registry: Registry) -> None:
    with serving(create_app(lambda: registry)) as base, httpx.Client(base_url=base) as http:
        page = http.get("/docs")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "/docs/assets/swagger-ui-bundle.js" in page.text and "//cdn" not in page.text
        asset = http.get("/docs/assets/swagger-ui.css")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith("text/css")
        missing = http.get("/docs/assets/other.js")
        assert missing.status_code == 404
        assert missing.json()["message"] == "no docs asset 'other.js'"
        assert http.get("/docs/assets/..%2F..%2Fetc%2Fpasswd").status_code == 404
        # the API itself still asks for a token
        assert http.get("/api/v1/projects").status_code == 401
