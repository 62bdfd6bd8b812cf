"""``deploy render`` gives serve the language model endpoint's key the environment config's
``llm`` entry points to: from a Secret reference (a variable, or a file under the secrets
root), never the key itself, and only that."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.deploy import render_environment
from shipyard.deploy._plan import LLM_SECRETS_DIR
from shipyard.registry import Registry, llm_endpoint

from ._kustomize import build, check_references
from .conftest import IMAGE, MODEL, documents, read_tree
from .test_validate import check_jsonschema, custom_problems, kubernetes_problems

BASE_URL = "http://10.0.0.7:8000/v1"
VARIABLE = "SHIPYARD_LLM_KEY_PROD"
KEY_FILE = "production/llm.key"
SECRET = "shipyard-demo-llm-key"  # made by the platform team: never rendered
THE_KEY = "sk-live-not-to-be-rendered-0123456789"
OVERLAY = "overlays/production"


def with_llm(registry: Registry, **key: str) -> Registry:
    """``registry`` with production's config naming an llm endpoint (and where its key is)."""
    config = {"reports": "s3://reports/demo", "llm": {"base_url": BASE_URL, **key}}
    registry.set_environment_config("demo", "production", config)
    return registry


def render(registry: Registry, folder: Path, target: str) -> dict[str, Any]:
    render_environment(registry, "demo", "production", target, folder, image=IMAGE)
    return documents(folder)


def without_revision(value: Any) -> Any:
    """``value`` without the revision annotations (a config change makes a new revision)."""
    if isinstance(value, dict):
        return {k: without_revision(v) for k, v in value.items() if k != "shipyard.dev/revision"}
    if isinstance(value, list):
        return [without_revision(v) for v in value]
    return value


def serve_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "serve"
    return container


def no_key_anywhere(folder: Path) -> None:
    for path, data in read_tree(folder).items():
        assert THE_KEY.encode() not in data, path


