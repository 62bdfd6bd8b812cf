"""Compose: one ``compose.yaml`` for ``docker compose`` or ``podman compose``.

    ENV/compose.yaml
    ENV/environment-config.json   the environment config, mounted as a config

When the environment has API keys, the file names a secret read from ``ENV/api-keys``,
which the operator writes (one key a line; Shipyard never does): the image carries the
keys' digests from its build, and the mounted file replaces them. A traffic split stays inside
serve: Compose has no weighted routing, and each replica splits as the setting says.

When the environment config's ``llm`` entry names where the language model endpoint's key
is, serve gets it without the file ever holding it: ``llm.api_key_env`` VAR is passed on
from the shell running compose (``VAR: ${VAR:?…}``: compose refuses to start without it);
``llm.api_key_file`` PATH is the secret ``llm-key``, read from ``ENV/llm-key`` (which the
operator writes), mounted at PATH under the secrets root ``SHIPYARD_SECRETS_ROOT`` names.

Each app component is a service of its own, ``app-NAME``: the same image serving only that
app (under ``/apps/NAME/``), started once the models are healthy, published on the host
from port 8100 up (in name order, one port a replica). It reaches the models at
``http://serve:8000`` with the key the operator exports as ``SHIPYARD_API_KEY`` in the
shell running compose (one of the lines of ``api-keys``); ``$`` in its config is doubled,
so compose passes it on as written.
"""

from __future__ import annotations

import json
from typing import Any

from ..registry import SECRETS_ROOT_ENV
from ._files import json_text, yaml_text
from ._plan import (
    API_KEYS_DIR,
    API_KEYS_FILE,
    CONFIG_DIR,
    CONFIG_FILE,
    CONTAINER_UID,
    DATA_DIR,
    GRACE_SECONDS,
    LLM_SECRETS_DIR,
    PORT,
    AppPlan,
    Plan,
    k8s_name,
)
from ._pod import READY, app_arguments

CONFIG_SOURCE = "environment-config.json"
APP_PORTS = PORT + 100  # the first host port of the apps
APP_KEY_VARIABLE = "SHIPYARD_API_KEY"  # the key apps call the models with, from the shell
LLM_KEY_SECRET = "llm-key"  # the secret (and ENV/llm-key, its file) of an llm key file

# The image has Python and no curl: the health check asks the ready route with urllib.
HEALTH_CHECK = (
    "import sys, urllib.request; "
    f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{PORT}{READY}', timeout=2)"
    ".status == 200 else 1)"
)


def _ports(replicas: int, first: int = PORT) -> list[str]:
    """Host ports from ``first`` for ``replicas`` containers of serve's port (one each)."""
    if replicas == 1:
        return [f"{first}:{PORT}"]
    return [f"{first}-{first + replicas - 1}:{PORT}"]


def _literal(text: str) -> str:
    """``text`` as Compose reads it literally (``$`` would start an interpolation)."""
    return text.replace("$", "$$")


def _container(plan: Plan, replicas: int) -> dict[str, Any]:
    """What every container of the environment shares: the image, its limits, its checks."""
    limits: dict[str, Any] = {"memory": f"{plan.resources.memory_mib}M"}
    if plan.resources.cpu_limited:
        limits["cpus"] = f"{plan.resources.cpu_millis / 1000:g}"
    return {
        "cap_drop": ["ALL"],
        "deploy": {
            "replicas": replicas,
            "resources": {
                "limits": limits,
                "reservations": {
                    "cpus": f"{plan.resources.cpu_millis / 1000:g}",
                    "memory": f"{plan.resources.memory_mib}M",
                },
            },
        },
        "healthcheck": {
            "interval": "10s",
            "retries": 3,
            "start_period": "120s",
            "test": ["CMD", "python3", "-c", HEALTH_CHECK],
            "timeout": "3s",
        },
        "image": plan.image.reference,
        "read_only": True,
        "security_opt": ["no-new-privileges:true"],
        "stop_grace_period": f"{GRACE_SECONDS}s",
        "stop_signal": "SIGTERM",
        "tmpfs": ["/tmp"],
        "user": f"{CONTAINER_UID}:{CONTAINER_UID}",
        # An anonymous volume: each replica writes its own capture files and logs.
        "volumes": [DATA_DIR],
    }


def _app_service(plan: Plan, app: AppPlan, first_port: int) -> dict[str, Any]:
    """The service of one app component (its host ports from ``first_port``)."""
    environment = {
        "SHIPYARD_API_KEY": f"${{{APP_KEY_VARIABLE}:-}}",
        "SHIPYARD_APP_CONFIG": _literal(app.app_config_text()),
        "SHIPYARD_APP_NAME": _literal(app.name),
        "SHIPYARD_ENV": _literal(plan.environment),
        "SHIPYARD_ENVIRONMENT_CONFIG": _literal(
            json.dumps(plan.config, sort_keys=True, separators=(",", ":"))
        ),
        "SHIPYARD_PROJECT": _literal(plan.project),
        "SHIPYARD_SERVING_URL": f"http://serve:{PORT}",
    }
    return _container(plan, app.replicas) | {
        "command": app_arguments(app.name),
        "depends_on": {"serve": {"condition": "service_healthy"}},
        "environment": environment,
        "labels": plan.app_annotations(app),
        "ports": _ports(app.replicas, first_port),
    }


def compose_file(plan: Plan) -> dict[str, Any]:
    """The Compose document for ``plan``'s environment."""
    service = _container(plan, plan.replicas) | {
        "configs": [{"source": "environment-config", "target": f"{CONFIG_DIR}/{CONFIG_FILE}"}],
        "labels": plan.pod_annotations(),
        "ports": _ports(plan.replicas),
    }
    services = {"serve": service}
    port = APP_PORTS
    for app in plan.apps:
        services[f"app-{app.name}"] = _app_service(plan, app, port)
        port += app.replicas
    document: dict[str, Any] = {
        "configs": {"environment-config": {"file": f"./{CONFIG_SOURCE}"}},
        "name": k8s_name("shipyard", plan.project, plan.environment),
        "services": services,
    }
    secrets: dict[str, Any] = {}
    mounted: list[dict[str, str]] = []
    if plan.has_api_keys:
        mounted.append({"source": "api-keys", "target": f"{API_KEYS_DIR}/{API_KEYS_FILE}"})
        secrets["api-keys"] = {"file": f"./{API_KEYS_FILE}"}
    key = plan.llm_key
    if key is not None and key.variable is not None:
        # From the shell running compose, which must set it: never the key in the file.
        required = f"set {key.variable} to the language model endpoint's key"
        service["environment"] = {key.variable: f"${{{key.variable}:?{required}}}"}
    elif key is not None and key.file is not None:
        service["environment"] = {SECRETS_ROOT_ENV: LLM_SECRETS_DIR}
        mounted.append({"source": LLM_KEY_SECRET, "target": f"{LLM_SECRETS_DIR}/{key.file}"})
        secrets[LLM_KEY_SECRET] = {"file": f"./{LLM_KEY_SECRET}"}
    if secrets:
        service["secrets"] = mounted
        document["secrets"] = secrets
    return document


def render(plan: Plan) -> tuple[dict[str, str], list[str]]:
    """``compose.yaml`` and the config file it mounts, and the folder they are in."""
    folder = plan.environment
    return {
        f"{folder}/compose.yaml": yaml_text(compose_file(plan)),
        f"{folder}/{CONFIG_SOURCE}": json_text(plan.config),
    }, [folder]
