"""API keys: made once and stored hashed, checked in constant time, 401 without one."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from shipyard.errors import NotFound
from shipyard.registry import Registry
from shipyard.registry._rows import EnvironmentApiKeyRow
from shipyard.serving import (
    KeyRing,
    ModelRunner,
    ServeOptions,
    ServingApp,
    build_app,
    bundle_table,
    create_api_key,
    list_api_keys,
    revoke_api_key,
)
from shipyard.serving._keys import hash_key

from .conftest import live_server, predict_path, rows_of

DEMO = predict_path("tumour_triage")


def test_a_key_is_shown_once_stored_hashed_audited_and_revocable(registry: Registry) -> None:
    registry.create_project("demo")
    info, key = create_api_key(registry, "demo", "production", "web")
    assert key.startswith(f"sya_{info.id}_") and len(key) > 40
    with registry.engine.connect() as connection:
        stored = connection.execute(EnvironmentApiKeyRow.__table__.select()).mappings().one()
    assert stored["secret_hash"] == hash_key(key)
    assert key not in str(dict(stored))
    assert [k.name for k in list_api_keys(registry, "demo", "production")] == ["web"]
    assert list_api_keys(registry, "demo", "uat") == []
    revoked = revoke_api_key(registry, "demo", "production", info.id)
    assert revoked.revoked
    actions = [e.action for e in registry.audit_list(object_prefix="project/demo/environment")]
    assert actions[:2] == ["apikey.revoke", "apikey.create"]
    registry.audit_verify()
    with pytest.raises(NotFound):
        revoke_api_key(registry, "demo", "uat", info.id)
    with pytest.raises(NotFound):
        create_api_key(registry, "demo", "staging")


def test_key_ring_accepts_exactly_its_keys() -> None:
    ring = KeyRing.from_keys(["alpha", "", "  beta  "])
    assert ring.accepts("alpha") and ring.accepts("beta")
    assert not ring.accepts("Alpha") and not ring.accepts("alph") and not ring.accepts(None)
    assert not KeyRing()


@pytest.fixture()
def locked(demo_runner: ModelRunner) -> ServingApp:
    return ServingApp(bundle_table([demo_runner]), keys=KeyRing.from_keys(["s3cret-key"]))


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": "Basic s3cret-key"}, 401),
        ({"Authorization": "Bearer s3cret-key"}, 200),
        ({"X-API-Key": "s3cret-key"}, 200),
    ],
)
def test_predict_and_infer_need_a_valid_key(
    locked: ServingApp, demo_runner: ModelRunner, headers: dict[str, str], status: int
) -> None:
    with live_server(locked) as base, httpx.Client(base_url=base) as client:
        predicted = client.post(DEMO, json=rows_of(demo_runner), headers=headers)
        inferred = client.post(
            "/v2/models/tumour_triage/infer",
            json={
                "inputs": [{"name": "mean_radius", "shape": [1], "datatype": "FP64", "data": [1]}]
            },
            headers=headers,
        )
        assert predicted.status_code == status
        assert inferred.status_code in ((401,) if status == 401 else (422,))
        if status == 401:
            assert predicted.headers["www-authenticate"] == "Bearer"
        assert client.get("/health").status_code == 200  # probes need no key
        assert client.get("/v2/health/ready").status_code == 200


def test_a_key_in_the_query_string_is_refused(locked: ServingApp, demo_runner: ModelRunner) -> None:
    with live_server(locked) as base, httpx.Client(base_url=base) as client:
        response = client.post(DEMO + "?api_key=s3cret-key", json=rows_of(demo_runner))
    assert response.status_code == 401
    assert "query string" in response.json()["message"]


def test_bundle_mode_takes_an_api_key_file(
    tmp_path: Path, signed_bundle: Path, demo_runner: ModelRunner
) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("first-key\nsecond-key\n")
    app = build_app(ServeOptions(bundle=str(signed_bundle), api_key_file=str(keys)))
    with live_server(app) as base, httpx.Client(base_url=base) as client:
        assert client.post(DEMO, json=rows_of(demo_runner)).status_code == 401
        ok = client.post(DEMO, json=rows_of(demo_runner), headers={"X-API-Key": "second-key"})
        assert ok.status_code == 200