@pytest.fixture(autouse=True)
def key_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key is set where the render runs: a render must still never write it."""
    monkeypatch.setenv(VARIABLE, THE_KEY)
    monkeypatch.setenv("SHIPYARD_LLM_API_KEY", THE_KEY)


def test_a_key_variable_becomes_a_secret_reference_in_the_overlay_and_nothing_else(
    deployed: Registry, tmp_path: Path
) -> None:
    before = render(deployed, tmp_path / "before", "kubernetes")
    after = render(with_llm(deployed, api_key_env=VARIABLE), tmp_path / "after", "kubernetes")
    reference = {"secretKeyRef": {"key": "api-key", "name": SECRET}}
    patch = serve_container(after[f"{OVERLAY}/deployment-patch.yaml"])
    assert patch["env"] == [{"name": VARIABLE, "valueFrom": reference}]
    assert "volumeMounts" not in patch
    assert "volumes" not in after[f"{OVERLAY}/deployment-patch.yaml"]["spec"]["template"]["spec"]
    # What changed: the patch gained the variable (and the new revision), the ConfigMap
    # the llm entry; the base (shared by every environment) not at all.
    changed = sorted(p for p in after if after[p] != before[p])
    assert changed == [f"{OVERLAY}/configmap.yaml", f"{OVERLAY}/deployment-patch.yaml"]
    unpatched = copy.deepcopy(patch)
    del unpatched["env"]
    assert unpatched == serve_container(before[f"{OVERLAY}/deployment-patch.yaml"])
    # The Deployment the overlay makes is valid and its container reads the variable.
    objects = build(tmp_path / "after" / OVERLAY)
    (made,) = [o for o in objects if o["kind"] == "Deployment"]
    assert kubernetes_problems(made) == []
    assert serve_container(made)["env"] == [{"name": VARIABLE, "valueFrom": reference}]
    assert check_references(tmp_path / "after" / OVERLAY) == []
    no_key_anywhere(tmp_path / "after")


def test_a_key_file_is_a_secret_volume_under_the_secrets_root_serve_is_told_of(
    deployed: Registry, tmp_path: Path
) -> None:
    files = render(with_llm(deployed, api_key_file=KEY_FILE), tmp_path, "kubernetes")
    patch = files[f"{OVERLAY}/deployment-patch.yaml"]
    container = serve_container(patch)
    assert container["env"] == [{"name": "SHIPYARD_SECRETS_ROOT", "value": LLM_SECRETS_DIR}]
    assert container["volumeMounts"] == [
        {"mountPath": LLM_SECRETS_DIR, "name": "llm-key", "readOnly": True}
    ]
    assert patch["spec"]["template"]["spec"]["volumes"] == [
        {
            "name": "llm-key",
            "secret": {"items": [{"key": "api-key", "path": KEY_FILE}], "secretName": SECRET},
        }
    ]
    (made,) = [o for o in build(tmp_path / OVERLAY) if o["kind"] == "Deployment"]
    assert kubernetes_problems(made) == []
    mounts = {m["mountPath"]: m["name"] for m in serve_container(made)["volumeMounts"]}
    assert mounts[LLM_SECRETS_DIR] == "llm-key" and len(mounts) == 5  # the base's four too
    no_key_anywhere(tmp_path)


def test_an_endpoint_that_takes_no_key_renders_no_variable_or_volume(
    deployed: Registry, tmp_path: Path
) -> None:
    before = without_revision(render(deployed, tmp_path / "before", "kubernetes"))
    after = without_revision(render(with_llm(deployed), tmp_path / "after", "kubernetes"))
    assert sorted(p for p in after if after[p] != before[p]) == [f"{OVERLAY}/configmap.yaml"]


def test_the_other_arm_of_a_split_gets_the_key_too(deployed: Registry, tmp_path: Path) -> None:
    traffic = {"weights": {"v1": 90, "v2": 10}, "shadow": None}
    deployed.set_setting("traffic", traffic, project="demo", env="production", component=MODEL)
    files = render(with_llm(deployed, api_key_env=VARIABLE), tmp_path, "kubernetes")
    arm = files[f"{OVERLAY}/deployment-v2.yaml"]
    assert kubernetes_problems(arm) == []
    assert [e["name"] for e in serve_container(arm)["env"]] == [VARIABLE]


@pytest.mark.parametrize("key", [{"api_key_env": VARIABLE}, {"api_key_file": KEY_FILE}])
def test_the_rendered_pod_gives_serve_the_key_the_config_points_to(
    deployed: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: dict[str, str]
) -> None:
    # serve's own lookup (llm_endpoint) in the environment the pod gets: the variable from
    # the Secret, or the Secret's item at its path under the mounted root (a folder here).
    render(with_llm(deployed, **key), tmp_path / "render", "kubernetes")
    (made,) = [o for o in build(tmp_path / "render" / OVERLAY) if o["kind"] == "Deployment"]
    secret_value = "the Secret's api-key"
    mounted = tmp_path / "mounted"
    monkeypatch.setenv("SHIPYARD_LLM_BASE_URL", "")  # the pod names no endpoint of its own
    monkeypatch.delenv("SHIPYARD_LLM_API_KEY")
    monkeypatch.delenv(VARIABLE)
    for entry in serve_container(made)["env"]:
        if "valueFrom" in entry:
            assert entry["valueFrom"]["secretKeyRef"] == {"key": "api-key", "name": SECRET}
            monkeypatch.setenv(entry["name"], secret_value)
        else:
            monkeypatch.setenv(entry["name"], entry["value"].replace(LLM_SECRETS_DIR, str(mounted)))
    for volume in made["spec"]["template"]["spec"]["volumes"]:
        if volume.get("secret", {}).get("secretName") == SECRET:
            for item in volume["secret"]["items"]:
                (mounted / item["path"]).parent.mkdir(parents=True, exist_ok=True)
                (mounted / item["path"]).write_text(secret_value + "\n")
    endpoint = llm_endpoint({"llm": {"base_url": BASE_URL, **key}})
    assert endpoint is not None and endpoint.base_url == BASE_URL
    assert endpoint.key() == secret_value


def test_kserve_gives_its_predictor_the_key_file(deployed: Registry, tmp_path: Path) -> None:
    files = render(with_llm(deployed, api_key_file=KEY_FILE), tmp_path, "kserve")
    service = files["production/inferenceservice.yaml"]
    assert custom_problems("InferenceService", tmp_path / "production/inferenceservice.yaml") == ""
    (container,) = service["spec"]["predictor"]["containers"]
    assert {"name": "SHIPYARD_SECRETS_ROOT", "value": LLM_SECRETS_DIR} in container["env"]
    assert {"mountPath": LLM_SECRETS_DIR, "name": "llm-key", "readOnly": True} in container[
        "volumeMounts"
    ]
    predictor = service["spec"]["predictor"]
    own = {"minReplicas", "maxReplicas", "canaryTrafficPercent"}
    spec = {k: v for k, v in predictor.items() if k not in own}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "predictor"}, "spec": spec}
    assert kubernetes_problems(pod) == []
    secret = "shipyard-demo-production-llm-key"
    assert {
        "name": "llm-key",
        "secret": {"items": [{"key": "api-key", "path": KEY_FILE}], "secretName": secret},
    } in service["spec"]["predictor"]["volumes"]


def test_compose_passes_the_key_variable_on_from_the_shell_never_its_value(
    deployed: Registry, tmp_path: Path
) -> None:
    before = render(deployed, tmp_path / "before", "compose")["production/compose.yaml"]
    files = render(with_llm(deployed, api_key_env=VARIABLE), tmp_path / "after", "compose")
    compose = files["production/compose.yaml"]
    serve = compose["services"]["serve"]
    assert serve["environment"] == {
        VARIABLE: f"${{{VARIABLE}:?set {VARIABLE} to the language model endpoint's key}}"
    }
    assert "environment" not in before["services"]["serve"]
    del serve["environment"]
    assert without_revision(compose) == without_revision(before)  # nothing else changed
    done = check_jsonschema(
        "--builtin-schema",
        "vendor.compose-spec",
        str(tmp_path / "after" / "production" / "compose.yaml"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    no_key_anywhere(tmp_path / "after")


def test_compose_mounts_a_key_file_as_a_secret_under_the_secrets_root(
    deployed: Registry, tmp_path: Path
) -> None:
    files = render(with_llm(deployed, api_key_file=KEY_FILE), tmp_path, "compose")
    compose = files["production/compose.yaml"]
    serve = compose["services"]["serve"]
    assert serve["environment"] == {"SHIPYARD_SECRETS_ROOT": LLM_SECRETS_DIR}
    assert serve["secrets"] == [
        {"source": "api-keys", "target": "/run/secrets/shipyard/api-keys"},
        {"source": "llm-key", "target": f"{LLM_SECRETS_DIR}/{KEY_FILE}"},
    ]
    assert compose["secrets"] == {
        "api-keys": {"file": "./api-keys"},
        "llm-key": {"file": "./llm-key"},  # the operator writes it; a render never does
    }
    assert not (tmp_path / "production" / "llm-key").exists()
    done = check_jsonschema(
        "--builtin-schema", "vendor.compose-spec", str(tmp_path / "production" / "compose.yaml")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    no_key_anywhere(tmp_path)


@pytest.mark.parametrize("target", ["kubernetes", "compose", "kserve"])
def test_a_render_with_an_llm_key_is_byte_identical_each_time(
    deployed: Registry, tmp_path: Path, target: str
) -> None:
    with_llm(deployed, api_key_file=KEY_FILE)
    render(deployed, tmp_path / "a", target)
    render(deployed, tmp_path / "b", target)
    assert read_tree(tmp_path / "a") == read_tree(tmp_path / "b")


def test_cloud_run_says_it_leaves_the_key_to_the_platform(
    deployed: Registry, tmp_path: Path
) -> None:
    with_llm(deployed, api_key_env=VARIABLE)
    done = render_environment(deployed, "demo", "production", "cloudrun", tmp_path, image=IMAGE)
    (note,) = [n for n in done.notes if "language model" in n]
    assert f"the variable {VARIABLE}" in note and THE_KEY not in note


@pytest.mark.parametrize("key", [{"api_key_env": VARIABLE}, {"api_key_file": KEY_FILE}])
def test_kustomize_merges_the_key_into_the_base_deployment(
    deployed: Registry, tmp_path: Path, key: dict[str, str]
) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("`kubectl kustomize` needs kubectl on PATH (Kustomize is built into it)")
    render(with_llm(deployed, **key), tmp_path, "kubernetes")
    done = subprocess.run(
        [kubectl, "kustomize", str(tmp_path / OVERLAY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (made,) = [o for o in yaml.safe_load_all(done.stdout) if o["kind"] == "Deployment"]
    (ours,) = [o for o in build(tmp_path / OVERLAY) if o["kind"] == "Deployment"]
    assert made == ours and kubernetes_problems(made) == []
    container = serve_container(made)
    variable = VARIABLE if "api_key_env" in key else "SHIPYARD_SECRETS_ROOT"
    assert [e["name"] for e in container["env"]] == [variable]
    volumes = {v["name"] for v in made["spec"]["template"]["spec"]["volumes"]}
    assert ("llm-key" in volumes) == ("api_key_file" in key)
    assert len(container["volumeMounts"]) == len(volumes)
