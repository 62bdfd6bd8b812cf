"""Following an environment in the registry: load its versions, swap when its revision moves.

The registry is the embedded one (``Registry``) or a registry server (``RegistryClient``
over ``SHIPYARD_URL``): both have the same methods, and the loader reads their results as
plain JSON data (``to_json``), so either serves alike.

``EnvironmentLoader.load()`` reads the environment's status (components, versions,
``traffic`` settings, environment config), fetches every version it needs (from the
artifact store, or downloaded from the server) and checks its sha256 against the digest
the registry names, verifies and loads each bundle (manifest, and the signature when
``SHIPYARD_PUBLIC_KEY`` is set) with its llm nodes calling the endpoint the config's
``llm`` entry names (unless this host names its own: ``shipyard.registry.llm_endpoint``),
warms it up with the bundle's example input, and returns a new ``RouteTable`` in which
each version answers with its app config. Versions already loaded are reused. Each app
component is fetched and checked the same way (digest, manifest, signature and trust
policy) before it is extracted and its code imported (``_apps``), and mounted in the
table with its version's app config and the environment config. ``only_app`` loads one
app and no model (``shipyard serve --app``: an app's own deployment). ``pins`` serve a
model at one version it holds and no other (``shipyard serve --pin MODEL=VERSION``: one arm
of a traffic split rendered as a Deployment of its own): its ``traffic`` weights are
ignored, its shadow is kept, and the other versions are neither loaded nor addressable.
A revision in which a pinned model or version is no longer held fails to load.

``Follower`` polls the revision number every ``poll_seconds`` on a background thread
(the registry sends no notifications) and refreshes the environment's API keys at the
same time. A new revision is loaded next to the running one and swapped in only once
every version in it is warm; a revision that fails to load leaves the running table in
place and is retried after ``retry_seconds``.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..apps import AppBundle
from ..errors import ArtifactError, NotFound, StoreError, TamperedArtifact
from ..registry import LoadPolicy, llm_endpoint, to_json
from ..runtime import Artifact, Endpoint
from ._apps import AppMount, LoadedApp, load_app
from ._keys import KeyRing
from ._logs import ComponentLogs
from ._routes import ModelRoute, RouteTable
from ._runner import ModelRunner

if TYPE_CHECKING:
    from ..registry import Registry
    from ..registry_http import RegistryClient

logger = logging.getLogger("shipyard.serving")


def is_app(component: dict[str, Any]) -> bool:
    """Whether a component of a status is an app (a component without a kind is a model)."""
    return component.get("kind", "model") == "app"


def _deployed(component: dict[str, Any]) -> str:
    """The label of the version a component deploys: its tag, else its candidate id."""
    return str(component["tag"] or component["version_id"])


def _traffic(component: dict[str, Any]) -> dict[str, Any] | None:
    """A component's ``traffic`` setting (None when it sets none)."""
    found: dict[str, Any] | None = component["settings"].get("traffic", {}).get("value")
    return found or None


def _held(component: dict[str, Any]) -> dict[str, str]:
    """The versions of a model component a server holds, by label, each with its roles:
    ``deployed``, ``traffic N%`` (a live share of its ``traffic`` setting), ``shadow``."""
    roles = {_deployed(component): ["deployed"]}
    traffic = _traffic(component) or {}
    for tag, weight in traffic.get("weights", {}).items():
        if weight > 0:
            roles.setdefault(tag, []).append(f"traffic {weight}%")
    if traffic.get("shadow"):
        roles.setdefault(traffic["shadow"], []).append("shadow")
    return {label: ", ".join(found) for label, found in roles.items()}


def _check_pins(pins: Mapping[str, str], status: dict[str, Any], where: str) -> None:
    """See ``EnvironmentLoader.check_pins``; ``where`` is ``PROJECT/ENV``."""
    models = {c["name"]: c for c in status["components"] if not is_app(c)}
    for model, version in sorted(pins.items()):
        component = models.get(model)
        if component is None:
            raise NotFound(
                f"--pin {model}={version}: {where} holds no model {model!r} at revision "
                f"{status['revision']} (models: {', '.join(sorted(models)) or 'none'})"
            )
        held = _held(component)
        if version not in held:
            listed = ", ".join(f"{label} ({role})" for label, role in held.items())
            raise NotFound(
                f"--pin {model}={version}: {where} does not hold {model} {version} at "
                f"revision {status['revision']} (it holds {listed})"
            )


