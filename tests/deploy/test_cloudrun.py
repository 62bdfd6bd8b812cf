"""``shipyard deploy render --target cloudrun``: a Cloud Run service (Knative's Service) that
runs the plain serve image, which listens on ``$PORT`` as Cloud Run asks. Checked offline
against a schema of our own written from Knative's CRD and Cloud Run's published limits
(tests/deploy/schemas/knative-service.schema.json); no Google Cloud project is reachable."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from shipyard.deploy import render_environment
from shipyard.deploy._cloudrun import PORT, instance_size
from shipyard.registry import Registry

from ..serving._hold import wait_until
from ..serving.conftest import free_socket
from .conftest import IMAGE, MODEL, changes, documents
from .test_validate import SCHEMAS, check_jsonschema, kubernetes_problems

SERVICE = "production/service.yaml"
SCHEMA = SCHEMAS / "knative-service.schema.json"


def render(registry: Registry, folder: Path) -> dict[str, Any]:
    render_environment(registry, "demo", "production", "cloudrun", folder, image=IMAGE)
    found: dict[str, Any] = documents(folder)[SERVICE]
    return found


def problems(document: dict[str, Any], folder: Path) -> str:
    """check-jsonschema's verdict on ``document`` against our Knative schema ('' if valid)."""
    path = folder / "checked.yaml"
    path.write_text(yaml.safe_dump(document))
    done = check_jsonschema("--schemafile", str(SCHEMA), str(path))
    return "" if done.returncode == 0 else done.stdout + done.stderr


def test_the_service_is_valid_for_knative_and_cloud_run(deployed: Registry, tmp_path: Path) -> None:
    service = render(deployed, tmp_path / "r")
    assert problems(service, tmp_path) == ""
    (container,) = service["spec"]["template"]["spec"]["containers"]
    # Its container, as a Kubernetes container, passes Kubernetes' own strict schema too.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
    assert kubernetes_problems(pod | {"spec": {"containers": [container]}}) == []
    startup = container["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] <= 240  # Cloud Run's bound


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["spec", "template", "spec", "containerConcurency"], 80),  # misspelt
        (["spec", "template", "containers"], []),  # misplaced: it belongs to the spec
        (["spec", "traffic", 0, "percent"], 150),
        (["metadata", "labels", "app.kubernetes.io/name"], "demo"),  # not a Cloud label
        (["spec", "template", "spec", "containers", 0, "ports", 1], {"containerPort": 9000}),
        (["spec", "template", "spec", "containers", 0, "env"], [{"name": "PORT", "value": "1"}]),
        (["spec", "template", "spec", "containers", 0, "resources", "limits", "cpu"], "3"),
    ],
)
def test_our_schema_refuses_what_knative_or_cloud_run_refuse(
    deployed: Registry, tmp_path: Path, path: list[Any], value: Any
) -> None:
    service = copy.deepcopy(render(deployed, tmp_path / "r"))
    holder = service
    for step in path[:-1]:
        holder = holder[step]
    if isinstance(holder, list):
        holder.append(value)
    else:
        holder[path[-1]] = value
    assert problems(service, tmp_path) != ""


