"""Each render is in the audit log with the revision it came from, and ``env status`` shows
the last one of each target; over the registry API as on the embedded registry."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from shipyard.deploy import render_environment
from shipyard.errors import InvalidInput, NotFound, PermissionDenied
from shipyard.registry import Registry
from shipyard.registry_http import RegistryClient

from ..cli.test_cli import run_cli
from ..conftest import ApiServer
from .conftest import IMAGE

DEPLOYMENTS = "/api/v1/projects/demo/environments/production/deployments"


def test_a_render_is_audited_with_its_revision_image_and_digest(
    deployed: Registry, tmp_path: Path
) -> None:
    result = render_environment(deployed, "demo", "production", "kserve", tmp_path, image=IMAGE)
    (event,) = deployed.audit_list(limit=1)
    assert (event.action, event.actor) == ("deployment.render", "alice")
    assert event.object == "project/demo/environment/production/deployment/kserve"
    assert event.after == {
        "digest": result.digest,
        "image": IMAGE,
        "revision": result.revision,
        "target": "kserve",
    }
    assert result.deployment["audit_event"] == event.id
    assert deployed.audit_verify().ok


def test_the_newest_render_of_each_target_is_listed(deployed: Registry, tmp_path: Path) -> None:
    render_environment(deployed, "demo", "production", "kubernetes", tmp_path / "k")
    render_environment(deployed, "demo", "production", "compose", tmp_path / "c")
    deployed.set_setting("replicas", 4, project="demo", env="production")
    newest = render_environment(deployed, "demo", "production", "kubernetes", tmp_path / "k")
    found = deployed.list_deployments("demo", "production")
    assert [(d.target, d.action, d.revision) for d in found] == [
        ("compose", "render", newest.revision - 1),
        ("kubernetes", "render", newest.revision),
    ]
    assert found[1].digest == newest.digest
    assert deployed.list_deployments("demo", "uat") == []


def test_a_record_names_a_revision_the_environment_has(deployed: Registry) -> None:
    with pytest.raises(NotFound, match="has no revision 99"):
        deployed.record_deployment("demo", "production", "render", "kubernetes", 99, IMAGE)
    for field, call in (
        ("action", lambda: deployed.record_deployment("demo", "production", "push", "k", 1, IMAGE)),
        (
            "target",
            lambda: deployed.record_deployment("demo", "production", "render", "K 8", 1, IMAGE),
        ),
        (
            "image",
            lambda: deployed.record_deployment("demo", "production", "build", "image", 1, ""),
        ),
        (
            "digest",
            lambda: deployed.record_deployment(
                "demo", "production", "build", "image", 1, IMAGE, "md5:1"
            ),
        ),
    ):
        with pytest.raises(InvalidInput, match=field):
            call()


def test_deployers_record_and_viewers_read_deployments_over_the_api(
    api_server: ApiServer, bundles: list[Path], key_pair: tuple[Path, Path]
) -> None:
    registry = api_server.registry
    registry.create_project("demo")
    revision = registry.get_environment("demo", "production").revision
    with RegistryClient(api_server.url, api_server.token("deployer", name="ci")) as deployer:
        record = deployer.record_deployment(
            "demo", "production", "build", "image", revision, IMAGE, "sha256:" + "cd" * 32
        )
        assert (record["actor"], record["action"], record["revision"]) == ("ci", "build", revision)
        with pytest.raises(InvalidInput, match="target"):
            deployer.record_deployment(
                "demo", "production", "render", "Not a target", revision, IMAGE
            )
    with RegistryClient(api_server.url, api_server.token("viewer")) as viewer:
        (listed,) = viewer.list_deployments("demo", "production")
        assert listed == record
        with pytest.raises(PermissionDenied, match="needs deployer"):
            viewer.record_deployment("demo", "production", "render", "kubernetes", revision, IMAGE)
    with httpx.Client(base_url=api_server.url) as http:
        headers = {"Authorization": f"Bearer {api_server.token('deployer', name='d2')}"}
        body = {"action": "render", "target": "kubernetes", "revision": "one", "image": IMAGE}
        answer = http.post(DEPLOYMENTS, json=body, headers=headers)
        assert answer.status_code == 422 and "revision" in answer.json()["message"]


def test_the_cli_renders_and_env_status_shows_the_last_render(
    deployed: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("SHIPYARD_URL", "SHIPYARD_TOKEN", "SHIPYARD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHIPYARD_DATABASE_URL", deployed.engine.url.render_as_string())
    home = Path(str(deployed.engine.url.database)).parent
    monkeypatch.setenv("SHIPYARD_ARTIFACT_STORE", str(home / "artifacts"))
    monkeypatch.setenv("SHIPYARD_USER", "bob")
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(
        capsys, "deploy", "render", "-p", "demo", "-e", "production", "-t", "kubernetes"
    )
    assert code == 0, err
    assert "rendered kubernetes for demo/production revision" in out
    assert "kubectl apply -k deploy/demo/kubernetes/overlays/production" in out
    assert (tmp_path / "deploy/demo/kubernetes/overlays/production/kustomization.yaml").is_file()

    code, out, err = run_cli(capsys, "env", "status", "production", "-p", "demo", "--json")
    assert code == 0, err
    (shown,) = json.loads(out)["deployments"]
    assert (shown["target"], shown["actor"], shown["image"]) == (
        "kubernetes",
        "bob",
        f"shipyard-demo-production:{shown['revision']}",
    )
    code, out, _ = run_cli(capsys, "env", "status", "production", "-p", "demo")
    assert "deployments" in out and "kubernetes" in out

    code, _, err = run_cli(
        capsys, "deploy", "render", "-p", "demo", "-e", "production", "-t", "helm"
    )
    assert code == 2 and err.startswith("error: --target 'helm' is not one of")
