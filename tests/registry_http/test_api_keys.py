"""API keys and bundles over the registry API: routes from the operation table, roles that
mean what they say, and a bundle download that arrives whole."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from shipyard.errors import NotFound, PermissionDenied
from shipyard.registry_http import RegistryClient
from shipyard.serving import KeyRing

from ..conftest import ApiServer

MODEL = "tumour_triage"
KEYS = "/api/v1/projects/demo/environments/production/api-keys"
DIGESTS = "/api/v1/projects/demo/environments/production/api-key-digests"


@pytest.fixture()
def demo(api_server: ApiServer, bundles: list[Path]) -> ApiServer:
    """Project demo with tumour_triage v1 (made through the registry)."""
    registry = api_server.registry
    registry.create_project("demo")
    version = registry.register_model("demo", bundles[0])
    registry.tag("demo", MODEL, version.version_id)
    return api_server


def test_deployers_manage_keys_viewers_list_them_and_only_deployers_read_digests(
    demo: ApiServer,
) -> None:
    with RegistryClient(demo.url, demo.token("deployer", name="ci")) as deployer:
        record, key = deployer.create_api_key("demo", "production", "web")
        assert key.startswith(f"sya_{record['id']}_") and record["created_by"] == "ci"
        digests = deployer.api_key_digests("demo", "production")
        assert [d["id"] for d in digests] == [record["id"]]
        assert KeyRing(digests).accepts(key)
    with RegistryClient(demo.url, demo.token("viewer")) as viewer:
        assert [k["name"] for k in viewer.list_api_keys("demo", "production")] == ["web"]
        for denied in (
            lambda: viewer.api_key_digests("demo", "production"),
            lambda: viewer.create_api_key("demo", "production"),
            lambda: viewer.revoke_api_key("demo", "production", record["id"]),
        ):
            with pytest.raises(PermissionDenied, match="has role viewer; .* needs deployer"):
                denied()
    with httpx.Client(base_url=demo.url) as http:
        headers = {"Authorization": f"Bearer {demo.token('viewer', name='v2')}"}
        assert http.get(DIGESTS, headers=headers).status_code == 403
        created = http.post(KEYS, json={"name": "x"}, headers=headers)
        assert created.status_code == 403
    with RegistryClient(demo.url, demo.token("deployer", name="ops")) as deployer:
        assert deployer.revoke_api_key("demo", "production", record["id"])["revoked"] is True
        assert deployer.api_key_digests("demo", "production") == []
        with pytest.raises(NotFound, match="has no API key 999"):
            deployer.revoke_api_key("demo", "production", 999)
    audit = demo.registry.audit_list(object_prefix="project/demo/environment/production")
    assert [(e.action, e.actor) for e in audit] == [
        ("apikey.revoke", "ops"),
        ("apikey.create", "ci"),
    ]


def test_a_bundle_downloads_whole_into_the_callers_folder(
    demo: ApiServer, bundles: list[Path], tmp_path: Path
) -> None:
    folder = tmp_path / "fetched"
    folder.mkdir()
    with RegistryClient(demo.url, demo.token("viewer")) as client:
        path = client.fetch_bundle("demo", MODEL, "v1", folder)
        assert path == folder / bundles[0].name
        assert path.read_bytes() == bundles[0].read_bytes()
        assert [p.name for p in folder.iterdir()] == [bundles[0].name]  # no partial file left
        with pytest.raises(NotFound, match="v9"):
            client.fetch_bundle("demo", MODEL, "v9", folder)
        assert [p.name for p in folder.iterdir()] == [bundles[0].name]
    with httpx.Client(base_url=demo.url) as http:
        document = http.get("/openapi.json").json()
    route = document["paths"]["/api/v1/projects/{project}/models/{model}/versions/{version}/bundle"]
    assert set(route["get"]["responses"]["200"]["content"]) == {"application/gzip"}
    assert [p["name"] for p in route["get"]["parameters"]] == ["project", "model", "version"]
