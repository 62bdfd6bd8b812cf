"""The pod that runs ``shipyard serve``, as Kubernetes and KServe both describe it.

The models' container runs the image's own entrypoint and command (no ``command`` or
``args`` here): the image decides how serve starts, the manifests only where it runs. Each arm
of a traffic split is the exception: its ``args`` are the image's command with ``--pin
MODEL=VERSION`` added (``serve_arguments``), so that it answers with its own version only.
An app's container runs the same entrypoint with the arguments that serve only that app.
It runs as a fixed non-root user with a read-only root file system and no capabilities;
it may write only to two empty volumes, ``/tmp`` and the data folder (the image's
``SHIPYARD_HOME``). The API keys' Secret, when there is one, is mounted where the image's
command reads its key file. When the environment config's ``llm`` entry names where the
language model endpoint's key is, the container gets it from a Secret of its own
(``llm_secret``), never rendered: as the variable ``llm.api_key_env`` names, or as the
file ``llm.api_key_file`` names under a secrets root mounted from it.
"""

from __future__ import annotations

from typing import Any

from ..registry import SECRETS_ROOT_ENV
from ._plan import (
    API_KEYS_DIR,
    API_KEYS_FILE,
    BUNDLE_DIR,
    CONFIG_DIR,
    CONTAINER_UID,
    DATA_DIR,
    LLM_KEY,
    LLM_SECRETS_DIR,
    PORT,
    PRE_STOP_SECONDS,
    LlmKey,
    Resources,
)

CONTAINER = "serve"
READY = "/v2/health/ready"  # 503 until the models are loaded, and again while draining
LIVE = "/v2/health/live"
METRICS = "/metrics"


# The image's command (its CMD: see _image.py); a container given ``args`` replaces it whole.
SERVE_ARGUMENTS = (
    "--bundle-dir",
    BUNDLE_DIR,
    "--api-key-file",
    f"{API_KEYS_DIR}/{API_KEYS_FILE}",
    "--host",
    "0.0.0.0",
)


def serve_arguments(model: str, version: str) -> list[str]:
    """The image's command serving ``model`` at ``version`` only: one arm of a split."""
    return [*SERVE_ARGUMENTS, "--pin", f"{model}={version}"]


def app_arguments(app: str) -> list[str]:
    """The arguments of the image's ``shipyard serve`` that serve only the app ``app``."""
    return ["--bundle-dir", BUNDLE_DIR, "--app", app, "--host", "0.0.0.0"]


def config_map_name(prefix: str) -> str:
    """The ConfigMap holding the environment config."""
    return f"{prefix}-config"


def api_keys_secret(prefix: str) -> str:
    """The Secret (made by the platform team, never rendered) holding the API keys."""
    return f"{prefix}-api-keys"


def llm_secret(prefix: str) -> str:
    """The Secret (made by the platform team, never rendered) holding the language model
    endpoint's key, under the item ``api-key``."""
    return f"{prefix}-llm-key"


def llm_environment(key: LlmKey | None, prefix: str) -> list[dict[str, Any]]:
    """The serve container's variables for the llm key: the one ``llm.api_key_env`` names,
    from the Secret; or, for a key file, the secrets root it is mounted under."""
    if key is None:
        return []
    if key.variable is not None:
        reference = {"key": LLM_KEY, "name": llm_secret(prefix)}
        return [{"name": key.variable, "valueFrom": {"secretKeyRef": reference}}]
    return [{"name": SECRETS_ROOT_ENV, "value": LLM_SECRETS_DIR}]


def llm_mounts(key: LlmKey | None) -> list[dict[str, Any]]:
    """Where the container sees the llm key file's Secret (nothing for a variable)."""
    if key is None or key.file is None:
        return []
    return [{"mountPath": LLM_SECRETS_DIR, "name": "llm-key", "readOnly": True}]


def llm_volumes(key: LlmKey | None, prefix: str) -> list[dict[str, Any]]:
    """The llm key file's Secret, its key at the path ``llm.api_key_file`` names."""
    if key is None or key.file is None:
        return []
    items = [{"key": LLM_KEY, "path": key.file}]
    return [{"name": "llm-key", "secret": {"items": items, "secretName": llm_secret(prefix)}}]


def pod_security() -> dict[str, Any]:
    """The pod's securityContext: the image's non-root user, the runtime's seccomp profile."""
    return {
        "fsGroup": CONTAINER_UID,
        "runAsGroup": CONTAINER_UID,
        "runAsNonRoot": True,
        "runAsUser": CONTAINER_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    """The container's securityContext: read-only root, nothing to escalate to."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def probe(path: str, period: int, failures: int, port: int | str = "http") -> dict[str, Any]:
    """An HTTP GET probe of ``path``."""
    return {
        "failureThreshold": failures,
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 2,
    }


def resources(found: Resources) -> dict[str, Any]:
    """A container's resources block."""
    return {"limits": found.limits(), "requests": found.requests()}


def scratch_mounts() -> list[dict[str, Any]]:
    """Where the container sees its two writable volumes."""
    return [{"mountPath": "/tmp", "name": "tmp"}, {"mountPath": DATA_DIR, "name": "data"}]


def scratch_volumes() -> list[dict[str, Any]]:
    """The two writable scratch folders (``/tmp`` and the data folder)."""
    return [
        {"emptyDir": {"sizeLimit": "1Gi"}, "name": "tmp"},
        {"emptyDir": {"sizeLimit": "4Gi"}, "name": "data"},
    ]


def volume_mounts() -> list[dict[str, Any]]:
    """Where the container sees its volumes."""
    return [
        *scratch_mounts(),
        {"mountPath": CONFIG_DIR, "name": "environment-config", "readOnly": True},
        {"mountPath": API_KEYS_DIR, "name": "api-keys", "readOnly": True},
    ]


def volumes(prefix: str) -> list[dict[str, Any]]:
    """The pod's volumes: two scratch folders, the config, and the API keys' Secret.

    ``prefix`` begins the ConfigMap's and the Secret's names. The Secret is optional: the
    image carries the digests of the environment's API keys at build time, and a key
    file mounted from the Secret replaces them (a rotation or revocation without a
    rebuild). Shipyard never renders the Secret itself.
    """
    return [
        *scratch_volumes(),
        {"configMap": {"name": config_map_name(prefix)}, "name": "environment-config"},
        {"name": "api-keys", "secret": {"optional": True, "secretName": api_keys_secret(prefix)}},
    ]


def scrape_annotations() -> dict[str, str]:
    """Prometheus's conventional scrape annotations for serve's /metrics."""
    return {
        "prometheus.io/path": METRICS,
        "prometheus.io/port": str(PORT),
        "prometheus.io/scrape": "true",
    }


def lifecycle() -> dict[str, Any]:
    """Wait before SIGTERM, so that no new request arrives once serve starts draining."""
    return {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}}
