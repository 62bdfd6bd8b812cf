"""Every rendered file checked offline against the real schemas: the Kubernetes OpenAPI
schemas (``kubernetes-validate``, strict), Compose's own schema (``check-jsonschema``'s
vendored copy), and for the KServe and Gateway API objects, schemas of our own written
from their CRDs (tests/deploy/schemas). No cluster is involved; see docs/deploying.md."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shipyard.deploy import render_environment
from shipyard.registry import Registry

from ._kustomize import build, check_references
from .conftest import IMAGE, MODEL, documents

SCHEMAS = Path(__file__).parent / "schemas"
# The oldest Kubernetes the manifests are for (preStop's sleep action is on by default
# from 1.30) and the newest whose schemas kubernetes-validate carries.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
CUSTOM_KINDS = {"HTTPRoute": "httproute", "InferenceService": "inferenceservice"}


def kubernetes_problems(document: dict[str, Any]) -> list[str]:
    """What strict validation against each version's schema says is wrong ([] when valid)."""
    problems = []
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{version}: {exc.message} at {list(exc.path)}")
    return problems


def check_jsonschema(*args: str) -> subprocess.CompletedProcess[str]:
    """Run check-jsonschema (offline: local or vendored schemas only)."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--no-cache", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def custom_problems(kind: str, path: Path) -> str:
    """check-jsonschema's verdict on ``path`` against our schema of ``kind`` ('' when valid)."""
    schema = SCHEMAS / f"{CUSTOM_KINDS[kind]}.schema.json"
    done = check_jsonschema("--schemafile", str(schema), str(path))
    return "" if done.returncode == 0 else done.stdout + done.stderr


@pytest.fixture()
def split(deployed: Registry) -> Registry:
    """``deployed`` with production splitting tumour_triage 90/10 between v1 and v2."""
    traffic = {"weights": {"v1": 90, "v2": 10}, "shadow": None}
    deployed.set_setting("traffic", traffic, project="demo", env="production", component=MODEL)
    return deployed


def test_our_crd_schemas_are_valid_json_schemas() -> None:
    done = check_jsonschema("--check-metaschema", *map(str, sorted(SCHEMAS.glob("*.json"))))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_kubernetes_file_is_valid_for_kubernetes_and_the_gateway_api(
    split: Registry, tmp_path: Path
) -> None:
    for env in ("uat", "production"):
        render_environment(split, "demo", env, "kubernetes", tmp_path, image=IMAGE)
    checked = set()
    for path, document in documents(tmp_path).items():
        if path.endswith("kustomization.yaml") or path.endswith("-patch.yaml"):
            continue  # not objects: read by Kustomize (checked below)
        if document["kind"] in CUSTOM_KINDS:
            assert custom_problems(document["kind"], tmp_path / path) == "", path
        else:
            assert kubernetes_problems(document) == [], path
        checked.add(document["kind"])
    assert checked == {
        "ConfigMap",
        "Deployment",
        "HTTPRoute",
        "HorizontalPodAutoscaler",
        "Namespace",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
    }


def test_each_overlay_references_what_exists_and_patches_the_base(
    split: Registry, tmp_path: Path
) -> None:
    for env in ("uat", "production"):
        render_environment(split, "demo", env, "kubernetes", tmp_path, image=IMAGE)
    for env in ("uat", "production"):
        assert check_references(tmp_path / "overlays" / env) == []


def test_the_objects_an_overlay_makes_are_valid_and_carry_the_environment(
    split: Registry, tmp_path: Path
) -> None:
    render_environment(split, "demo", "production", "kubernetes", tmp_path, image=IMAGE)
    objects = build(tmp_path / "overlays" / "production")
    for found in objects:
        if found["kind"] not in CUSTOM_KINDS:
            assert kubernetes_problems(found) == [], found["metadata"]["name"]
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    assert sorted(deployments) == ["shipyard-demo", "shipyard-demo-v2"]
    for deployment in deployments.values():
        assert deployment["metadata"]["namespace"] == "shipyard-demo-production"
        pod = deployment["spec"]["template"]
        assert pod["metadata"]["labels"]["shipyard.dev/environment"] == "production"
        assert pod["spec"]["nodeSelector"] == {"shipyard.dev/worker-group": "cpu-pool"}
        (container,) = pod["spec"]["containers"]
        assert container["image"] == IMAGE
        assert container["resources"]["requests"] == {"cpu": "900m", "memory": "3686Mi"}
        assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"


