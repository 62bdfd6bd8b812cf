"""Kubernetes: a Kustomize base for the project and an overlay for each environment.

    base/                 what every environment shares (depends on the project only)
      kustomization.yaml, deployment.yaml, service.yaml, hpa.yaml, pdb.yaml,
      configmap.yaml, networkpolicy.yaml
    overlays/ENV/         what this environment sets: namespace, image, replicas, worker
      kustomization.yaml  group (nodeSelector, resources), environment config, the llm key;
      namespace.yaml      with a traffic split, the primary arm's pin and the other arm's
                          Deployment, Service, HPA;
      deployment-patch.yaml, hpa-patch.yaml, configmap.yaml, [*-vN.yaml, httproute.yaml]
      [deployment-app-NAME.yaml, service-app-NAME.yaml]   each app component's own

Each app runs the same image as the models, serving only that app (``shipyard serve
--bundle-dir … --app NAME``, under ``/apps/NAME/``), and reaches the models through their
Service (``SHIPYARD_SERVING_URL``) with the key in the API keys' Secret under
``app-api-key`` (``SHIPYARD_API_KEY``; it must be one of the lines of ``api-keys`` too).
Its pods carry ``app.kubernetes.io/component: NAME``: ``kubectl logs -l
app.kubernetes.io/component=NAME`` shows what it logged. With a traffic split, apps call
the primary arm's Service: the weights apply at the gateway.

A traffic split is one Deployment and Service per version that receives requests, behind
an ``HTTPRoute`` with the weights. Each arm's serve is pinned to its version (``--pin
MODEL=VERSION`` in its ``args``; the primary arm's in the overlay's patch), so that the
gateway's weights are the only split and each arm's metrics and logs are its version's.

Rendering one environment writes the base and that environment's overlay only: a
promotion into production changes files under ``overlays/production`` and nowhere else.
Each environment gets its own namespace, so the base's object names are the same in all.
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from . import _pod
from ._files import json_text, yaml_text
from ._plan import (
    APP_API_KEY,
    CONFIG_FILE,
    GRACE_SECONDS,
    PORT,
    AppPlan,
    Arm,
    Plan,
    default_resources,
    k8s_name,
)

SERVICE_PORT = 80
# An HTTPRoute holds at most 16 rules: one for each arm's own version, and the split.
MAX_ARMS = 15
CPU_TARGET_PERCENT = 70
COMPONENT_LABEL = "app.kubernetes.io/component"


def base_folder() -> str:
    return "base"


def overlay_folder(plan: Plan) -> str:
    return f"overlays/{plan.environment}"


def _meta(plan: Plan, name: str, arm: str | None = None, **extra: Any) -> dict[str, Any]:
    labels = plan.labels() | ({"shipyard.dev/arm": arm} if arm else {})
    return {"labels": labels, "name": name, **extra}


def _selector(plan: Plan, arm: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": plan.app, "shipyard.dev/arm": arm}


def deployment(
    plan: Plan,
    name: str,
    arm: str,
    *,
    replicas: int,
    pod: dict[str, Any],
    annotations: dict[str, str],
    resources: dict[str, Any],
    llm: bool = False,
    args: list[str] | None = None,
) -> dict[str, Any]:
    """A Deployment of serve pods for one arm (``primary`` when there is no split).

    With ``llm``, its container gets the llm key the environment config points to;
    ``args`` replace the image's command (``_pod.serve_arguments``: an arm's pin).
    """
    labels = plan.labels() | {"shipyard.dev/arm": arm}
    key = plan.llm_key if llm else None
    environment = _pod.llm_environment(key, plan.app)
    return _deployment(
        plan,
        name,
        labels,
        _selector(plan, arm),
        {**({"env": environment} if environment else {}), **({"args": args} if args else {})},
        replicas=replicas,
        pod=pod | {"volumes": [*_pod.volumes(plan.app), *_pod.llm_volumes(key, plan.app)]},
        annotations=annotations,
        resources=resources,
        mounts=[*_pod.volume_mounts(), *_pod.llm_mounts(key)],
    )


def _deployment(
    plan: Plan,
    name: str,
    labels: dict[str, str],
    selector: dict[str, str],
    container: dict[str, Any],
    *,
    replicas: int,
    pod: dict[str, Any],
    annotations: dict[str, str],
    resources: dict[str, Any],
    mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    """A Deployment of the image's pods: ``container`` adds to the serve container."""
    container = {
        "image": plan.app,  # the overlay's `images` entry names the real image
        "imagePullPolicy": "IfNotPresent",
        "lifecycle": _pod.lifecycle(),
        "livenessProbe": _pod.probe(_pod.LIVE, period=10, failures=3),
        "name": _pod.CONTAINER,
        "ports": [{"containerPort": PORT, "name": "http", "protocol": "TCP"}],
        "readinessProbe": _pod.probe(_pod.READY, period=5, failures=2),
        "resources": resources,
        "securityContext": _pod.container_security(),
        # Loading and warming every model may take a while: up to five minutes.
        "startupProbe": _pod.probe(_pod.LIVE, period=5, failures=60),
        "volumeMounts": mounts,
        **container,
    }
    template_spec = {
        "automountServiceAccountToken": False,
        "containers": [container],
        "enableServiceLinks": False,
        "securityContext": _pod.pod_security(),
        "terminationGracePeriodSeconds": GRACE_SECONDS,
        "topologySpreadConstraints": [
            {
                "labelSelector": {"matchLabels": selector},
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
            }
        ],
        **pod,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"labels": labels, "name": name},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector},
            "strategy": {
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
                "type": "RollingUpdate",
            },
            "template": {
                "metadata": {
                    "annotations": _pod.scrape_annotations() | annotations,
                    "labels": labels,
                },
                "spec": template_spec,
            },
        },
    }


