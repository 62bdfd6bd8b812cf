"""Registry tokens limited to projects and environments, and tokens that expire: over real
HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import update

from shipyard.errors import InvalidInput
from shipyard.registry import Registry
from shipyard.registry._rows import ApiTokenRow, EnvironmentApiKeyRow
from shipyard.registry_http import create_app

from ..conftest import serving
from .conftest import MODEL

API = "/api/v1/projects"


def _get(url: str, token: str, path: str) -> httpx.Response:
    return httpx.get(url + API + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _call(url: str, token: str, method: str, path: str, body: dict) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.request(method, url + API + path, json=body, headers=headers, timeout=30)


def test_a_project_token_reaches_only_its_projects(demo: Registry) -> None:
    demo.create_project("other")
    info, token = demo.create_token("ci-demo", "deployer", projects=["demo"])
    assert info.projects == ["demo"] and info.environments is None
    with serving(create_app(lambda: demo)) as url:
        assert _get(url, token, "/demo/environments/uat/status").status_code == 200
        refused = _get(url, token, "/other/environments/uat/status")
        assert refused.status_code == 403
        assert "limited to project(s) demo, not 'other'" in refused.json()["message"]
        listing = httpx.get(
            url + API, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )  # names no project: it could list every project
        assert listing.status_code == 403 and "this names none" in listing.json()["message"]
        assert token not in refused.text + listing.text


def test_an_environment_token_writes_only_its_environments_promotions_included(
    demo: Registry,
) -> None:
    _, token = demo.create_token("ci-uat", "deployer", environments=["integration", "uat"])
    with serving(create_app(lambda: demo)) as url:
        added = _call(url, token, "PUT", f"/demo/environments/integration/components/{MODEL}", {})
        assert added.status_code == 200
        production = _call(
            url, token, "PUT", f"/demo/environments/production/components/{MODEL}", {}
        )
        assert production.status_code == 403
        assert "not 'production'" in production.json()["message"]
        into_uat = _call(url, token, "POST", "/demo/environments/integration/promote", {})
        assert into_uat.status_code == 200  # integration into uat: both in scope
        into_production = _call(url, token, "POST", "/demo/environments/uat/promote", {})
        assert into_production.status_code == 403  # uat is in scope, production is not
        assert "not 'production'" in into_production.json()["message"]
    assert [c.name for c in demo.list_components("demo", "production")] == []


def test_an_expired_token_is_refused_naming_it_and_when(demo: Registry) -> None:
    info, token = demo.create_token("short", "viewer", expires_in_days=1)
    assert info.expires_at is not None
    with serving(create_app(lambda: demo)) as url:
        assert _get(url, token, "/demo/environments/uat/status").status_code == 200
        with demo.engine.begin() as connection:  # a day later
            connection.execute(
                update(ApiTokenRow)
                .where(ApiTokenRow.id == info.id)
                .values(expires_at=datetime(2026, 1, 1, tzinfo=UTC))
            )
        expired = _get(url, token, "/demo/environments/uat/status")
        assert expired.status_code == 401
        assert "API token 'short' expired at" in expired.json()["message"]
        assert token.split("_", 2)[2] not in expired.text  # the secret part (it may hold "_")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"projects": []}, "give at least one name"),
        ({"environments": ["bad name"]}, "environment"),
        ({"expires_in_days": 0}, "from 1 to 3650"),
        ({"expires_in_days": 99999}, "from 1 to 3650"),
    ],
)
def test_a_token_with_a_bad_limit_is_not_made(
    demo: Registry, arguments: dict, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        demo.create_token("bad", "viewer", **arguments)
    assert [t.name for t in demo.list_tokens()] == []


def test_an_expired_serving_key_leaves_what_servers_accept(demo: Registry) -> None:
    live, _ = demo.create_api_key("demo", "production", "web")
    short, _ = demo.create_api_key("demo", "production", "temp", expires_in_days=1)
    assert short.expires_at is not None and live.expires_at is None
    ids = [d.id for d in demo.api_key_digests("demo", "production")]
    assert ids == [live.id, short.id]
    with demo.engine.begin() as connection:  # a day later
        connection.execute(
            update(EnvironmentApiKeyRow)
            .where(EnvironmentApiKeyRow.id == short.id)
            .values(expires_at=datetime(2026, 1, 1, tzinfo=UTC))
        )
    assert [d.id for d in demo.api_key_digests("demo", "production")] == [live.id]
    with pytest.raises(InvalidInput, match="from 1 to 3650"):
        demo.create_api_key("demo", "production", "bad", expires_in_days=0)