def test_kustomize_builds_each_overlay_into_the_objects_the_tests_check(
    split: Registry, tmp_path: Path
) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("`kubectl kustomize` needs kubectl on PATH (Kustomize is built into it)")
    for env in ("uat", "production"):
        render_environment(split, "demo", env, "kubernetes", tmp_path, image=IMAGE)
    for env in ("uat", "production"):
        overlay = tmp_path / "overlays" / env
        done = subprocess.run(
            [kubectl, "kustomize", str(overlay)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        built = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(done.stdout)}
        assert built == {(o["kind"], o["metadata"]["name"]): o for o in build(overlay)}, env
        for key, found in built.items():
            if found["kind"] in CUSTOM_KINDS:
                (tmp_path / "route.yaml").write_text(yaml.safe_dump(found))
                assert custom_problems(found["kind"], tmp_path / "route.yaml") == "", key
            else:
                assert kubernetes_problems(found) == [], key


def test_a_misplaced_field_fails_the_kubernetes_validation(
    deployed: Registry, tmp_path: Path
) -> None:
    render_environment(deployed, "demo", "production", "kubernetes", tmp_path)
    deployment = documents(tmp_path)["base/deployment.yaml"]
    wrong = copy.deepcopy(deployment)
    wrong["spec"]["nodeSelector"] = {"a": "b"}  # belongs in the pod template's spec
    assert kubernetes_problems(wrong) != []
    assert kubernetes_problems(deployment) == []


def test_the_inference_service_is_valid_and_its_pod_is_a_valid_pod(
    split: Registry, tmp_path: Path
) -> None:
    render_environment(split, "demo", "production", "kserve", tmp_path, image=IMAGE)
    service_path = tmp_path / "production" / "inferenceservice.yaml"
    assert custom_problems("InferenceService", service_path) == ""
    docs = documents(tmp_path)
    assert kubernetes_problems(docs["production/configmap.yaml"]) == []
    predictor = docs["production/inferenceservice.yaml"]["spec"]["predictor"]
    # The predictor embeds a pod spec: those fields, as a Pod, pass Kubernetes' own schema.
    own = {"minReplicas", "maxReplicas", "canaryTrafficPercent"}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "predictor"},
        "spec": {k: v for k, v in predictor.items() if k not in own},
    }
    assert kubernetes_problems(pod) == []


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("InferenceService", ["spec", "predictor", "canaryTrafficPercent"], 150),
        ("InferenceService", ["spec", "predictor", "container"], []),  # misspelt
        ("InferenceService", ["spec", "predictor", "containers", 0, "env"], []),  # no PROTOCOL
        ("HTTPRoute", ["spec", "rules", 0, "backendRefs", 0, "weight"], -1),
        ("HTTPRoute", ["spec", "rules", 0, "backendRefs", 0, "port"], None),  # a Service's port
    ],
)
def test_our_crd_schemas_refuse_what_the_crds_refuse(
    split: Registry, tmp_path: Path, kind: str, path: list[Any], value: Any
) -> None:
    target, file = (
        ("kserve", "production/inferenceservice.yaml")
        if kind == "InferenceService"
        else ("kubernetes", "overlays/production/httproute.yaml")
    )
    render_environment(split, "demo", "production", target, tmp_path / "r", image=IMAGE)
    document = documents(tmp_path / "r")[file]
    holder = document
    for step in path[:-1]:
        holder = holder[step]
    if value is None:
        del holder[path[-1]]
    else:
        holder[path[-1]] = value
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(document))
    assert custom_problems(kind, broken) != ""


def test_the_compose_file_is_valid_for_the_compose_specification(
    deployed: Registry, tmp_path: Path
) -> None:
    render_environment(deployed, "demo", "production", "compose", tmp_path, image=IMAGE)
    done = check_jsonschema(
        "--builtin-schema", "vendor.compose-spec", str(tmp_path / "production" / "compose.yaml")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The same check refuses a Compose file with a misspelt key.
    compose = documents(tmp_path)["production/compose.yaml"]
    compose["services"]["serve"]["replica"] = 2
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(compose))
    done = check_jsonschema("--builtin-schema", "vendor.compose-spec", str(broken))
    assert done.returncode != 0
