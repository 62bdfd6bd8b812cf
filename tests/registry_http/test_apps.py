"""Apps over the registry HTTP API: register (an upload, as for models), tag, status, fetch."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from shipyard.apps import AppBundle, build_app_bundle
from shipyard.errors import InvalidInput, PermissionDenied
from shipyard.registry_http import RegistryClient

from ..apps._folders import CREATED_AT, make_app
from ..conftest import ApiServer

APP = "tumour_app"


@pytest.fixture()
def app_bundle(tmp_path: Path, key_pair: tuple[Path, Path]) -> Path:
    folder = make_app(tmp_path / APP)
    return build_app_bundle(folder, tmp_path / "dist", sign_key=key_pair[0], created_at=CREATED_AT)


def test_a_deployer_registers_tags_and_deploys_an_app_over_http(
    api_server: ApiServer, app_bundle: Path, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    api_server.registry.create_project("demo")
    api_server.registry.trust_key("release", key_pair[1].read_text())
    with RegistryClient(api_server.url, api_server.token("deployer")) as client:
        version = client.register_app("demo", app_bundle, {"title": "Triage"})
        assert (version["kind"], version["model"], version["version_id"]) == ("app", APP, 1)
        assert version["signed"] and version["app_config"] == {"title": "Triage"}
        assert client.register_app("demo", app_bundle) == version  # the same bundle: unchanged
        assert client.tag("demo", APP, 1)["tag"] == "v1"
        client.add_component("demo", "integration", APP)
        status = client.status("demo", "integration")
        assert [(c["name"], c["kind"], c["tag"]) for c in status["components"]] == [
            (APP, "app", "v1")
        ]
        fetched = client.fetch_bundle("demo", APP, "v1", tmp_path)
        assert fetched.read_bytes() == app_bundle.read_bytes()
        assert AppBundle(fetched).verify(key_pair[1])["signature_checked"] is True
    actions = [e.action for e in api_server.registry.audit_list(object_prefix="project/demo/app/")]
    assert actions == ["app.tag", "app.register"]


def test_a_bundle_of_the_wrong_kind_is_a_422_naming_the_command_to_use(
    api_server: ApiServer, app_bundle: Path, signed_bundle: Path
) -> None:
    api_server.registry.create_project("demo")
    with RegistryClient(api_server.url, api_server.token("deployer")) as client:
        with pytest.raises(InvalidInput, match="is an app bundle, not a model: use shipyard app"):
            client.register_model("demo", app_bundle)
        with pytest.raises(InvalidInput, match="is a model bundle, not an app: use shipyard model"):
            client.register_app("demo", signed_bundle)
    headers = {"Authorization": f"Bearer {api_server.token('deployer', 'raw')}"}
    with httpx.Client(base_url=api_server.url + "/api/v1", headers=headers) as http:
        response = http.post("/projects/demo/apps", content=signed_bundle.read_bytes())
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidInput"
    assert api_server.registry.list_models("demo") == []


def test_a_viewer_cannot_register_an_app(api_server: ApiServer, app_bundle: Path) -> None:
    api_server.registry.create_project("demo")
    with (
        RegistryClient(api_server.url, api_server.token("viewer")) as client,
        pytest.raises(PermissionDenied, match="deployer"),
    ):
        client.register_app("demo", app_bundle)