def service(plan: Plan, name: str, arm: str) -> dict[str, Any]:
    """A ClusterIP Service in front of one arm's pods."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(plan, name, arm),
        "spec": {
            "ports": [
                {"name": "http", "port": SERVICE_PORT, "protocol": "TCP", "targetPort": "http"}
            ],
            "selector": _selector(plan, arm),
            "type": "ClusterIP",
        },
    }


def autoscaler(plan: Plan, name: str, arm: str, low: int, high: int) -> dict[str, Any]:
    """An autoscaling/v2 HorizontalPodAutoscaler on CPU, between ``low`` and ``high`` pods."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(plan, name, arm),
        "spec": {
            "maxReplicas": high,
            "metrics": [
                {
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "averageUtilization": CPU_TARGET_PERCENT,
                            "type": "Utilization",
                        },
                    },
                    "type": "Resource",
                }
            ],
            "minReplicas": low,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        },
    }


def disruption_budget(plan: Plan, name: str, arm: str) -> dict[str, Any]:
    """At most one pod of an arm down at a time for a node drain."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(plan, name, arm),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(plan, arm)}},
    }


def config_map(plan: Plan, config: dict[str, Any], prefix: str | None = None) -> dict[str, Any]:
    """The environment config as a file, for whatever in the pod wants to read it.

    Its name begins with ``prefix`` (default: the app's name).
    """
    return {
        "apiVersion": "v1",
        "data": {CONFIG_FILE: json_text(config)},
        "kind": "ConfigMap",
        "metadata": _meta(plan, _pod.config_map_name(prefix or plan.app)),
    }


def network_policy(plan: Plan) -> dict[str, Any]:
    """Only serve's port is open to other pods; nothing else reaches the pods."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(plan, plan.app),
        "spec": {
            "ingress": [{"ports": [{"port": PORT, "protocol": "TCP"}]}],
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": plan.app}},
            "policyTypes": ["Ingress"],
        },
    }


def _base(plan: Plan) -> dict[str, str]:
    """The project's base: one arm, one pod, default resources, an empty config."""
    name = plan.app
    documents = {
        "deployment.yaml": deployment(
            plan,
            name,
            "primary",
            replicas=1,
            pod={},
            annotations={},
            resources=_pod.resources(default_resources(low_latency=False)),
        ),
        "service.yaml": service(plan, name, "primary"),
        "hpa.yaml": autoscaler(plan, name, "primary", 1, 1),
        "pdb.yaml": disruption_budget(plan, name, "primary"),
        "configmap.yaml": config_map(plan, {}),
        "networkpolicy.yaml": network_policy(plan),
    }
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(documents),
    }
    files = {name: yaml_text(doc) for name, doc in documents.items()}
    files["kustomization.yaml"] = yaml_text(kustomization)
    return {f"{base_folder()}/{name}": text for name, text in files.items()}