def test_the_service_runs_the_plain_image_as_the_settings_say(
    deployed: Registry, tmp_path: Path
) -> None:
    service = render(deployed, tmp_path / "r")
    assert service["metadata"]["name"] == "shipyard-demo-production"
    template = service["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    # replicas 2; worker group cpu-pool: 3 machines of 4 cores, one worker a core.
    assert annotations["autoscaling.knative.dev/minScale"] == "2"
    assert annotations["autoscaling.knative.dev/maxScale"] == "12"
    assert "run.googleapis.com/cpu-throttling" not in annotations
    assert template["metadata"]["labels"]["shipyard-revision"] == "5"
    (container,) = template["spec"]["containers"]
    # The image's own entrypoint and command; Cloud Run sets $PORT to the declared port.
    assert "command" not in container and "args" not in container and "env" not in container
    assert (container["image"], container["ports"]) == (
        IMAGE,
        [{"containerPort": PORT, "name": "http1"}],
    )
    # A cpu-4-16gb pod has 3686 MiB: one vCPU may have up to 4 GiB on Cloud Run.
    assert container["resources"] == {"limits": {"cpu": "1", "memory": "3686Mi"}}
    assert container["startupProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": PORT}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": PORT}
    assert service["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]


def test_changing_replicas_changes_only_the_instance_bounds(
    deployed: Registry, tmp_path: Path
) -> None:
    render(deployed, tmp_path / "before")
    deployed.set_setting("replicas", 3, project="demo", env="production")
    render(deployed, tmp_path / "after")
    template = f"{SERVICE}:spec.template.metadata"
    assert changes(tmp_path / "before", tmp_path / "after") == {
        f"{template}.annotations.autoscaling.knative.dev/minScale",
        f"{template}.labels.shipyard-revision",
    }


def test_low_latency_keeps_the_cpu_and_the_render_notes_what_cloud_run_lacks(
    deployed: Registry, tmp_path: Path
) -> None:
    deployed.set_setting("low_latency_mode", True, project="demo", env="production")
    traffic = {"weights": {"v1": 90, "v2": 10}, "shadow": None}
    deployed.set_setting("traffic", traffic, project="demo", env="production", component=MODEL)
    result = render_environment(deployed, "demo", "production", "cloudrun", tmp_path, image=IMAGE)
    annotations = documents(tmp_path)[SERVICE]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["run.googleapis.com/cpu-throttling"] == "false"
    assert any("no node pools" in note for note in result.notes)
    assert any("split stays inside serve" in note for note in result.notes)


@pytest.mark.parametrize(
    ("pod_mib", "expected"),
    [(256, (1, 512)), (1024, (1, 1024)), (4096, (1, 4096)), (6000, (2, 6000)), (65536, (8, 32768))],
)
def test_an_instance_has_the_vcpus_cloud_run_asks_for_its_memory(
    pod_mib: int, expected: tuple[int, int]
) -> None:
    cpus, memory, notes = instance_size(pod_mib)
    assert (cpus, memory) == expected
    assert bool(notes) == (expected != (1, pod_mib))


@pytest.mark.integration  # runs `shipyard serve` in a subprocess and asks it over HTTP
def test_serve_listens_on_port_as_cloud_run_sets_it(signed_bundle: Path) -> None:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {k: v for k, v in os.environ.items() if k != "SHIPYARD_PORT"} | {"PORT": str(port)}
    shipyard = str(Path(sys.executable).with_name("shipyard"))
    process = subprocess.Popen(
        [shipyard, "serve", "--bundle", str(signed_bundle)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def answering() -> bool:
        assert process.poll() is None, f"shipyard serve exited with {process.returncode}"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=5).is_success
        except httpx.TransportError:
            return False

    try:
        wait_until(answering, f"shipyard serve answers on $PORT {port}", timeout=120)
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_the_plain_image_leaves_the_port_to_the_platform() -> None:
    from shipyard.deploy._image import containerfile

    text = containerfile("localhost/base:1", {}, (3, 11), 0)
    assert "SHIPYARD_PORT=" not in text  # an ENV of it would shadow Cloud Run's $PORT
    assert "os.environ.get('PORT')" in text  # the health check asks the same port


def test_the_command_says_how_to_apply_the_service(
    toy_environment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .test_image import run_cli

    out = tmp_path / "deploy"
    args = ("deploy", "render", "-p", "demo", "-e", "production", "-t", "cloudrun", "-o", str(out))
    code, shown, err = run_cli(capsys, *args)
    assert code == 0, err
    service = out / "production" / "service.yaml"
    assert f"apply: gcloud run services replace {service} --region REGION" in shown
    assert problems(documents(out)[SERVICE], tmp_path) == ""
