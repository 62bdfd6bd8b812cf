"""What a deployment of one environment needs, read once from the registry: the ``Plan``.

Every target renders from a ``Plan`` alone, so a render is a function of what the registry
says now: the environment's revision (components, settings set on it, environment
config), the settings it inherits, its worker group's machine size and whether it has
API keys. Nothing here reads a clock or the file system. The model components are served
together by one deployment; each app component (``AppPlan``) runs in its own.
"""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
import re
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput, UsageError
from ..registry import RegistryAPI, check_llm_config, to_json

# What the image runs and where (the image build uses the same values; see docs/deploying.md).
CONTAINER_UID = 10001
PORT = 8000
BUNDLE_DIR = "/opt/shipyard/bundles"
DATA_DIR = "/var/lib/shipyard"  # SHIPYARD_HOME: capture files and anything else serve writes
CONFIG_DIR = "/etc/shipyard/environment"
CONFIG_FILE = "config.json"
API_KEYS_DIR = "/run/secrets/shipyard"
API_KEYS_FILE = "api-keys"  # one key a line, as `shipyard serve --api-key-file` reads them
# The key an app sends to the models: in the same Secret, and one of the lines of api-keys.
APP_API_KEY = "app-api-key"
# The language model endpoint's key (environment config llm.api_key_env or api_key_file):
# the item LLM_KEY of a Secret the platform team makes, as a variable or as a file under
# LLM_SECRETS_DIR, which is then serve's secrets root (SHIPYARD_SECRETS_ROOT).
LLM_KEY = "api-key"
LLM_SECRETS_DIR = "/run/secrets/shipyard-llm"
# serve drains for this long after SIGTERM (ServeOptions.drain_seconds); before SIGTERM the
# pod waits PRE_STOP_SECONDS so that endpoints and gateways stop sending it new requests.
DRAIN_SECONDS = 30
PRE_STOP_SECONDS = 5
GRACE_SECONDS = PRE_STOP_SECONDS + DRAIN_SECONDS + 5

# A pod runs one serve worker (models run single-threaded, OMP_NUM_THREADS=1), so it is
# sized as one core of a machine of its worker group, less a tenth for the node's daemons.
NODE_SHARE = 0.9
# Without a worker group there is no machine size to read: a modest default.
DEFAULT_CPU_MILLIS = 500
DEFAULT_MEMORY_MIB = 1024
WORKER_GROUP_LABEL = "shipyard.dev/worker-group"

_MACHINE = re.compile(
    r"(?:[a-z][a-z0-9]*-)?(?P<cores>[0-9]+(?:\.[0-9]+)?)-(?P<memory>[0-9]+(?:\.[0-9]+)?)"
    r"(?P<unit>gb|gib|g|mb|mib|m)"
)
_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    # [HOST[:PORT]/]PATH[:TAG][@sha256:DIGEST]; a host is told from a path by its '/'.
    rf"(?P<name>(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_PATH_PART}(?:/{_PATH_PART})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?"
)


@dataclass(frozen=True)
class Image:
    """A container image reference: ``name``, and a ``tag`` and/or a ``digest``."""

    name: str
    tag: str | None
    digest: str | None

    @property
    def reference(self) -> str:
        """``name:tag``, ``name@sha256:…`` or ``name:tag@sha256:…``."""
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.name}{tag}{digest}"


def parse_image(reference: str) -> Image:
    """An image reference as given to ``--image``; UsageError when it is not one."""
    found = _IMAGE.fullmatch(reference or "")
    if found is None or len(reference) > 400:
        raise UsageError(
            f"--image {reference!r} is not an image reference: use NAME[:TAG] or "
            "NAME@sha256:DIGEST (lower-case name, e.g. registry.example.com/team/model:7)"
        )
    tag = found["tag"]
    if found["digest"] is None and tag is None:
        tag = "latest"
    return Image(found["name"], tag, found["digest"])


