"""KServe: an InferenceService whose predictor is serve's own container.

    ENV/inferenceservice.yaml   serving.kserve.io/v1beta1 InferenceService
    ENV/configmap.yaml          the environment config it mounts

A custom predictor has no ``protocolVersion`` field of its own: KServe reads a custom
container's protocol from its ``PROTOCOL`` variable, so ``PROTOCOL=v2`` says that serve
speaks the Open Inference Protocol v2 (the routes KServe's clients and probes use).
``canaryTrafficPercent`` takes the share of the traffic split's other version; KServe
gives that share to the revision of the InferenceService applied last and the rest to
the one rolled out before it (serverless mode only; see docs/deploying.md).
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from . import _pod
from ._files import yaml_text
from ._kubernetes import config_map
from ._plan import GRACE_SECONDS, PORT, Plan, k8s_name

CONTAINER = "kserve-container"  # the name KServe looks for in a custom predictor


def inference_service(plan: Plan, name: str) -> dict[str, Any]:
    """The InferenceService serving ``plan``'s environment under ``name``."""
    container = {
        "env": [{"name": "PROTOCOL", "value": "v2"}, *_pod.llm_environment(plan.llm_key, name)],
        "image": plan.image.reference,
        "imagePullPolicy": "IfNotPresent",
        "livenessProbe": _pod.probe(_pod.LIVE, period=10, failures=3, port=PORT),
        "name": CONTAINER,
        # Knative reads the protocol of the port from its name: http1 is plain HTTP/1.1.
        "ports": [{"containerPort": PORT, "name": "http1", "protocol": "TCP"}],
        "readinessProbe": _pod.probe(_pod.READY, period=5, failures=2, port=PORT),
        "resources": _pod.resources(plan.resources),
        "securityContext": _pod.container_security(),
        "volumeMounts": [*_pod.volume_mounts(), *_pod.llm_mounts(plan.llm_key)],
    }
    predictor: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "containers": [container],
        "maxReplicas": plan.max_replicas,
        "minReplicas": plan.replicas,
        "securityContext": _pod.pod_security(),
        "terminationGracePeriodSeconds": GRACE_SECONDS,
        "volumes": [*_pod.volumes(name), *_pod.llm_volumes(plan.llm_key, name)],
    }
    if plan.node_selector():
        predictor["nodeSelector"] = plan.node_selector()
    if plan.split is not None:
        predictor["canaryTrafficPercent"] = plan.split.arms[1].weight
    annotations = plan.pod_annotations() | {
        "prometheus.kserve.io/path": _pod.METRICS,
        "prometheus.kserve.io/port": str(PORT),
        "serving.kserve.io/enable-prometheus-scraping": "true",
    }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"annotations": annotations, "labels": plan.labels(), "name": name},
        "spec": {"predictor": predictor},
    }


def render(plan: Plan) -> tuple[dict[str, str], list[str]]:
    """The InferenceService and its ConfigMap for ``plan``'s environment, and the folder."""
    if plan.split is not None and len(plan.split.arms) > 2:
        raise UsageError(
            f"component {plan.split.model} splits traffic between "
            f"{len(plan.split.arms)} versions; KServe's canary splits between two"
        )
    name = k8s_name("shipyard", plan.project, plan.environment)
    folder = plan.environment
    return {
        f"{folder}/inferenceservice.yaml": yaml_text(inference_service(plan, name)),
        f"{folder}/configmap.yaml": yaml_text(config_map(plan, plan.config, prefix=name)),
    }, [folder]