@dataclass(frozen=True)
class CaptureSettings:
    """An environment config's ``capture`` entry: the share of requests whose inputs and
    outputs are kept, where, and whether llm calls (and their rendered prompts) are kept."""

    rate: float = 0.0
    folder: str | None = None
    llm_calls: bool = True
    llm_prompts: bool = False


def capture_settings(config: dict[str, Any]) -> CaptureSettings:
    """The ``capture`` entry of an environment config (the defaults where it says nothing)."""
    entry = config.get("capture") or {}
    if not isinstance(entry, dict):
        return CaptureSettings()
    rate = float(entry.get("rate", 0.0))
    return CaptureSettings(
        min(max(rate, 0.0), 1.0),
        entry.get("folder"),
        entry.get("llm_calls", True) is not False,
        entry.get("llm_prompts", False) is True,
    )


class EnvironmentLoader:
    """Builds route tables for one environment of the registry, reusing loaded versions.

    ``registry`` is a ``Registry`` or a ``RegistryClient``; serving over a client needs a
    token with role deployer (the environment's API key digests are not a viewer's).
    """

    def __init__(
        self,
        registry: Registry | RegistryClient,
        project: str,
        environment: str,
        *,
        public_key: str | None = None,
        capture_rate: float | None = None,
        logs: ComponentLogs | None = None,
        only_app: str | None = None,
        pins: Mapping[str, str] | None = None,
    ) -> None:
        self.registry = registry
        self.project = project
        self.environment = environment
        self.public_key = public_key
        self.capture_rate = capture_rate  # overrides the environment config when set
        self.logs = logs  # where the apps' component logs go
        self.only_app = only_app
        self.pins = dict(pins or {})  # model -> the one version it is served at
        # By (model, version label, digest, llm endpoint): an endpoint moved by the
        # environment config loads the version again, calling the new one.
        self._loaded: dict[tuple[str, str, str, Endpoint | None], ModelRunner] = {}
        self._previous: set[tuple[str, str, str, Endpoint | None]] = set()
        self._used: set[tuple[str, str, str, Endpoint | None]] = set()
        self._endpoint: Endpoint | None = None
        self._apps: dict[tuple[str, str, str], LoadedApp] = {}
        self._previous_apps: set[tuple[str, str, str]] = set()
        self._policy: LoadPolicy | None = None
        self._status: dict[str, Any] | None = None  # the status the current load read

    def revision(self) -> int:
        """The environment's current revision number."""
        found = to_json(self.registry.get_environment(self.project, self.environment))
        return int(found["revision"])

    def keys(self) -> KeyRing:
        """The environment's live API keys (their digests)."""
        return KeyRing(self.registry.api_key_digests(self.project, self.environment))

    def status(self) -> dict[str, Any]:
        """The environment's status as plain JSON data, whichever registry answered."""
        found: dict[str, Any] = to_json(self.registry.status(self.project, self.environment))
        return found

    def drift_scores(self) -> list[dict[str, Any]]:
        """The environment's latest drift results (``shipyard monitor drift``) as JSON data."""
        found: list[dict[str, Any]] = to_json(
            self.registry.drift_results(self.project, self.environment, latest=True)
        )
        return found

    def settings(self) -> dict[str, Any]:
        """The environment's effective settings (``replicas``, …) as plain values."""
        return {key: setting["value"] for key, setting in self.status()["settings"].items()}

    def check_pins(self, status: dict[str, Any] | None = None) -> None:
        """NotFound, naming what is held, unless each pin names a model of the environment
        (as ``status`` has it; default: now) and a version it holds for it: its deployed
        version, a version its ``traffic`` weights give a share, or its shadow."""
        where = f"{self.project}/{self.environment}"
        _check_pins(self.pins, self.status() if status is None else status, where)

    def load(self) -> RouteTable:
        """A warm route table for the environment as it is now.

        Raises what fetching, verifying, loading or warming a version raises; nothing
        is swapped then.
        """
        status = self.status()
        if self.only_app is None:
            self.check_pins(status)
        self._policy = None  # read again for each load: keys may have been revoked
        self._status = status
        self._endpoint = llm_endpoint(status["config"])  # None: the host's SHIPYARD_LLM_*
        self._used = set()
        apps = self._mounts(status)
        routes: dict[str, ModelRoute] = {}
        for component in status["components"]:
            if is_app(component) or self.only_app is not None:
                continue
            routes[component["name"]] = self._route(component)
        capture = capture_settings(status["config"])
        table = RouteTable(
            self.project,
            self.environment,
            routes,
            status["revision"],
            capture.rate if self.capture_rate is None else self.capture_rate,
            apps=apps,
            llm_calls=capture.llm_calls,
            llm_prompts=capture.llm_prompts,
            pinned=self.pins if self.only_app is None else {},
        )
        # Keep what this table holds plus what the previous one held: a rollback is then quick.
        used = self._used
        self._loaded = {k: v for k, v in self._loaded.items() if k in used or k in self._previous}
        self._previous = used
        held_apps = {(m.app.name, m.app.version, m.app.digest) for m in apps.values()}
        for key, loaded in list(self._apps.items()):
            if key not in held_apps and key not in self._previous_apps:
                del self._apps[key]
                loaded.unload()
        self._previous_apps = held_apps
        return table

    def _mounts(self, status: dict[str, Any]) -> dict[str, AppMount]:
        """The environment's apps, loaded (only ``only_app`` when set)."""
        components = [c for c in status["components"] if is_app(c)]
        if self.only_app is not None:
            components = [c for c in components if c["name"] == self.only_app]
            if not components:
                held = ", ".join(c["name"] for c in status["components"] if is_app(c))
                raise NotFound(
                    f"{self.project}/{self.environment} holds no app {self.only_app!r} "
                    f"(apps: {held or 'none'})"
                )
        mounts = {}
        for component in components:
            name = component["name"]
            loaded = self._app(name, _deployed(component), component["digest"])
            mounts[name] = AppMount(loaded, component["app_config"], status["config"])
        return mounts

    def _check_trust(
        self, model: str, label: str, artifact: Artifact | AppBundle
    ) -> tuple[bytes | None, bool]:
        """Refuse what the registry's trust does not allow here (see ``LoadPolicy``);
        returns the trusted key that signed the bundle and whether unsafe formats may load."""
        if self._policy is None:
            self._policy = LoadPolicy(self.registry, self.project, self.environment, self._status)
        return self._policy.check(model, label, artifact.files, artifact.metadata)

    def _route(self, component: dict[str, Any]) -> ModelRoute:
        """How a model component is served: its deployed version, its traffic split and
        shadow, or the one version it is pinned to (and its shadow)."""
        name = component["name"]
        traffic = _traffic(component) or {}
        shadow = traffic.get("shadow")
        pin = self.pins.get(name)
        if pin is not None:
            runner = self._version(component, pin)
            mirror = self._version(component, shadow) if shadow and shadow != pin else None
            return ModelRoute(name, (runner,), (1.0,), mirror)
        deployed = _deployed(component)
        runner = self._version(component, deployed)
        if not traffic:
            return ModelRoute.single(runner)
        weights = {tag: w for tag, w in traffic["weights"].items() if w > 0}
        runners = {deployed: runner}
        for tag in (*weights, *([shadow] if shadow else [])):
            if tag not in runners:
                runners[tag] = self._version(component, tag)
        return ModelRoute(
            name,
            tuple(runners[tag] for tag in weights),
            tuple(float(w) for w in weights.values()),
            runners[shadow] if shadow else None,
            {deployed: runner},
        )

    def _version(self, component: dict[str, Any], label: str) -> ModelRunner:
        """Version ``label`` of a model component, loaded, with its app config: the
        component's for the deployed version, the version's own for the others."""
        name = component["name"]
        if label == _deployed(component):
            runner = self._runner(name, label, component["digest"])
            return runner.configured(component["app_config"])  # what its code may read
        version = to_json(self.registry.get_version(self.project, name, label))
        # a folder baked before app config reached running code has none recorded
        return self._runner(name, label, version["digest"]).configured(version.get("app_config"))

    def _runner(self, model: str, label: str, digest: str) -> ModelRunner:
        key = (model, label, digest, self._endpoint)
        self._used.add(key)
        runner = self._loaded.get(key)
        if runner is not None:
            return runner
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="shipyard-serve-") as folder:
            path = Path(self.registry.fetch_bundle(self.project, model, label, folder))
            _check_digest(path, digest)
            artifact = Artifact(path, self.public_key)
            artifact.verify()  # every file against the manifest; no code has run yet
            signer, allow_unsafe = self._check_trust(model, label, artifact)
            runner = ModelRunner.from_artifact(
                artifact,
                model,
                label,
                digest,
                public_key=signer,
                allow_unsafe=allow_unsafe,
                endpoint=self._endpoint,
            )
        warm = runner.warm_up()
        logger.info(
            "loaded %s %s (%s) in %.2f s; %s",
            model,
            label,
            digest[:12],
            time.perf_counter() - started,
            f"example input in {warm * 1000:.2f} ms" if warm is not None else "no example input",
        )
        self._loaded[key] = runner
        return runner

    def _app(self, name: str, label: str, digest: str) -> LoadedApp:
        """App ``name`` ``label``: checked as a model bundle is, then extracted and imported."""
        key = (name, label, digest)
        loaded = self._apps.get(key)
        if loaded is not None:
            return loaded
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="shipyard-serve-") as folder:
            path = Path(self.registry.fetch_bundle(self.project, name, label, folder))
            _check_digest(path, digest)
            try:
                bundle = AppBundle(path)
                bundle.verify(self.public_key)  # every file against the manifest; no code ran
            except ArtifactError as exc:
                raise _about(exc, f"app {name} {label}") from None
            signer, _ = self._check_trust(name, label, bundle)
            loaded = load_app(bundle, name, label, digest, public_key=signer, logs=self.logs)
        logger.info(
            "loaded app %s %s (%s) in %.2f s",
            name,
            label,
            digest[:12],
            time.perf_counter() - started,
        )
        self._apps[key] = loaded
        return loaded