def _pod_settings(plan: Plan) -> dict[str, Any]:
    selector = plan.node_selector()
    return {"nodeSelector": selector} if selector else {}


def _pin(plan: Plan, arm: Arm) -> list[str]:
    """The arguments that make an arm's pods serve its version only."""
    assert plan.split is not None
    return _pod.serve_arguments(plan.split.model, arm.tag)


def _arm_documents(plan: Plan, arm: Arm) -> dict[str, dict[str, Any]]:
    """The other arm of a split: a whole Deployment, Service, HPA and PDB of its own."""
    return {
        f"deployment-{arm.tag}.yaml": deployment(
            plan,
            arm.name,
            arm.label,
            replicas=arm.replicas,
            pod=_pod_settings(plan),
            annotations=plan.pod_annotations(),
            resources=_pod.resources(plan.resources),
            llm=True,
            args=_pin(plan, arm),
        ),
        f"service-{arm.tag}.yaml": service(plan, arm.name, arm.label),
        f"hpa-{arm.tag}.yaml": autoscaler(
            plan, arm.name, arm.label, arm.replicas, arm.max_replicas
        ),
        f"pdb-{arm.tag}.yaml": disruption_budget(plan, arm.name, arm.label),
    }


def http_route(plan: Plan) -> dict[str, Any]:
    """Gateway API weights between the arms' Services: the traffic split, at the gateway.

    A request that names its version (``/v2/models/M/versions/V/…``) goes to the arm that
    serves V (a longer path prefix wins in the Gateway API); every other request is split.
    """
    assert plan.split is not None
    name, namespace = plan.gateway
    parent = {"name": name} | ({"namespace": namespace} if namespace else {})
    addressed = [
        {
            "backendRefs": [{"name": arm.name, "port": SERVICE_PORT}],
            "matches": [{"path": {"type": "PathPrefix", "value": _version_path(plan, arm)}}],
        }
        for arm in plan.split.arms
    ]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": _meta(plan, plan.app),
        "spec": {
            "parentRefs": [parent],
            "rules": [
                *addressed,
                {
                    "backendRefs": [
                        {"name": arm.name, "port": SERVICE_PORT, "weight": arm.weight}
                        for arm in plan.split.arms
                    ],
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                },
            ],
        },
    }


def _version_path(plan: Plan, arm: Arm) -> str:
    """The Open Inference Protocol's routes of one version (registry names need no quoting)."""
    assert plan.split is not None
    return f"/v2/models/{plan.split.model}/versions/{arm.tag}"


def app_environment(plan: Plan, app: AppPlan) -> list[dict[str, Any]]:
    """The variables ``shipyard.client`` reads in an app's pod."""
    return [
        {"name": "SHIPYARD_PROJECT", "value": plan.project},
        {"name": "SHIPYARD_ENV", "value": plan.environment},
        {"name": "SHIPYARD_APP_NAME", "value": app.name},
        {"name": "SHIPYARD_SERVING_URL", "value": f"http://{plan.app}"},  # the models' Service
        {
            "name": "SHIPYARD_API_KEY",
            "valueFrom": {
                "secretKeyRef": {
                    "key": APP_API_KEY,
                    "name": _pod.api_keys_secret(plan.app),
                    "optional": True,
                }
            },
        },
        {"name": "SHIPYARD_APP_CONFIG", "value": app.app_config_text()},
        {
            "name": "SHIPYARD_ENVIRONMENT_CONFIG",
            "valueFrom": {
                "configMapKeyRef": {"key": CONFIG_FILE, "name": _pod.config_map_name(plan.app)}
            },
        },
    ]


def _app_selector(plan: Plan, app: AppPlan) -> dict[str, str]:
    return {"app.kubernetes.io/name": plan.app, COMPONENT_LABEL: app.component}


def app_deployment(plan: Plan, app: AppPlan) -> dict[str, Any]:
    """The Deployment of one app component: the image serving that app alone."""
    return _deployment(
        plan,
        app.object_name,
        plan.labels() | {COMPONENT_LABEL: app.component},
        _app_selector(plan, app),
        {"args": _pod.app_arguments(app.name), "env": app_environment(plan, app)},
        replicas=app.replicas,
        pod=_pod_settings(plan) | {"volumes": _pod.scratch_volumes()},
        annotations=plan.app_annotations(app),
        resources=_pod.resources(plan.resources),
        mounts=_pod.scratch_mounts(),
    )