def k8s_name(*parts: str) -> str:
    """A Kubernetes object name (a DNS-1035 label) made of ``parts`` joined by '-'.

    Registry names may hold capitals, '_' and '.', and be 63 long: they are lower-cased,
    '_' and '.' become '-', and a name that had to change (or grew too long) ends in six
    hex digits of the original's sha256, so two registry names never make one object name.
    """
    original = "-".join(parts)
    name = re.sub(r"[^a-z0-9-]", "-", original.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if name == original and len(name) <= 63 and _DNS_LABEL.fullmatch(name):
        return name
    suffix = hashlib.sha256(original.encode()).hexdigest()[:6]
    name = name[: 63 - 7].rstrip("-")
    if not name or not name[0].isalpha():
        name = ("x-" + name)[: 63 - 7].rstrip("-")
    return f"{name}-{suffix}"


def default_image(project: str, env: str, revision: int, kind: str = "serve") -> str:
    """The image a render names when given none: ``shipyard-PROJECT-ENV:REVISION``, and
    ``shipyard-PROJECT-ENV-KIND:REVISION`` for another kind of image (``lambda``)."""
    suffix = "" if kind == "serve" else f"-{kind}"
    return f"{k8s_name('shipyard', project, env)}{suffix}:{revision}"


@dataclass(frozen=True)
class Resources:
    """What one pod asks for: CPU in millicores, memory in MiB, and whether it is capped."""

    cpu_millis: int
    memory_mib: int
    cpu_limited: bool

    def requests(self) -> dict[str, str]:
        return {"cpu": _cpu(self.cpu_millis), "memory": f"{self.memory_mib}Mi"}

    def limits(self) -> dict[str, str]:
        limits = {"memory": f"{self.memory_mib}Mi"}
        if self.cpu_limited:
            limits["cpu"] = _cpu(self.cpu_millis)
        return limits


def _cpu(millis: int) -> str:
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


@dataclass(frozen=True)
class Arm:
    """One side of a traffic split, served by its own Deployment and Service.

    ``label`` is ``primary`` for the side the base Deployment runs, else the tag.
    """

    name: str
    label: str
    tag: str
    weight: int
    replicas: int
    max_replicas: int


@dataclass(frozen=True)
class Split:
    """A component's ``traffic`` setting with two or more versions receiving requests (a
    shadow version is left to serve: it answers no request)."""

    model: str
    arms: tuple[Arm, ...]


@dataclass(frozen=True)
class AppPlan:
    """An app component of the environment: it runs in a Deployment and Service of its own.

    ``object_name`` names its Kubernetes objects; ``component`` is its
    ``app.kubernetes.io/component`` label (the component's name, in a label's form).
    """

    name: str
    label: str  # the version deployed
    object_name: str
    component: str
    replicas: int
    app_config: dict[str, Any]

    def app_config_text(self) -> str:
        """The app config as the compact JSON of ``SHIPYARD_APP_CONFIG``."""
        return json.dumps(self.app_config, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class LlmKey:
    """Where serve reads the language model endpoint's key, as the environment config's
    ``llm`` entry names it: the variable ``llm.api_key_env``, or the file
    ``llm.api_key_file`` (relative to the secrets root). Never the key itself."""

    variable: str | None = None
    file: str | None = None


@dataclass(frozen=True)
class Plan:
    """Everything a target renders an environment from (see the module's docstring)."""

    project: str
    environment: str
    revision: int
    image: Image
    app: str  # the Kubernetes name of the project's serving app (base objects)
    namespace: str
    replicas: int
    max_replicas: int
    worker_group: str | None
    resources: Resources
    low_latency: bool
    config: dict[str, Any]
    components: dict[str, str]  # model name -> the version label deployed
    has_api_keys: bool
    split: Split | None
    gateway: tuple[str, str | None]  # (name, namespace) of the Gateway an HTTPRoute joins
    notes: tuple[str, ...]
    apps: tuple[AppPlan, ...] = ()  # by name
    llm_key: LlmKey | None = None  # None: no llm entry, or an endpoint that takes no key

    def labels(self) -> dict[str, str]:
        """The labels every rendered object carries."""
        return {
            "app.kubernetes.io/name": self.app,
            "app.kubernetes.io/part-of": "shipyard",
            "app.kubernetes.io/managed-by": "shipyard",
        }

    def node_selector(self) -> dict[str, str]:
        """The worker group as a nodeSelector (empty without one)."""
        if self.worker_group is None:
            return {}
        return {WORKER_GROUP_LABEL: k8s_name(self.worker_group)}

    def pod_annotations(self) -> dict[str, str]:
        """What a pod says about where it came from: environment, revision, versions."""
        versions = ",".join(f"{name}={label}" for name, label in sorted(self.components.items()))
        return {
            "shipyard.dev/project": self.project,
            "shipyard.dev/environment": self.environment,
            "shipyard.dev/revision": str(self.revision),
            "shipyard.dev/components": versions,
        }

    def app_annotations(self, app: AppPlan) -> dict[str, str]:
        """What an app's pod says about where it came from: environment, revision, version."""
        return {
            "shipyard.dev/project": self.project,
            "shipyard.dev/environment": self.environment,
            "shipyard.dev/revision": str(self.revision),
            "shipyard.dev/app": f"{app.name}={app.label}",
        }


def machine_resources(group: str, machine_size: str, low_latency: bool) -> tuple[Resources, int]:
    """One pod's resources on a machine of ``machine_size``, and how many pods a machine holds.

    InvalidInput names the worker group when its machine size does not read as
    ``[KIND-]CORES-MEMORY`` (``cpu-4-16gb``, ``8-32gib``, ``gpu-16-64gb``).
    """
    found = _MACHINE.fullmatch(machine_size.strip().lower())
    if found is None or float(found["cores"]) <= 0 or float(found["memory"]) <= 0:
        raise InvalidInput(
            f"worker group '{group}' has machine size '{machine_size}', which deploy render "
            "cannot read: use [KIND-]CORES-MEMORY such as cpu-4-16gb"
        )
    cores = float(found["cores"])
    memory = float(found["memory"]) * (1024 if found["unit"] in ("gb", "gib", "g") else 1)
    per_core_mib = max(64, math.floor(memory / cores * NODE_SHARE))
    # Low latency: a whole core, requested and capped alike (Guaranteed QoS: with the
    # kubelet's static CPU manager the pod gets a core of its own).
    cpu = 1000 if low_latency else math.floor(1000 * NODE_SHARE)
    return Resources(cpu, per_core_mib, low_latency), max(1, math.floor(cores))


def default_resources(low_latency: bool) -> Resources:
    """A pod's resources when no worker group says what machines it runs on."""
    if low_latency:
        return Resources(1000, DEFAULT_MEMORY_MIB, True)
    return Resources(DEFAULT_CPU_MILLIS, DEFAULT_MEMORY_MIB, False)


def read_plan(registry: RegistryAPI, project: str, env: str, image: str | None = None) -> Plan:
    """The plan for ``env`` as the registry has it now (embedded registry or client).

    Raises NotFound for an unknown project or environment, UsageError for a bad ``image``
    or a traffic setting the targets cannot express, InvalidInput for a worker group
    whose machine size cannot be read.
    """
    status: dict[str, Any] = to_json(registry.status(project, env))
    revision = int(status["revision"])
    settings = {key: value["value"] for key, value in status["settings"].items()}
    replicas = int(settings["replicas"])
    low_latency = bool(settings["low_latency_mode"])
    group = settings["worker_group"]
    if group is None:
        resources, max_replicas = default_resources(low_latency), replicas
    else:
        groups = {g["name"]: g for g in to_json(registry.list_worker_groups())}
        if group not in groups:
            raise InvalidInput(f"worker group '{group}' of {project}/{env} does not exist")
        size = str(groups[group]["machine_size"])
        resources, per_machine = machine_resources(group, size, low_latency)
        max_replicas = max(replicas, per_machine * int(groups[group]["count"]))
    keys = to_json(registry.list_api_keys(project, env))
    app = k8s_name("shipyard", project)
    models = [c for c in status["components"] if not is_app(c)]
    components = {c["name"]: c["tag"] or str(c["version_id"]) for c in models}
    return Plan(
        project=project,
        environment=env,
        revision=revision,
        image=parse_image(default_image(project, env, revision) if image is None else image),
        app=app,
        namespace=k8s_name("shipyard", project, env),
        replicas=replicas,
        max_replicas=max_replicas,
        worker_group=group,
        resources=resources,
        low_latency=low_latency,
        config=dict(status["config"]),
        components=components,
        has_api_keys=any(not k["revoked"] for k in keys),
        split=_split(app, models, replicas, max_replicas),
        gateway=_gateway(status["config"]),
        notes=tuple(_notes(status, settings)),
        apps=tuple(_app_plan(app, c) for c in sorted(status["components"], key=_name) if is_app(c)),
        llm_key=_llm_key(status["config"]),
    )


def _llm_key(config: dict[str, Any]) -> LlmKey | None:
    """What the environment config's ``llm`` entry says of its key; InvalidInput (or
    PermissionDenied) when the entry breaks the registry's rules."""
    check_llm_config(config)
    entry = config.get("llm") or {}
    if "api_key_env" in entry:
        return LlmKey(variable=entry["api_key_env"])
    if "api_key_file" in entry:  # checked: relative, and never leading out of the root
        return LlmKey(file=posixpath.normpath(entry["api_key_file"].replace("\\", "/")))
    return None


def is_app(component: dict[str, Any]) -> bool:
    """Whether a component of a status is an app (a component without a kind is a model)."""
    return component.get("kind", "model") == "app"


def _name(component: dict[str, Any]) -> str:
    return str(component["name"])


_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


def _app_plan(app: str, component: dict[str, Any]) -> AppPlan:
    name = component["name"]
    return AppPlan(
        name=name,
        label=component["tag"] or str(component["version_id"]),
        object_name=k8s_name(app, "app", name),
        component=name if _LABEL_VALUE.fullmatch(name) else k8s_name(name),
        replicas=int(component["settings"]["replicas"]["value"]),
        app_config=dict(component.get("app_config") or {}),
    )


def _split(
    app: str, components: list[dict[str, Any]], replicas: int, max_replicas: int
) -> Split | None:
    """The environment's traffic split, if one component sends requests to two versions."""
    splits = []
    for component in components:
        traffic = (component["settings"].get("traffic") or {}).get("value") or {}
        live = {t: int(w) for t, w in (traffic.get("weights") or {}).items() if w > 0}
        if len(live) >= 2:
            splits.append((component, live))
    if not splits:
        return None
    if len(splits) > 1:
        names = ", ".join(c["name"] for c, _ in splits)
        raise UsageError(
            f"components {names} each split traffic between versions; a render routes one "
            "split per environment: keep a traffic split on one component at a time"
        )
    component, live = splits[0]
    deployed = component["tag"]
    by_number = sorted(live, key=lambda tag: int(tag[1:]))
    # The version the environment deploys, when it receives requests; else the heaviest
    # (the lowest tag of equal weights).
    primary = deployed if deployed in live else max(by_number, key=lambda tag: live[tag])
    order = [primary] + [tag for tag in by_number if tag != primary]
    arms = tuple(
        Arm(
            name=app if tag == primary else k8s_name(app, tag),
            label="primary" if tag == primary else tag,
            tag=tag,
            weight=live[tag],
            replicas=max(1, math.ceil(replicas * live[tag] / 100)),
            max_replicas=max(
                max(1, math.ceil(replicas * live[tag] / 100)),
                math.ceil(max_replicas * live[tag] / 100),
            ),
        )
        for tag in order
    )
    return Split(component["name"], arms)


def _gateway(config: dict[str, Any]) -> tuple[str, str | None]:
    """The Gateway an HTTPRoute joins: environment config ``deploy.gateway`` (``[NS/]NAME``)."""
    deploy = config.get("deploy") if isinstance(config, dict) else None
    given = deploy.get("gateway") if isinstance(deploy, dict) else None
    if given is None:
        return "shipyard", None
    namespace, _, name = str(given).rpartition("/")
    for part in (name, namespace):
        if part and not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", part):
            raise InvalidInput(
                f"environment config deploy.gateway {given!r} must read NAME or NAMESPACE/NAME "
                "(lower-case letters, digits and '-')"
            )
    return name, namespace or None


def _notes(status: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    """What a render cannot honour as set, said once each."""
    notes = []
    for component in status["components"]:
        name = component["name"]
        if is_app(component):
            if (component["settings"].get("traffic") or {}).get("value"):
                notes.append(
                    f"app {name} sets traffic; an app runs the version the environment "
                    "deploys, so it is ignored"
                )
            # An app's replicas are honoured: it runs in a deployment of its own.
            keys: tuple[str, ...] = ("worker_group", "low_latency_mode")
            why = "its pods are sized as the models'"
        else:
            keys = ("replicas", "worker_group", "low_latency_mode")
            why = "one deployment serves every model"
        for key in keys:
            setting = component["settings"][key]
            if setting["level"] == "component" and setting["value"] != settings[key]:
                notes.append(
                    f"component {name} sets {key} {setting['value']!r}; {why}, so the "
                    f"environment's {settings[key]!r} is used"
                )
    return notes
