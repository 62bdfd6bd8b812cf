"""Building a serving app from options, and running it on uvicorn (one or several workers).

``build_app(options)`` is what ``shipyard serve`` runs in each worker: it loads the
bundle file, or the environment from the registry (warm, before the first request),
and wires the follower, capture and shadow workers. The registry is the server at
``options.registry_url`` (token: ``$SHIPYARD_TOKEN``) when it is set, else the embedded
one (``Registry.open()``). With several workers uvicorn starts each in its own process
and calls ``worker_app()``, which reads the options from ``$SHIPYARD_SERVE_OPTIONS``
and the key the workers' apps share from ``$SHIPYARD_SERVE_APP_KEY`` (removed from the
worker's environment as it is read: it is never in the options, a log or a message).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..errors import UsageError
from ._app import MAX_BODY_BYTES, ServingApp
from ._capture import Capture, ParquetFolder
from ._environment import EnvironmentLoader, Follower, capture_settings
from ._keys import KeyRing
from ._logs import ComponentLogs, default_log_dir
from ._metrics import Metrics
from ._protocol import GuardedConfig, ReadLimits
from ._routes import bundle_table
from ._runner import ModelRunner

if TYPE_CHECKING:
    from ..registry import Registry
    from ..registry_http import RegistryClient

OPTIONS_ENV = "SHIPYARD_SERVE_OPTIONS"
TOKEN_ENV = "SHIPYARD_TOKEN"  # the registry server's API token; never in the options
APP_KEY_ENV = "SHIPYARD_SERVE_APP_KEY"  # the apps' key, from ``run`` to its worker processes
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client reads it at import
STARTUP_FAILURE = 3  # uvicorn's exit status when the server could not start
logger = logging.getLogger("shipyard.serving")


@dataclass(frozen=True)
class ServeOptions:
    """What to serve and how: a ``bundle`` file, or a ``project`` and ``environment``.

    ``bundle_dir``: serve the ``project``/``environment`` baked into that folder
    (``BakedRegistry``, written by ``shipyard deploy image``), with no registry; its
    ``api_key_file``, when the file exists, replaces the API keys baked into it.

    ``registry_url``: follow the registry server there (its token comes from
    ``$SHIPYARD_TOKEN``, role deployer) instead of the embedded registry.
    ``capture_rate`` None takes the environment config's ``capture.rate`` (0 when unset);
    ``capture_folder`` None takes its ``capture.folder`` under the capture root
    (``$SHIPYARD_CAPTURE_ROOT``, else ``$SHIPYARD_HOME/capture``), else
    ``ROOT/PROJECT/ENVIRONMENT``. ``low_latency`` None takes the
    environment's ``low_latency_mode`` setting. The connection limits
    (``header_timeout``, ``body_timeout``, ``keep_alive_timeout`` in seconds,
    ``max_connections``, ``max_header_bytes``) are what ``run`` gives uvicorn and
    ``GuardedProtocol``: a client slow to send a request does not hold its connection.

    Apps: ``log_dir`` is where component logs go (default
    ``$SHIPYARD_HOME/logs/PROJECT/ENVIRONMENT``; with ``bundle``, none unless given);
    ``serving_url`` is where the apps reach the models (``run`` sets it from its host and
    port; None: the address a request came in on); ``app`` serves that app component
    alone and no model (an app's own deployment: its ``shipyard.client`` reads the
    ``SHIPYARD_*`` variables instead).

    ``pins`` (model -> version label) serve each of those models at that one version, a
    version the environment holds for it (deployed, or one of its ``traffic`` or shadow
    versions), whatever its traffic weights say: one arm of a split that a gateway routes.
    """

    bundle: str | None = None
    bundle_dir: str | None = None  # a baked environment (``BakedRegistry``): no registry
    project: str | None = None
    environment: str | None = None
    registry_url: str | None = None
    api_key_file: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    poll_ms: int = 1000
    capture_rate: float | None = None
    capture_folder: str | None = None
    low_latency: bool | None = None
    inline_rows: int = 64
    seed: int | None = None
    drain_seconds: float = 30.0
    header_timeout: float = ReadLimits.header_seconds
    body_timeout: float = ReadLimits.body_seconds
    keep_alive_timeout: int = 5
    max_connections: int = 1024
    max_header_bytes: int = ReadLimits.max_header_bytes
    # --bundle: let a plain pickle load (loading one runs its code); an environment's
    # versions follow its allow_pickle setting instead.
    allow_pickle: bool = False
    app: str | None = None
    log_dir: str | None = None
    serving_url: str | None = None
    pins: dict[str, str] = field(default_factory=dict)

    def check(self) -> ServeOptions:
        """These options, or UsageError saying what is missing or contradictory."""
        if self.bundle is None and (self.project is None or self.environment is None):
            raise UsageError(
                "serve a bundle (--bundle FILE) or an environment (--project P --env E)"
            )
        if self.bundle is not None and (self.project or self.environment):
            raise UsageError("--bundle serves one file without the registry: drop --project/--env")
        if self.bundle is not None and self.registry_url:
            raise UsageError("--bundle serves one file without the registry: drop registry_url")
        if self.bundle_dir is not None and (self.bundle is not None or self.registry_url):
            raise UsageError("--bundle-dir serves a baked environment: drop --bundle/registry_url")
        if self.allow_pickle and self.bundle is None:
            raise UsageError(
                "--allow-pickle is for --bundle; an environment's versions load pickles where "
                "its allow_pickle setting allows them"
            )
        if self.api_key_file is not None and self.bundle is None and self.bundle_dir is None:
            raise UsageError(
                "--api-key-file is for --bundle; an environment's keys are in the registry "
                "(shipyard apikey create)"
            )
        if self.app is not None and self.bundle is not None:
            raise UsageError("--app serves an app of an environment: drop --bundle")
        if self.pins and self.bundle is not None:
            raise UsageError("--pin picks among an environment's versions: drop it with --bundle")
        if self.pins and self.app is not None:
            raise UsageError("--app serves no model: drop --pin")
        for model, version in self.pins.items():
            if not model or not version:
                raise UsageError(f"--pin {model}={version}: give MODEL=VERSION (e.g. churn=v2)")
        if self.max_body_bytes < 1:
            raise UsageError("--max-body-bytes must be at least 1")
        if self.capture_rate is not None and not 0.0 <= self.capture_rate <= 1.0:
            raise UsageError("--capture-rate is a share between 0 and 1")
        for flag, value in (
            ("--header-timeout", self.header_timeout),
            ("--body-timeout", self.body_timeout),
            ("--keep-alive-timeout", self.keep_alive_timeout),
        ):
            if not value > 0:
                raise UsageError(f"{flag} is a number of seconds above 0")
        if self.max_connections < 1:
            raise UsageError("--max-connections must be at least 1")
        if self.max_header_bytes < 1024:
            raise UsageError("--max-header-bytes must be at least 1024")
        return self

    def server_config(self, app: Any, **uvicorn_options: Any) -> GuardedConfig:
        """The uvicorn config serving ``app`` (an app or an import string) with these limits."""
        limits = ReadLimits(self.header_timeout, self.body_timeout, self.max_header_bytes)
        return GuardedConfig(
            app,
            limits=limits,
            timeout_keep_alive=self.keep_alive_timeout,
            limit_concurrency=self.max_connections,
            **uvicorn_options,
        )

    def to_env(self) -> str:
        """These options as the JSON ``worker_app`` reads."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_env(cls) -> ServeOptions:
        return cls(**json.loads(os.environ[OPTIONS_ENV]))