def app_service(plan: Plan, app: AppPlan) -> dict[str, Any]:
    """A ClusterIP Service in front of one app's pods."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "labels": plan.labels() | {COMPONENT_LABEL: app.component},
            "name": app.object_name,
        },
        "spec": {
            "ports": [
                {"name": "http", "port": SERVICE_PORT, "protocol": "TCP", "targetPort": "http"}
            ],
            "selector": _app_selector(plan, app),
            "type": "ClusterIP",
        },
    }


def _app_documents(plan: Plan) -> dict[str, dict[str, Any]]:
    documents = {}
    for app in plan.apps:
        file = k8s_name("app", app.name)
        documents[f"deployment-{file}.yaml"] = app_deployment(plan, app)
        documents[f"service-{file}.yaml"] = app_service(plan, app)
    return documents


def _overlay(plan: Plan) -> dict[str, str]:
    """This environment's overlay of the base."""
    primary = plan.split.arms[0] if plan.split else None
    replicas = primary.replicas if primary else plan.replicas
    high = primary.max_replicas if primary else plan.max_replicas
    container: dict[str, Any] = {
        "name": _pod.CONTAINER,
        "resources": _pod.resources(plan.resources),
    }
    # The llm key the environment config points to: added to the base's lists (a strategic
    # merge: env by name, volumeMounts by path, volumes by name).
    if environment := _pod.llm_environment(plan.llm_key, plan.app):
        container["env"] = environment
    if mounts := _pod.llm_mounts(plan.llm_key):
        container["volumeMounts"] = mounts
    if primary is not None:
        container["args"] = _pin(plan, primary)  # the base's pods serve the primary arm only
    spec: dict[str, Any] = {"containers": [container], **_pod_settings(plan)}
    if volumes := _pod.llm_volumes(plan.llm_key, plan.app):
        spec["volumes"] = volumes
    patches = {
        "deployment-patch.yaml": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": plan.app},
            "spec": {
                "replicas": replicas,
                "template": {"metadata": {"annotations": plan.pod_annotations()}, "spec": spec},
            },
        },
        "hpa-patch.yaml": {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": plan.app},
            "spec": {"maxReplicas": high, "minReplicas": replicas},
        },
        "configmap.yaml": config_map(plan, plan.config),
    }
    resources: dict[str, dict[str, Any]] = {
        "namespace.yaml": {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "labels": {
                    # The pods meet the restricted Pod Security Standard: enforce it.
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
                "name": plan.namespace,
            },
        }
    }
    if plan.split is not None:
        for arm in plan.split.arms[1:]:
            resources |= _arm_documents(plan, arm)
        resources["httproute.yaml"] = http_route(plan)
    resources |= _app_documents(plan)
    image: dict[str, str] = {"name": plan.app, "newName": plan.image.name}
    if plan.image.digest:
        image["digest"] = plan.image.digest
    elif plan.image.tag:
        image["newTag"] = plan.image.tag
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "images": [image],
        "kind": "Kustomization",
        "labels": [
            {
                "includeSelectors": False,
                "includeTemplates": True,
                "pairs": {"shipyard.dev/environment": k8s_name(plan.environment)},
            }
        ],
        "namespace": plan.namespace,
        "patches": [{"path": name} for name in patches],
        "resources": [f"../../{base_folder()}", *resources],
    }
    files = {name: yaml_text(doc) for name, doc in {**resources, **patches}.items()}
    files["kustomization.yaml"] = yaml_text(kustomization)
    return {f"{overlay_folder(plan)}/{name}": text for name, text in files.items()}


def render(plan: Plan) -> tuple[dict[str, str], list[str]]:
    """The files of the base and of ``plan``'s environment's overlay, and the folders owned.

    UsageError for a split between more versions than an HTTPRoute can route.
    """
    if plan.split is not None and len(plan.split.arms) > MAX_ARMS:
        raise UsageError(
            f"component {plan.split.model} splits traffic between {len(plan.split.arms)} "
            f"versions; a Gateway API HTTPRoute routes at most {MAX_ARMS}"
        )
    return _base(plan) | _overlay(plan), [base_folder(), overlay_folder(plan)]
