"""``shipyard serve``: serve an environment from the registry, or one bundle file."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ._output import console
from ._output import errors as stderr


def direct_registry_note(command: str) -> None:
    """Say on stderr that ``command`` uses the registry's database, not $SHIPYARD_URL, if set."""
    if os.environ.get("SHIPYARD_URL"):
        stderr.print(
            f"note: shipyard {command} reads the registry database itself "
            "($SHIPYARD_DATABASE_URL, else $SHIPYARD_HOME), not the server at $SHIPYARD_URL",
            soft_wrap=True,
        )


def serve(
    bundle: Path | None = typer.Option(
        None, "--bundle", help="Serve this bundle.tar.gz alone, without the registry."
    ),
    project: str | None = typer.Option(
        None, "--project", "-p", envvar="SHIPYARD_PROJECT", help="Project (with --env)."
    ),
    env: str | None = typer.Option(None, "--env", "-e", help="Environment to serve and follow."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    workers: int | None = typer.Option(
        None, "--workers", help="Worker processes (default: the environment's replicas setting)."
    ),
    api_key_file: Path | None = typer.Option(
        None, "--api-key-file", help="With --bundle: accept the keys in this file (one a line)."
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
) -> None:
    """Serve models over REST: our predict route, the Open Inference Protocol v2, MLflow payloads.

    With --project/--env the server follows the environment: a promotion or rollback is
    loaded and warmed up in the background, then swapped in without dropping a request.
    SIGTERM or Ctrl-C drains requests in flight before exiting.
    """
    from ..serving import ServeOptions, default_workers, run

    options = ServeOptions(
        bundle=str(bundle) if bundle else None,
        project=None if bundle else project,
        environment=env,
        api_key_file=str(api_key_file) if api_key_file else None,
        max_body_bytes=max_body_bytes,
        poll_ms=poll_ms,
        capture_rate=capture_rate,
        capture_folder=str(capture_folder) if capture_folder else None,
    ).check()
    if not bundle:
        direct_registry_note("serve")
    count = workers if workers is not None else default_workers(options)
    what = f"bundle {bundle}" if bundle else f"{project}/{env}"
    console.print(
        f"serving {what} on http://{host}:{port} ({count} worker{'s' if count > 1 else ''}); "
        "docs: /docs, metrics: /metrics"
    )
    run(options, host=host, port=port, workers=count)