def _capture_folder(options: ServeOptions, configured: str | None) -> ParquetFolder:
    if options.capture_folder:  # the operator's own choice: it is its own root
        return ParquetFolder(options.capture_folder)
    return ParquetFolder.for_environment(
        configured, options.project or "local", options.environment or "local"
    )


def open_registry(options: ServeOptions) -> Registry | RegistryClient:
    """The registry ``options`` follow: the server at ``registry_url``, else the embedded one.

    Close it after use (both are context managers).
    """
    if options.bundle_dir:
        from ._baked import BakedRegistry

        # It answers the calls EnvironmentLoader and LoadPolicy make, from the baked folder.
        return cast("Registry", BakedRegistry(options.bundle_dir))
    if options.registry_url:
        from ..registry_http import RegistryClient

        return RegistryClient(options.registry_url, os.environ.get(TOKEN_ENV))
    from ..registry import Registry

    return Registry.open()


def build_app(
    options: ServeOptions,
    registry: Registry | RegistryClient | None = None,
    *,
    app_key: str | None = None,
) -> ServingApp:
    """A warm app for ``options``; ``registry`` defaults to ``open_registry(options)``.

    ``app_key`` is the key the environment's apps call its models with (default: a new
    random one; several workers must share one). Raises what loading raises:
    ArtifactError for a bad bundle (an app's or a model's), AppError for an app whose code
    does not import, NotFound for an unknown project, environment or ``app`` or a pin to
    a model or version the environment does not hold, UsageError for contradictory
    options, PermissionDenied for a capture folder outside the capture root; over a
    registry server, PermissionDenied for a token below deployer, RegistryError when it
    cannot be reached.
    """
    options.check()
    metrics = Metrics(os.environ.get(MULTIPROCESS_ENV) or None)
    public_key = os.environ.get("SHIPYARD_PUBLIC_KEY") or None
    if options.bundle is not None:
        runner = ModelRunner.from_bundle(
            options.bundle, public_key=public_key, allow_unsafe=options.allow_pickle
        )
        runner.warm_up()
        table = bundle_table([runner], capture_rate=options.capture_rate or 0.0)
        keys = KeyRing()
        if options.api_key_file:
            keys = KeyRing.from_keys(Path(options.api_key_file).read_text().splitlines())
        capture = Capture(_capture_folder(options, None), metrics, table.capture_rate or 0.0)
        return ServingApp(
            table,
            keys=keys,
            metrics=metrics,
            capture=capture,
            max_body_bytes=options.max_body_bytes,
            inline_rows=options.inline_rows,
            low_latency=bool(options.low_latency),
            seed=options.seed,
            drain_seconds=options.drain_seconds,
            # A bundle file is no environment: its model's log only where one is asked for.
            logs=ComponentLogs(options.log_dir) if options.log_dir else None,
        )
    if registry is None:
        registry = open_registry(options)
    assert options.project is not None and options.environment is not None
    logs = ComponentLogs(
        options.log_dir or default_log_dir(options.project, options.environment),
        echo=options.app is not None,
    )
    loader = EnvironmentLoader(
        registry,
        options.project,
        options.environment,
        public_key=public_key,
        capture_rate=options.capture_rate,
        logs=logs,
        only_app=options.app,
        pins=options.pins,
    )
    try:
        table = loader.load()
    except BaseException:
        logs.close()
        raise
    configured_folder = capture_settings(
        registry.get_environment_config(options.project, options.environment)
    ).folder
    settings = loader.settings()
    low_latency = (
        settings.get("low_latency_mode") if options.low_latency is None else options.low_latency
    )
    capture = Capture(
        _capture_folder(options, configured_folder), metrics, table.capture_rate or 0.0
    )
    keys = loader.keys()
    if options.bundle_dir and options.api_key_file and os.path.exists(options.api_key_file):
        # A key file mounted where the image looks for one replaces the keys baked into it.
        keys = KeyRing.from_keys(Path(options.api_key_file).read_text().splitlines())
    if not keys and options.app is None:
        logger.warning(
            "%s/%s has no API keys: its predict and infer routes are open "
            "(shipyard apikey create --project %s --env %s)",
            *(options.project, options.environment) * 2,
        )
    app = ServingApp(
        table,
        keys=keys,
        metrics=metrics,
        capture=capture,
        max_body_bytes=options.max_body_bytes,
        inline_rows=options.inline_rows,
        low_latency=bool(low_latency),
        strict=bool(settings.get("strict_inputs")),
        seed=options.seed,
        drain_seconds=options.drain_seconds,
        logs=logs,
        internal_key=app_key or new_app_key(),
        serving_url=options.serving_url,
        bind_apps=options.app is None,
    )

    if options.bundle_dir:
        return app  # a baked environment never changes: there is nothing to follow
    metrics.follow_drift(loader.drift_scores)

    def refused(revision: int, exc: Exception) -> None:
        metrics.swaps.labels("failed").inc()
        app.refused(revision, str(exc))

    follower = Follower(
        loader,
        lambda: app.table,
        app.swap,
        app.set_keys,
        poll_seconds=options.poll_ms / 1000,
        on_failure=refused,
    )
    app.background.insert(0, follower)
    return app