def _about(exc: ArtifactError, where: str) -> ArtifactError:
    """``exc`` again, its message beginning with which component it is about."""
    message = f"{where}: {exc}"
    if isinstance(exc, TamperedArtifact):
        return TamperedArtifact(message, exc.path)
    return type(exc)(message)


def _check_digest(path: Path, digest: str) -> None:
    """StoreError unless the fetched bundle is the one the registry names (by its sha256).

    The store checks its own copy; this checks what arrived here, also over HTTP.
    """
    with path.open("rb") as file:
        found = hashlib.file_digest(file, "sha256").hexdigest()
    if found != digest:
        raise StoreError(
            f"bundle {path.name} arrived with sha256 {found[:12]}…, "
            f"not the {digest[:12]}… the registry names"
        )


class Follower:
    """Polls the environment's revision and keys on a thread; swaps in new tables when warm.

    ``swap(table)`` and ``set_keys(ring)`` are called from the follower's thread.
    """

    def __init__(
        self,
        loader: EnvironmentLoader,
        current: Callable[[], RouteTable],
        swap: Callable[[RouteTable], None],
        set_keys: Callable[[KeyRing], None],
        poll_seconds: float = 1.0,
        retry_seconds: float = 30.0,
        on_failure: Callable[[int, Exception], None] | None = None,
    ) -> None:
        self.loader = loader
        self._current = current
        self._swap = swap
        self._set_keys = set_keys
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self._on_failure = on_failure
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shipyard-follower", daemon=True)
        self._failed: tuple[int, float] | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling (a load in progress finishes first, up to ``timeout`` seconds)."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def poll(self) -> bool:
        """Check once; True when a new table was swapped in."""
        self._set_keys(self.loader.keys())
        revision = self.loader.revision()
        if revision == self._current().revision:
            return False
        failed = self._failed
        if failed and failed[0] == revision and time.monotonic() - failed[1] < self.retry_seconds:
            return False
        try:
            table = self.loader.load()
        except Exception as exc:
            self._failed = (revision, time.monotonic())
            if self._on_failure is not None:
                self._on_failure(revision, exc)
            logger.exception(
                "revision %d of %s/%s failed to load; still serving revision %s",
                revision,
                self.loader.project,
                self.loader.environment,
                self._current().revision,
            )
            return False
        self._failed = None
        if self._stopped.is_set():
            return False
        self._swap(table)
        return True

    def _run(self) -> None:
        while not self._stopped.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception:  # the registry is unreachable: keep serving, try again
                logger.exception("polling the registry failed; still serving what is loaded")
