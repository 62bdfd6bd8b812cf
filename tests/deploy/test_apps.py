"""Apps in the deploy renders: each app component its own Deployment and Service (Kubernetes)
or service (Compose), running the image's serve for that app alone with the client's
variables; valid offline, deterministic, and what the rendered pod runs really serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from shipyard.deploy import bake_environment, render_environment
from shipyard.deploy._plan import BUNDLE_DIR
from shipyard.registry import Registry
from shipyard.serving import ServeOptions, build_app

from ..serving._apps import app_bundle
from ..serving.conftest import guarded_server
from ._kustomize import build, check_references
from .conftest import IMAGE, MODEL, documents, read_tree
from .test_validate import VERSIONS, check_jsonschema

APP_CONFIG = {"greeting": "costs $5", "threshold": 0.3}
COMPONENT = "app.kubernetes.io/component"


@pytest.fixture()
def with_apps(
    deployed: Registry, tmp_path_factory: pytest.TempPathFactory, key_pair: tuple[Path, Path]
) -> Registry:
    """``deployed`` whose production also runs the apps ui (with app config and 1 replica of
    its own) and board (the environment's 2 replicas)."""
    folder = tmp_path_factory.mktemp("apps")
    for name, config in (("ui", APP_CONFIG), ("board", None)):
        bundle = app_bundle(folder / name, folder / "dist", key_pair[0], name=name)
        version = deployed.register_app("demo", bundle, config)
        tagged = deployed.tag("demo", name, version.version_id)
        deployed.add_component("demo", "production", name, tagged.tag)
    deployed.set_setting("replicas", 1, project="demo", env="production", component="ui")
    return deployed


def render(registry: Registry, folder: Path, target: str) -> dict[str, Any]:
    done = render_environment(registry, "demo", "production", target, folder, image=IMAGE)
    return {"notes": done.notes, "documents": documents(folder)}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_each_app_is_a_deployment_and_service_of_its_own(
    with_apps: Registry, tmp_path: Path
) -> None:
    done = render(with_apps, tmp_path, "kubernetes")
    assert done["notes"] == []  # an app's own replicas are honoured
    found = done["documents"]
    overlay = "overlays/production"
    deployment = found[f"{overlay}/deployment-app-ui.yaml"]
    service = found[f"{overlay}/service-app-ui.yaml"]
    assert f"{overlay}/deployment-app-board.yaml" in found
    kustomization = found[f"{overlay}/kustomization.yaml"]
    assert {"deployment-app-ui.yaml", "service-app-ui.yaml"} <= set(kustomization["resources"])

    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "shipyard-demo"  # the overlay's images entry names it
    assert container["args"] == ["--bundle-dir", BUNDLE_DIR, "--app", "ui", "--host", "0.0.0.0"]
    assert env_of(container) == {
        "SHIPYARD_PROJECT": "demo",
        "SHIPYARD_ENV": "production",
        "SHIPYARD_APP_NAME": "ui",
        "SHIPYARD_SERVING_URL": "http://shipyard-demo",  # the models' Service
        "SHIPYARD_API_KEY": {
            "secretKeyRef": {
                "key": "app-api-key",
                "name": "shipyard-demo-api-keys",
                "optional": True,
            }
        },
        "SHIPYARD_APP_CONFIG": json.dumps(APP_CONFIG, sort_keys=True, separators=(",", ":")),
        "SHIPYARD_ENVIRONMENT_CONFIG": {
            "configMapKeyRef": {"key": "config.json", "name": "shipyard-demo-config"}
        },
    }
    assert pod["metadata"]["labels"][COMPONENT] == "ui"  # kubectl logs -l …component=ui
    assert pod["metadata"]["annotations"]["shipyard.dev/app"] == "ui=v1"
    assert deployment["spec"]["replicas"] == 1  # the app's own setting, not the models' 2
    assert found[f"{overlay}/deployment-app-board.yaml"]["spec"]["replicas"] == 2
    # The app's Service reaches the app's pods only; the models' Service never reaches them.
    selector = service["spec"]["selector"]
    assert selector == deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    models = found["base/service.yaml"]["spec"]["selector"]
    assert not models.items() <= pod["metadata"]["labels"].items()
    model_pod = found["base/deployment.yaml"]["spec"]["template"]["metadata"]
    assert not selector.items() <= model_pod["labels"].items()
    patch = found[f"{overlay}/deployment-patch.yaml"]["spec"]["template"]["metadata"]
    assert patch["annotations"]["shipyard.dev/components"] == f"{MODEL}=v1"  # models only


def test_every_app_object_is_valid_and_kustomize_builds_it(
    with_apps: Registry, tmp_path: Path
) -> None:
    render(with_apps, tmp_path, "kubernetes")
    objects = build(tmp_path / "overlays" / "production")
    apps = [o for o in objects if COMPONENT in o["metadata"].get("labels", {})]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in apps) == [
        ("Deployment", "shipyard-demo-app-board"),
        ("Deployment", "shipyard-demo-app-ui"),
        ("Service", "shipyard-demo-app-board"),
        ("Service", "shipyard-demo-app-ui"),
    ]
    for found in apps:
        assert found["metadata"]["namespace"] == "shipyard-demo-production"
        for version in VERSIONS:
            kubernetes_validate.validate(found, version, strict=True)
        if found["kind"] == "Deployment":
            (container,) = found["spec"]["template"]["spec"]["containers"]
            assert container["image"] == IMAGE
    assert check_references(tmp_path / "overlays" / "production") == []