def new_app_key() -> str:
    """A new key for a server's apps to call its models with (held in memory only)."""
    return "syapp_" + secrets.token_urlsafe(32)


def loopback_url(host: str, port: int, tls: bool) -> str | None:
    """Where a server listening on ``host``:``port`` reaches itself (None for port 0)."""
    if not port:
        return None
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def log_to_stderr() -> None:
    """Send Shipyard's serving log (swaps, failures with request ids, shadow answers) to stderr."""
    root = logging.getLogger("shipyard")
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)-9s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)


def worker_app() -> ServingApp:
    """The app of one uvicorn worker process (options from ``$SHIPYARD_SERVE_OPTIONS``)."""
    log_to_stderr()
    return build_app(ServeOptions.from_env(), app_key=os.environ.pop(APP_KEY_ENV, None))


def check_pins(options: ServeOptions) -> None:
    """NotFound unless each of ``options.pins`` names a model of the environment and a
    version it holds for it now: what ``build_app`` refuses, said before a server starts.
    """
    if not options.pins:
        return
    assert options.project is not None and options.environment is not None
    with open_registry(options) as registry:
        EnvironmentLoader(
            registry, options.project, options.environment, pins=options.pins
        ).check_pins()


def default_workers(options: ServeOptions) -> int:
    """The environment's effective ``replicas`` setting (1 for a bundle file)."""
    if options.bundle is not None:
        return 1
    assert options.project is not None and options.environment is not None
    with open_registry(options) as registry:
        loader = EnvironmentLoader(registry, options.project, options.environment)
        return int(loader.settings()["replicas"])


