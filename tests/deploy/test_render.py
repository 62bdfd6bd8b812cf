"""``shipyard deploy render``: what each target writes for an environment, and what a change
of the environment changes in it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from shipyard.deploy import (
    BUNDLE_DIR,
    CONTAINER_UID,
    PORT,
    TARGETS,
    _kubernetes,
    read_plan,
    render_environment,
)
from shipyard.deploy._image import API_KEYS
from shipyard.deploy._plan import Arm, Split
from shipyard.errors import InvalidInput, UsageError
from shipyard.registry import Registry

from .conftest import IMAGE, MODEL, changes, documents, read_tree

OVERLAY = "overlays/production"
# lambda renders an image's build context (its bundles and wheels): tests/deploy/test_lambda.py
MANIFESTS = [target for target in TARGETS if target != "lambda"]


def render(registry: Registry, folder: Path, target: str = "kubernetes", **options) -> dict:
    from shipyard.registry import to_json

    return to_json(render_environment(registry, "demo", "production", target, folder, **options))


@pytest.mark.parametrize("target", MANIFESTS)
def test_the_same_revision_renders_byte_identical_files(
    deployed: Registry, tmp_path: Path, target: str
) -> None:
    first = render(deployed, tmp_path / "a", target)
    second = render(deployed, tmp_path / "b", target)
    assert read_tree(tmp_path / "a") == read_tree(tmp_path / "b")
    assert first["digest"] == second["digest"] and first["files"] == second["files"]
    again = render(deployed, tmp_path / "a", target)  # over its own earlier render
    assert read_tree(tmp_path / "a") == read_tree(tmp_path / "b")
    assert again["digest"] == first["digest"]


def test_kubernetes_is_a_base_and_an_overlay_of_the_environment(
    deployed: Registry, tmp_path: Path
) -> None:
    result = render(deployed, tmp_path)
    assert result["files"] == [
        "base/configmap.yaml",
        "base/deployment.yaml",
        "base/hpa.yaml",
        "base/kustomization.yaml",
        "base/networkpolicy.yaml",
        "base/pdb.yaml",
        "base/service.yaml",
        f"{OVERLAY}/configmap.yaml",
        f"{OVERLAY}/deployment-patch.yaml",
        f"{OVERLAY}/hpa-patch.yaml",
        f"{OVERLAY}/kustomization.yaml",
        f"{OVERLAY}/namespace.yaml",
    ]
    assert sorted(read_tree(tmp_path)) == result["files"]


def test_the_deployment_runs_the_environment_as_its_settings_say(
    deployed: Registry, tmp_path: Path
) -> None:
    render(deployed, tmp_path)
    docs = documents(tmp_path)
    base = docs["base/deployment.yaml"]
    pod = base["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # The image's own entrypoint and command run: the manifests never override them.
    assert "command" not in container and "args" not in container
    assert container["ports"] == [{"containerPort": PORT, "name": "http", "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["securityContext"]["runAsUser"] == CONTAINER_UID
    assert pod["securityContext"]["runAsNonRoot"] is True
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert "emptyDir" in volumes[mounts["/var/lib/shipyard"]["name"]]
    # preStop waits for endpoints to forget the pod; then serve drains within the grace.
    assert container["lifecycle"]["preStop"]["sleep"]["seconds"] == 5
    assert pod["terminationGracePeriodSeconds"] >= 5 + 30
    annotations = base["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == (
        "8000",
        "/metrics",
    )

    patch = docs[f"{OVERLAY}/deployment-patch.yaml"]
    assert patch["spec"]["replicas"] == 2
    spec = patch["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"shipyard.dev/worker-group": "cpu-pool"}
    # One worker per pod: a core of a cpu-4-16gb machine, less a tenth for the node.
    assert spec["containers"] == [
        {
            "name": "serve",
            "resources": {
                "limits": {"memory": "3686Mi"},
                "requests": {"cpu": "900m", "memory": "3686Mi"},
            },
        }
    ]
    hpa = docs[f"{OVERLAY}/hpa-patch.yaml"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 12)  # 3 machines x 4 cores
    kustomization = docs[f"{OVERLAY}/kustomization.yaml"]
    assert kustomization["namespace"] == "shipyard-demo-production"
    assert kustomization["images"] == [
        {"name": "shipyard-demo", "newName": "shipyard-demo-production", "newTag": "5"}
    ]
    config = docs[f"{OVERLAY}/configmap.yaml"]["data"]["config.json"]
    assert '"reports": "s3://reports/demo"' in config


def test_a_digest_pinned_image_is_rendered_by_its_digest(
    deployed: Registry, tmp_path: Path
) -> None:
    render(deployed, tmp_path / "k", image=IMAGE)
    render(deployed, tmp_path / "s", "kserve", image=IMAGE)
    render(deployed, tmp_path / "c", "compose", image=IMAGE)
    (image,) = documents(tmp_path / "k")[f"{OVERLAY}/kustomization.yaml"]["images"]
    assert image == {
        "digest": "sha256:" + "ab" * 32,
        "name": "shipyard-demo",
        "newName": "registry.example.com/ml/demo",
    }
    service = documents(tmp_path / "s")["production/inferenceservice.yaml"]
    assert service["spec"]["predictor"]["containers"][0]["image"] == IMAGE
    compose = documents(tmp_path / "c")["production/compose.yaml"]
    assert compose["services"]["serve"]["image"] == IMAGE


@pytest.mark.parametrize(
    "image", ["Registry/UPPER:1", "name:tag with space", "name@sha256:short", ""]
)
def test_an_image_that_is_no_reference_is_refused_naming_the_option(
    deployed: Registry, tmp_path: Path, image: str
) -> None:
    with pytest.raises(UsageError, match="--image"):
        render(deployed, tmp_path, image=image)
    assert not tmp_path.joinpath("base").exists()


def test_an_unknown_target_is_refused_listing_the_targets(
    deployed: Registry, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="kubernetes, kserve, compose, cloudrun, lambda"):
        render(deployed, tmp_path, "helm")


def test_changing_replicas_changes_only_the_replica_counts(
    deployed: Registry, tmp_path: Path
) -> None:
    render(deployed, tmp_path / "before", image=IMAGE)
    deployed.set_setting("replicas", 3, project="demo", env="production")
    render(deployed, tmp_path / "after", image=IMAGE)
    assert changes(tmp_path / "before", tmp_path / "after") == {
        f"{OVERLAY}/deployment-patch.yaml:spec.replicas",
        f"{OVERLAY}/hpa-patch.yaml:spec.minReplicas",
        # A new revision: the pods say which one they run (and roll to it).
        f"{OVERLAY}/deployment-patch.yaml:spec.template.metadata.annotations.shipyard.dev/revision",
    }


def test_changing_the_worker_group_changes_only_placement_and_size(
    deployed: Registry, tmp_path: Path
) -> None:
    render(deployed, tmp_path / "before", image=IMAGE)
    deployed.create_worker_group("big", "cpu-16-128gb", 2)
    deployed.set_setting("worker_group", "big", project="demo", env="production")
    render(deployed, tmp_path / "after", image=IMAGE)
    spec = f"{OVERLAY}/deployment-patch.yaml:spec.template"
    resources = f"{spec}.spec.containers[0].resources"
    assert changes(tmp_path / "before", tmp_path / "after") == {
        f"{spec}.spec.nodeSelector.shipyard.dev/worker-group",
        f"{resources}.limits.memory",
        f"{resources}.requests.memory",
        f"{OVERLAY}/hpa-patch.yaml:spec.maxReplicas",
        f"{spec}.metadata.annotations.shipyard.dev/revision",
    }
    after = documents(tmp_path / "after")
    assert after[f"{OVERLAY}/deployment-patch.yaml"]["spec"]["template"]["spec"][
        "nodeSelector"
    ] == {"shipyard.dev/worker-group": "big"}
    assert after[f"{OVERLAY}/hpa-patch.yaml"]["spec"]["maxReplicas"] == 32  # 2 x 16 cores


def test_a_traffic_split_adds_the_other_arm_behind_weighted_routes(
    deployed: Registry, tmp_path: Path
) -> None:
    render(deployed, tmp_path / "before", image=IMAGE)
    deployed.set_setting(
        "traffic",
        {"weights": {"v1": 90, "v2": 10}, "shadow": None},
        project="demo",
        env="production",
        component=MODEL,
    )
    render(deployed, tmp_path / "after", image=IMAGE)
    changed = changes(tmp_path / "before", tmp_path / "after")
    added = {
        f"{OVERLAY}/{name}:*"
        for name in (
            "deployment-v2.yaml",
            "service-v2.yaml",
            "hpa-v2.yaml",
            "pdb-v2.yaml",
            "httproute.yaml",
        )
    }
    kustomization = f"{OVERLAY}/kustomization.yaml"
    patch = f"{OVERLAY}/deployment-patch.yaml"
    assert changed == added | {
        *(f"{kustomization}:resources[{i}]" for i in range(2, 7)),
        f"{patch}:spec.template.metadata.annotations.shipyard.dev/revision",
        # The primary arm's pods now run serve pinned to v1: the image's command, and --pin.
        *(f"{patch}:spec.template.spec.containers[0].args[{i}]" for i in range(8)),
        # The pool's twelve pods shared by weight: at most 11 for v1, 2 for v2.
        f"{OVERLAY}/hpa-patch.yaml:spec.maxReplicas",
    }
    docs = documents(tmp_path / "after")
    assert docs[f"{OVERLAY}/hpa-patch.yaml"]["spec"]["maxReplicas"] == 11
    assert docs[f"{OVERLAY}/hpa-v2.yaml"]["spec"]["maxReplicas"] == 2
    route = docs[f"{OVERLAY}/httproute.yaml"]
    *addressed, split = route["spec"]["rules"]
    assert split["backendRefs"] == [
        {"name": "shipyard-demo", "port": 80, "weight": 90},
        {"name": "shipyard-demo-v2", "port": 80, "weight": 10},
    ]
    assert split["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    # A request naming its version reaches the one arm that serves it, never the other.
    assert [(r["matches"][0]["path"]["value"], r["backendRefs"]) for r in addressed] == [
        (f"/v2/models/{MODEL}/versions/v1", [{"name": "shipyard-demo", "port": 80}]),
        (f"/v2/models/{MODEL}/versions/v2", [{"name": "shipyard-demo-v2", "port": 80}]),
    ]
    arm = docs[f"{OVERLAY}/deployment-v2.yaml"]
    assert arm["spec"]["replicas"] == 1  # a tenth of 2 replicas, at least one pod
    assert arm["spec"]["selector"]["matchLabels"]["shipyard.dev/arm"] == "v2"
    base = docs["base/service.yaml"]
    assert base["spec"]["selector"]["shipyard.dev/arm"] == "primary"  # never the v2 pods
    # Each arm serves its own version only: the gateway's weights are the only split.
    image_command = ["--bundle-dir", BUNDLE_DIR, "--api-key-file", API_KEYS, "--host", "0.0.0.0"]
    (primary,) = docs[patch]["spec"]["template"]["spec"]["containers"]
    (other,) = arm["spec"]["template"]["spec"]["containers"]
    assert primary["args"] == [*image_command, "--pin", f"{MODEL}=v1"]
    assert other["args"] == [*image_command, "--pin", f"{MODEL}=v2"]
    assert "args" not in docs["base/deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]


def test_a_split_between_more_versions_than_an_http_route_routes_is_refused(
    deployed: Registry,
) -> None:
    plan = read_plan(deployed, "demo", "production")
    arms = tuple(Arm(f"shipyard-demo-v{i}", f"v{i}", f"v{i}", 6, 1, 1) for i in range(1, 17))
    with pytest.raises(UsageError, match="between 16 versions; a Gateway API HTTPRoute routes"):
        _kubernetes.render(dataclasses.replace(plan, split=Split(MODEL, arms)))
    _kubernetes.render(dataclasses.replace(plan, split=Split(MODEL, arms[:15])))


def test_a_promotion_changes_only_the_overlay_of_the_environment_promoted_into(
    deployed: Registry, tmp_path: Path
) -> None:
    for env in ("uat", "production"):
        render_environment(deployed, "demo", env, "kubernetes", tmp_path / "before")
        render_environment(deployed, "demo", env, "kubernetes", tmp_path / "after")
    deployed.add_component("demo", "uat", MODEL, "v2")  # as an admin may: v2 into uat
    deployed.promote("demo", "uat")
    render_environment(deployed, "demo", "production", "kubernetes", tmp_path / "after")
    changed = changes(tmp_path / "before", tmp_path / "after")
    assert {entry.split(":")[0] for entry in changed} == {
        f"{OVERLAY}/kustomization.yaml",
        f"{OVERLAY}/deployment-patch.yaml",
    }
    assert f"{OVERLAY}/kustomization.yaml:images[0].newTag" in changed
    annotations = f"{OVERLAY}/deployment-patch.yaml:spec.template.metadata.annotations"
    assert f"{annotations}.shipyard.dev/components" in changed


def test_a_split_that_ends_leaves_no_arm_files_behind(deployed: Registry, tmp_path: Path) -> None:
    traffic = {"weights": {"v1": 50, "v2": 50}, "shadow": None}
    deployed.set_setting("traffic", traffic, project="demo", env="production", component=MODEL)
    render(deployed, tmp_path)
    assert (tmp_path / OVERLAY / "httproute.yaml").is_file()
    keep = tmp_path / OVERLAY / "README.md"
    keep.write_text("the platform team's notes\n")
    deployed.inherit_setting("traffic", project="demo", env="production", component=MODEL)
    render(deployed, tmp_path)
    left = sorted(p.name for p in (tmp_path / OVERLAY).iterdir())
    assert left == [
        "README.md",  # not written by a render: never removed by one
        "configmap.yaml",
        "deployment-patch.yaml",
        "hpa-patch.yaml",
        "kustomization.yaml",
        "namespace.yaml",
    ]


def test_kserve_renders_a_v2_custom_predictor_with_the_canary_share(
    deployed: Registry, tmp_path: Path
) -> None:
    traffic = {"weights": {"v1": 80, "v2": 20}, "shadow": None}
    deployed.set_setting("traffic", traffic, project="demo", env="production", component=MODEL)
    render(deployed, tmp_path, "kserve")
    service = documents(tmp_path)["production/inferenceservice.yaml"]
    predictor = service["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 12)
    assert predictor["canaryTrafficPercent"] == 20
    assert predictor["nodeSelector"] == {"shipyard.dev/worker-group": "cpu-pool"}
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"
    assert {"name": "PROTOCOL", "value": "v2"} in container["env"]
    assert "command" not in container and "args" not in container


def test_compose_runs_the_replicas_with_a_python_health_check(
    deployed: Registry, tmp_path: Path
) -> None:
    render(deployed, tmp_path, "compose")
    compose = documents(tmp_path)["production/compose.yaml"]
    serve = compose["services"]["serve"]
    assert serve["deploy"]["replicas"] == 2
    assert serve["ports"] == ["8000-8001:8000"]  # one host port per replica
    test = serve["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python3", "-c"] and "/v2/health/ready" in test[3]
    assert "curl" not in " ".join(test)
    assert (serve["read_only"], serve["user"], serve["cap_drop"]) == (True, "10001:10001", ["ALL"])
    assert compose["configs"] == {"environment-config": {"file": "./environment-config.json"}}
    assert compose["secrets"] == {"api-keys": {"file": "./api-keys"}}
    config = (tmp_path / "production" / "environment-config.json").read_text()
    assert '"reports": "s3://reports/demo"' in config


@pytest.mark.parametrize("target", MANIFESTS)
def test_a_render_holds_no_api_key(deployed: Registry, tmp_path: Path, target: str) -> None:
    _, key = deployed.create_api_key("demo", "production", "ci")
    render(deployed, tmp_path, target)
    secret_part = key.split("_", 2)[2]  # sya_ID_SECRET; the secret may hold "_" itself
    for path, data in read_tree(tmp_path).items():
        assert secret_part.encode() not in data, path
    for digest in deployed.api_key_digests("demo", "production"):
        assert all(digest.digest.encode() not in data for data in read_tree(tmp_path).values())


def test_a_render_of_names_the_cluster_refuses_makes_valid_names(
    deployed: Registry, tmp_path: Path, bundles: list[Path]
) -> None:
    deployed.create_project("Credit_Risk.eu", environments=["Prod_1"])
    version = deployed.register_model("Credit_Risk.eu", bundles[0])
    deployed.tag("Credit_Risk.eu", version.model, version.version_id)
    deployed.add_component("Credit_Risk.eu", "Prod_1", MODEL, "v1")
    result = render_environment(deployed, "Credit_Risk.eu", "Prod_1", "kubernetes", tmp_path)
    docs = documents(tmp_path)
    name = docs["base/deployment.yaml"]["metadata"]["name"]
    assert name.startswith("shipyard-credit-risk-eu-") and len(name) <= 63
    assert result.image.split(":")[0].islower()
    assert (tmp_path / "overlays" / "Prod_1" / "kustomization.yaml").is_file()


def test_a_machine_size_a_render_cannot_read_names_the_worker_group(
    deployed: Registry, tmp_path: Path
) -> None:
    deployed.update_worker_group("cpu-pool", machine_size="large")
    with pytest.raises(InvalidInput, match="worker group 'cpu-pool'.*'large'"):
        render(deployed, tmp_path)


def test_component_settings_one_deployment_cannot_honour_are_noted(
    deployed: Registry, tmp_path: Path
) -> None:
    deployed.set_setting("replicas", 5, project="demo", env="production", component=MODEL)
    result = render(deployed, tmp_path)
    assert result["notes"] == [
        f"component {MODEL} sets replicas 5; one deployment serves every model, so the "
        "environment's 2 is used"
    ]
