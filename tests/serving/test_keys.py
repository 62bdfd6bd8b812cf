"""A server's API keys: a ring of the registry's digests, checked in memory, 401 without one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from shipyard.registry import ApiKeyDigest, Registry, to_json
from shipyard.serving import (
    KeyRing,
    ModelRunner,
    ServeOptions,
    ServingApp,
    build_app,
    bundle_table,
)

from .conftest import live_server, predict_path, rows_of

DEMO = predict_path("tumour_triage")


def test_a_ring_from_the_registry_accepts_its_live_keys_only(registry: Registry) -> None:
    registry.create_project("demo")
    _, live = registry.create_api_key("demo", "production", "web")
    revoked, gone = registry.create_api_key("demo", "production", "old")
    registry.revoke_api_key("demo", "production", revoked.id)
    _, elsewhere = registry.create_api_key("demo", "uat", "web")
    digests = registry.api_key_digests("demo", "production")
    for ring in (KeyRing(digests), KeyRing(to_json(digests))):  # embedded, and as over HTTP
        assert ring.accepts(live)
        assert not ring.accepts(gone) and not ring.accepts(elsewhere)
        assert not ring.accepts(live[:-1]) and not ring.accepts(live + "x")
        secret = live.split("_", 2)[2]
        assert not ring.accepts(secret)  # the secret alone is not the key
        assert not ring.accepts(f"sya_{revoked.id}_{secret}")  # nor under another key's id


def test_a_key_made_before_migration_0004_still_verifies_by_its_whole_text() -> None:
    old = "sya_7_" + "k" * 43
    ring = KeyRing([ApiKeyDigest(7, "sha256-text", hashlib.sha256(old.encode()).hexdigest())])
    assert ring.accepts(old)
    assert not ring.accepts("sya_8_" + "k" * 43) and not ring.accepts(old[:-1])


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


def test_revoking_every_key_closes_the_routes_instead_of_opening_them(
    locked: ServingApp, demo_runner: ModelRunner
) -> None:
    locked.set_keys(KeyRing())  # the follower read no live key: all were revoked
    with live_server(locked) as base, httpx.Client(base_url=base) as client:
        for headers in ({}, {"X-API-Key": "s3cret-key"}):
            assert client.post(DEMO, json=rows_of(demo_runner), headers=headers).status_code == 401
        locked.set_keys(KeyRing.from_keys(["new-key"]))  # a new key opens them to its holder
        assert (
            client.post(DEMO, json=rows_of(demo_runner), headers={"X-API-Key": "new-key"})
        ).status_code == 200


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