def run(
    options: ServeOptions,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    settings: Mapping[str, Any] | None = None,
) -> None:
    """Serve until SIGTERM or Ctrl-C, then drain: answers in flight finish, capture is flushed.

    One worker runs in this process; several are uvicorn's worker processes, each
    loading and following the environment on its own. Sets ``OMP_NUM_THREADS=1`` unless
    it is set: models run single-threaded in each worker. ``settings``: more of uvicorn's
    settings (TLS files, trusted proxies; see ``shipyard serve --tls-cert``).
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    options.check()
    log_to_stderr()
    if options.serving_url is None:
        tls = bool((settings or {}).get("ssl_certfile"))
        options = dataclasses.replace(options, serving_url=loopback_url(host, port, tls))
    # One request is a few rows: an OpenMP pool per worker (scikit-learn's tree models) only
    # fights the event loop and the other workers for cores (measured: p99 967 ms -> 19 ms
    # for HistGradientBoosting at concurrency 1). Scale with --workers instead.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "access_log": False,  # an access log would print query strings; keys must never be logged
        "log_level": "info",
        "timeout_graceful_shutdown": int(options.drain_seconds),
        "lifespan": "on",
        "proxy_headers": False,  # X-Forwarded-* believed only from proxies in ``settings``
        **(settings or {}),
    }
    if workers <= 1:
        server = uvicorn.Server(options.server_config(build_app(options), **common))
        server.run()
        if not server.started:
            sys.exit(STARTUP_FAILURE)  # as uvicorn.run: the port was taken, or startup failed
        return
    os.environ[OPTIONS_ENV] = options.to_env()
    os.environ[APP_KEY_ENV] = new_app_key()  # one for every worker: any may answer an app
    with tempfile.TemporaryDirectory(prefix="shipyard-metrics-") as folder:
        # Set before the workers start (and import prometheus-client): /metrics sums them all.
        os.environ[MULTIPROCESS_ENV] = folder
        config = options.server_config(
            "shipyard.serving._server:worker_app", factory=True, workers=workers, **common
        )
        Multiprocess(config, sockets=[config.bind_socket()]).run()
