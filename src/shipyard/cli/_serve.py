"""``shipyard serve``: serve an environment from the registry, one bundle file, or a baked
environment (``--bundle-dir``: what ``shipyard deploy image`` puts into an image).

The registry is the one every registry command uses: the server at ``SHIPYARD_URL``
(with ``SHIPYARD_TOKEN``, role deployer), else the embedded one.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ._backend import URL_ENV
from ._output import console
from ._tls import TLS_CERT, TLS_KEY, TRUSTED_PROXIES, scheme, server_options


def serve(
    bundle: Path | None = typer.Option(
        None, "--bundle", help="Serve this bundle.tar.gz alone, without the registry."
    ),
    bundle_dir: Path | None = typer.Option(
        None,
        "--bundle-dir",
        help="Serve the environment baked into this folder (shipyard deploy image), "
        "without the registry.",
    ),
    project: str | None = typer.Option(
        None, "--project", "-p", envvar="SHIPYARD_PROJECT", help="Project (with --env)."
    ),
    env: str | None = typer.Option(None, "--env", "-e", help="Environment to serve and follow."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(
        8000,
        "--port",
        envvar=["SHIPYARD_PORT", "PORT"],
        help="Port to listen on ($SHIPYARD_PORT, else $PORT: Cloud Run's and Knative's).",
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        envvar="SHIPYARD_WORKERS",
        help="Worker processes (default: the environment's replicas setting).",
    ),
    api_key_file: Path | None = typer.Option(
        None,
        "--api-key-file",
        help="With --bundle or --bundle-dir: accept the keys in this file (one a line).",
    ),
    max_body_bytes: int = typer.Option(
        5 * 1024 * 1024, "--max-body-bytes", help="Larger request bodies get 413."
    ),
    poll_ms: int = typer.Option(
        1000, "--poll-ms", help="How often to check the environment's revision (milliseconds)."
    ),
    capture_rate: float | None = typer.Option(
        None,
        "--capture-rate",
        help="Share of requests to capture (0-1; default: the environment config's capture.rate).",
    ),
    capture_folder: Path | None = typer.Option(
        None, "--capture-folder", help="Where capture files go (default: see docs/serving.md)."
    ),
    header_timeout: float = typer.Option(
        10.0, "--header-timeout", help="Seconds a request's line and headers may take (then 408)."
    ),
    body_timeout: float = typer.Option(
        15.0, "--body-timeout", help="Seconds a request body may take after its headers (408)."
    ),
    keep_alive_timeout: int = typer.Option(
        5, "--keep-alive-timeout", help="Seconds an idle kept-alive connection stays open."
    ),
    max_connections: int = typer.Option(
        1024, "--max-connections", help="Open connections per worker past which requests get 503."
    ),
    max_header_bytes: int = typer.Option(
        64 * 1024, "--max-header-bytes", help="A larger request line plus headers gets 431."
    ),
    allow_pickle: bool = typer.Option(
        False,
        "--allow-pickle",
        help="With --bundle: let plain pickles load (loading one runs its code).",
    ),
    app: str | None = typer.Option(
        None,
        "--app",
        help="Serve only this app component of the environment, no model (an app's own "
        "deployment; its client reads the SHIPYARD_* variables).",
    ),
    pin: list[str] = typer.Option(
        [],
        "--pin",
        help="MODEL=VERSION: serve MODEL at that version only (one the environment holds: "
        "deployed, traffic or shadow), whatever its traffic weights say. Repeatable.",
    ),
    log_dir: Path | None = typer.Option(
        None,
        "--log-dir",
        help="Where component logs go (default: $SHIPYARD_HOME/logs/PROJECT/ENV).",
    ),
    tls_cert: Path | None = TLS_CERT,
    tls_key: Path | None = TLS_KEY,
    trusted_proxies: str = TRUSTED_PROXIES,
) -> None:
    """Serve models over REST: our predict route, the Open Inference Protocol v2, MLflow payloads.

    With --project/--env the server follows the environment ($SHIPYARD_URL's registry
    server, or the embedded registry): a promotion or rollback is loaded and warmed up
    in the background, then swapped in without dropping a request. The environment's
    apps are served beside its models, each under /apps/NAME/. --pin MODEL=VERSION serves
    a model at one of its versions only: one arm of a traffic split that a gateway routes.
    SIGTERM or Ctrl-C drains requests in flight before exiting.
    """
    from ..serving import ServeOptions, check_pins, default_workers, run

    registry_url = None if bundle or bundle_dir else os.environ.get(URL_ENV) or None
    if bundle_dir is not None:
        project, env = _baked(bundle_dir, project, env)
    listening = server_options(tls_cert, tls_key, trusted_proxies)
    options = ServeOptions(
        bundle=str(bundle) if bundle else None,
        bundle_dir=str(bundle_dir) if bundle_dir else None,
        project=None if bundle else project,
        environment=env,
        registry_url=registry_url,
        api_key_file=str(api_key_file) if api_key_file else None,
        max_body_bytes=max_body_bytes,
        poll_ms=poll_ms,
        capture_rate=capture_rate,
        capture_folder=str(capture_folder) if capture_folder else None,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        keep_alive_timeout=keep_alive_timeout,
        max_connections=max_connections,
        max_header_bytes=max_header_bytes,
        allow_pickle=allow_pickle,
        app=app,
        log_dir=str(log_dir) if log_dir else None,
        pins=_pins(pin),
    ).check()
    if bundle is not None:
        from ..runtime import Artifact

        # A bad bundle is refused before this says it is serving (the server checks the
        # file again when it loads it; the signature with $SHIPYARD_PUBLIC_KEY, if set),
        # and so is a pickle that --allow-pickle does not allow.
        checked = Artifact(bundle)
        checked.verify()
        if not allow_pickle and checked.metadata.get("unsafe_pickle"):
            checked.executor(allow_unsafe=False)  # ModelError naming the node, nothing unpickled
    check_pins(options)  # a version it does not hold: one line now, not in each worker
    count = workers if workers is not None else default_workers(options)
    where = f" of {options.registry_url}" if options.registry_url else ""
    what = f"bundle {bundle}" if bundle else f"{project}/{env}{where}"
    if bundle_dir is not None:
        what = f"{project}/{env} baked into {bundle_dir}"
    if app is not None:
        what = f"app {app} of {what} (under /apps/{app}/)"
    if options.pins:
        what += " pinned to " + ", ".join(f"{m} {v}" for m, v in sorted(options.pins.items()))
    console.print(
        f"serving {what} on {scheme(listening)}://{host}:{port} "
        f"({count} worker{'s' if count > 1 else ''}); "
        "docs: /docs, metrics: /metrics",
        soft_wrap=True,
    )
    run(options, host=host, port=port, workers=count, settings=listening)


def _pins(given: list[str]) -> dict[str, str]:
    """``--pin MODEL=VERSION`` options as a mapping (UsageError for a malformed one, or two
    versions of one model)."""
    from ..errors import UsageError

    pins: dict[str, str] = {}
    for entry in given:
        model, equals, version = entry.partition("=")
        model, version = model.strip(), version.strip()
        if not equals or not model or not version:
            raise UsageError(f"--pin {entry!r}: give MODEL=VERSION (e.g. churn=v2)")
        if pins.get(model, version) != version:
            raise UsageError(f"--pin {model}: pinned to both {pins[model]} and {version}")
        pins[model] = version
    return pins


def _baked(folder: Path, project: str | None, env: str | None) -> tuple[str, str]:
    """The project and environment baked into ``folder`` (UsageError if others were asked)."""
    from ..errors import UsageError
    from ..serving import BakedRegistry

    baked = BakedRegistry(folder)
    for flag, asked, found in (
        ("--project", project, baked.project),
        ("--env", env, baked.environment),
    ):
        if asked is not None and asked != found:
            raise UsageError(
                f"{folder} holds {baked.project}/{baked.environment}: drop {flag} {asked}"
            )
    return baked.project, baked.environment
