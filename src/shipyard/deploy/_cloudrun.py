"""Cloud Run: a Knative Service (``serving.knative.dev/v1``) running the serve image.

    ENV/service.yaml   gcloud run services replace ENV/service.yaml --region REGION

The container is the image ``shipyard deploy image`` builds, unchanged: Cloud Run sends
requests to the port the service declares (``PORT``, 8080) and tells the container in
``$PORT``, on which serve listens. An instance runs one serve worker, so it is one vCPU
with the memory a pod of the worker group has (raised to Cloud Run's least, and to the
vCPUs Cloud Run asks for that much memory). ``replicas`` and the bound of the worker group
become the instance bounds; ``low_latency_mode`` keeps the CPU allocated between requests.
Cloud Run has no node pools and no weighted routing between Services: a worker group gives
only its machine size, and a traffic split stays inside serve, as with Compose.

Cloud Run's labels are Google Cloud labels (lower-case letters, digits, ``_`` and ``-``),
so the render names the project, environment and revision there with Kubernetes-style
names, not with the ``app.kubernetes.io/*`` labels of the other targets. The API keys are
the image's; a Secret Manager secret mounted at the key file path replaces them (see
docs/deploying.md), and the render does not name one, so that the service starts without.
"""

from __future__ import annotations

from typing import Any

from . import _pod
from ._files import yaml_text
from ._plan import Plan, k8s_name

PORT = 8080  # Cloud Run's default: it sets $PORT to the port the container declares
# The fewest vCPUs Cloud Run allows for a memory limit of up to this many MiB.
CPUS_FOR_MEMORY = ((4096, 1), (8192, 2), (16384, 4), (24576, 6), (32768, 8))
MIN_MEMORY_MIB = 512  # the least of the second generation execution environment
MAX_MEMORY_MIB = 32768


def instance_size(memory_mib: int) -> tuple[int, int, list[str]]:
    """``(vCPUs, MiB, notes)`` of one instance for a pod of ``memory_mib`` MiB."""
    memory = min(max(memory_mib, MIN_MEMORY_MIB), MAX_MEMORY_MIB)
    cpus = next(cpus for most, cpus in CPUS_FOR_MEMORY if memory <= most)
    notes = []
    if memory != memory_mib:
        notes.append(
            f"a pod's memory is {memory_mib} MiB; Cloud Run instances have "
            f"{MIN_MEMORY_MIB} to {MAX_MEMORY_MIB} MiB, so the service asks for {memory} MiB"
        )
    if cpus > 1:
        notes.append(
            f"Cloud Run gives {memory} MiB only with {cpus} vCPUs; serve runs one worker, "
            "so the others stay idle"
        )
    return cpus, memory, notes


def _labels(plan: Plan) -> dict[str, str]:
    return {
        "managed-by": "shipyard",
        "shipyard-environment": k8s_name(plan.environment),
        "shipyard-project": k8s_name(plan.project),
    }


def service(plan: Plan) -> dict[str, Any]:
    """The Cloud Run service of ``plan``'s environment."""
    cpus, memory, _ = instance_size(plan.resources.memory_mib)
    scaling = {
        "autoscaling.knative.dev/maxScale": str(plan.max_replicas),
        "autoscaling.knative.dev/minScale": str(plan.replicas),
        # Loading and warming the models is the slow part of a start.
        "run.googleapis.com/startup-cpu-boost": "true",
    }
    if plan.low_latency:
        scaling["run.googleapis.com/cpu-throttling"] = "false"
    container = {
        "image": plan.image.reference,
        "livenessProbe": _pod.probe(_pod.LIVE, period=10, failures=3, port=PORT),
        "name": "serve",
        "ports": [{"containerPort": PORT, "name": "http1"}],
        "resources": {"limits": {"cpu": str(cpus), "memory": f"{memory}Mi"}},
        # Ready once every model is loaded and warm (up to two minutes).
        "startupProbe": _pod.probe(_pod.READY, period=5, failures=24, port=PORT),
    }
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "labels": _labels(plan),
            "name": k8s_name("shipyard", plan.project, plan.environment),
        },
        "spec": {
            "template": {
                "metadata": {
                    "annotations": scaling,
                    "labels": _labels(plan) | {"shipyard-revision": str(plan.revision)},
                },
                "spec": {"containers": [container]},
            },
            "traffic": [{"latestRevision": True, "percent": 100}],
        },
    }


def notes(plan: Plan) -> list[str]:
    """What Cloud Run does instead of the settings it has no place for."""
    found = list(instance_size(plan.resources.memory_mib)[2])
    if plan.worker_group is not None:
        found.append(
            f"worker group {plan.worker_group}: Cloud Run has no node pools; the group's "
            "machine size sets the instance's memory"
        )
    if plan.split is not None:
        found.append(
            f"component {plan.split.model} splits traffic: the split stays inside serve "
            "(each instance splits as the setting says)"
        )
    return found


def render(plan: Plan) -> tuple[dict[str, str], list[str]]:
    """The service file of ``plan``'s environment, and the folder it is in."""
    return {f"{plan.environment}/service.yaml": yaml_text(service(plan))}, [plan.environment]