def test_a_render_with_apps_is_byte_identical_again(with_apps: Registry, tmp_path: Path) -> None:
    for target in ("kubernetes", "compose"):
        render(with_apps, tmp_path / "one", target)
        render(with_apps, tmp_path / "two", target)
    assert read_tree(tmp_path / "one") == read_tree(tmp_path / "two")


def test_compose_runs_each_app_after_the_models_with_its_variables(
    with_apps: Registry, tmp_path: Path
) -> None:
    compose = render(with_apps, tmp_path, "compose")["documents"]["production/compose.yaml"]
    services = compose["services"]
    assert sorted(services) == ["app-board", "app-ui", "serve"]
    ui = services["app-ui"]
    assert ui["command"] == ["--bundle-dir", BUNDLE_DIR, "--app", "ui", "--host", "0.0.0.0"]
    assert ui["depends_on"] == {"serve": {"condition": "service_healthy"}}
    assert ui["environment"]["SHIPYARD_SERVING_URL"] == "http://serve:8000"
    assert ui["environment"]["SHIPYARD_API_KEY"] == "${SHIPYARD_API_KEY:-}"
    # "$" doubled: compose reads the value as written, not as a variable.
    assert ui["environment"]["SHIPYARD_APP_CONFIG"] == ('{"greeting":"costs $$5","threshold":0.3}')
    # Host ports from 8100 up, in name order, one a replica (board has 2, ui 1).
    assert (services["app-board"]["ports"], ui["ports"]) == (["8100-8101:8000"], ["8102:8000"])
    done = check_jsonschema(
        "--builtin-schema", "vendor.compose-spec", str(tmp_path / "production" / "compose.yaml")
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_kserve_renders_the_models_and_notes_the_apps_it_leaves_out(
    with_apps: Registry, tmp_path: Path
) -> None:
    done = render(with_apps, tmp_path, "kserve")
    assert done["notes"] == [
        "kserve renders the models only: app(s) board, ui are left out; "
        "render them with --target kubernetes or compose"
    ]
    text = yaml.safe_dump(done["documents"])
    assert "--app" not in text and "app.kubernetes.io/component" not in text


def test_the_rendered_app_pod_serves_its_app_calling_the_models_pod(
    with_apps: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    demo_rows: dict[str, Any],
) -> None:
    """The image's two commands, from one baked folder, with the rendered pod's variables:
    the models' pod with its key file, and the app's pod calling it through its URL."""
    _, key = with_apps.create_api_key("demo", "production", "apps")
    baked = bake_environment(with_apps, "demo", "production", tmp_path / "baked")
    assert sorted(b.model for b in baked.bundles) == ["board", MODEL, "ui"]
    assert "starlette" in baked.requirements()  # the apps' requirements join the image's
    keys = tmp_path / "api-keys"
    keys.write_text(f"{key}\n")
    models = ServeOptions(
        bundle_dir=str(baked.folder),
        project="demo",
        environment="production",
        api_key_file=str(keys),
        log_dir=str(tmp_path / "model-logs"),
    )
    found = render(with_apps, tmp_path / "render", "kubernetes")["documents"]
    pod = found["overlays/production/deployment-app-ui.yaml"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    with guarded_server(build_app(models)) as models_url:
        for name, value in env_of(container).items():
            if isinstance(value, str):
                monkeypatch.setenv(name, value)
        # What the cluster resolves: the Service's address, the Secret's and ConfigMap's keys.
        monkeypatch.setenv("SHIPYARD_SERVING_URL", models_url)
        monkeypatch.setenv("SHIPYARD_API_KEY", key)
        monkeypatch.setenv("SHIPYARD_ENVIRONMENT_CONFIG", json.dumps(with_apps_config(with_apps)))
        args = container["args"]
        assert args[:2] == ["--bundle-dir", BUNDLE_DIR] and args[2] == "--app"
        app = ServeOptions(
            bundle_dir=str(baked.folder),
            project="demo",
            environment="production",
            app=args[3],
            log_dir=str(tmp_path / "app-logs"),
        )
        served = build_app(app)
        assert list(served.table.models) == [] and list(served.table.apps) == ["ui"]
        with guarded_server(served) as app_url:
            assert httpx.get(f"{app_url}/v2/health/ready").status_code == 200  # the probe
            rows = [{c: v[0] for c, v in demo_rows["tumours"].items()}]
            answer = httpx.post(f"{app_url}/apps/ui/predict", json=rows, timeout=30)
            assert answer.status_code == 200, answer.text
            direct = httpx.post(
                f"{models_url}/api/v1/projects/demo/environments/production/models/{MODEL}/predict",
                json={"dataframe_records": rows},
                headers={"X-API-Key": key},
            )
            assert answer.json()["answers"] == direct.json()["predictions"]
            config = httpx.get(f"{app_url}/apps/ui/config").json()
            assert config == {"app": APP_CONFIG, "environment": with_apps_config(with_apps)}


def with_apps_config(registry: Registry) -> dict[str, Any]:
    return registry.get_environment_config("demo", "production")
