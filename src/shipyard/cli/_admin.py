"""``shipyard worker-group``, ``audit``, ``token`` and ``server``: the platform's own objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ._backend import JSON, open_backend
from ._output import console, emit, listing, plain, print_json
from ._tls import TLS_CERT, TLS_KEY, TRUSTED_PROXIES, scheme, server_options

worker_groups = typer.Typer(
    help="Pools of machines environments are pinned to.", no_args_is_help=True
)
audit = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
tokens = typer.Typer(help="API tokens for the registry server.", no_args_is_help=True)


@worker_groups.command("create")
def create_worker_group(
    name: str = typer.Argument(..., help="Worker group name."),
    machine_size: str = typer.Option(..., "--machine-size", help="e.g. cpu-4-16gb."),
    count: int = typer.Option(1, "--count", help="Number of machines."),
    as_json: bool = JSON,
) -> None:
    """Define a pool of COUNT machines of one size."""
    with open_backend() as backend:
        result = backend.create_worker_group(name, machine_size, count)
    emit(
        result,
        as_json,
        lambda g: f"created worker group {g['name']}: {g['count']} x {g['machine_size']}",
    )


@worker_groups.command("list")
def list_worker_groups(as_json: bool = JSON) -> None:
    """Every worker group."""
    with open_backend() as backend:
        result = backend.list_worker_groups()
    emit(result, as_json, listing("name", "machine_size", "count", "created_at", "created_by"))


@worker_groups.command("delete")
def delete_worker_group(
    name: str = typer.Argument(..., help="Worker group name."), as_json: bool = JSON
) -> None:
    """Delete a worker group (refused while a setting names it)."""
    with open_backend() as backend:
        backend.delete_worker_group(name)
    emit({"deleted": name}, as_json, lambda d: f"deleted worker group {d['deleted']}")


@audit.command("list")
def audit_list(
    limit: int = typer.Option(20, "--limit", "-n", help="How many events, newest first."),
    object_prefix: str | None = typer.Option(
        None, "--object", help="Only events on objects under this path (project/demo)."
    ),
    as_json: bool = JSON,
) -> None:
    """The newest audit events: who did what to which object, when."""
    with open_backend() as backend:
        result = backend.audit_list(limit, object_prefix)
    emit(result, as_json, listing("id", "at", "actor", "action", "object"))


@audit.command("verify")
def audit_verify(
    anchors: str | None = typer.Option(
        None,
        "--anchors",
        help="A witness (folder or s3://bucket/prefix) whose anchors the chain must match.",
    ),
    as_json: bool = JSON,
) -> None:
    """Check the audit log's hash chain; fails (exit code 1) naming the first broken event."""
    recorded = None
    if anchors is not None:
        from ..registry import open_witness

        recorded = {str(a.sequence): a.hash for a in open_witness(anchors).read_all()}
    with open_backend() as backend:
        # Without --json a broken chain raises AuditBroken: one error line naming the event.
        report = emit(backend.audit_verify(not as_json, recorded), as_json, _verified)
    if not report["ok"]:
        raise typer.Exit(1)
    if recorded is not None and not as_json:
        console.print(f"matches the {len(recorded)} anchor(s) in {anchors}")


def _verified(report: dict[str, Any]) -> str:
    return (
        f"[green]audit log OK[/]: {report['events']} events, head {report['head_hash'][:16]}… "
        "(anchor it elsewhere with `audit anchor` to detect a rewrite of the whole log)"
    )


@audit.command("anchor")
def audit_anchor(
    to: str | None = typer.Option(
        None,
        "--to",
        help="Write the anchor here (folder or s3://bucket/prefix) instead of to the "
        "registry's own witness ($SHIPYARD_AUDIT_ANCHORS where the registry runs).",
    ),
    as_json: bool = JSON,
) -> None:
    """Record the audit chain's head outside the database, once, never overwritten."""
    with open_backend() as backend:
        if to is None:
            result: Any = backend.audit_anchor()
        else:
            from ..registry import AuditAnchor, open_witness

            head = plain(backend.audit_head())
            result = AuditAnchor(head["sequence"], head["hash"], head["at"])
            open_witness(to).write(result)
    emit(
        result,
        as_json,
        lambda a: (
            f"anchored event {a['sequence']} (hash {a['hash'][:16]}…)" + (f" in {to}" if to else "")
        ),
    )


def _names(text: str | None) -> list[str] | None:
    """``a,b`` as ``["a", "b"]``; None when not given."""
    return None if text is None else [n.strip() for n in text.split(",") if n.strip()]


@tokens.command("create")
def create_token(
    name: str = typer.Argument(..., help="Who or what uses it (ci, alice, …)."),
    role: str = typer.Option(..., "--role", help="viewer, deployer or admin."),
    projects: str | None = typer.Option(
        None, "--projects", help="Comma-separated: the only projects its requests may name."
    ),
    environments: str | None = typer.Option(
        None, "--environments", help="Comma-separated: the only environments it may name."
    ),
    expires_in_days: int | None = typer.Option(
        None, "--expires-in-days", help="It stops working after this many days (1 to 3650)."
    ),
    as_json: bool = JSON,
) -> None:
    """Create an API token; it is printed once and only its hash is kept."""
    scope = [_names(projects), _names(environments)]
    with open_backend() as backend:
        info, text = backend.create_token(name, role, scope[0], scope[1], expires_in_days)
    if as_json:
        print_json({**plain(info), "token": text})
        return
    limits = [
        f"{what} {', '.join(names)}"
        for what, names in zip(("projects", "environments"), scope, strict=True)
        if names is not None
    ]
    expires = plain(info).get("expires_at")
    limits += [f"expires {expires[:19].replace('T', ' ')} UTC"] if expires else []
    detail = f"; {'; '.join(limits)}" if limits else ""
    console.print(f"created token {name} (role {role}{detail}); it is shown only now:")
    console.print(text, soft_wrap=True)


@tokens.command("list")
def list_tokens(as_json: bool = JSON) -> None:
    """Every API token's public record (never the secret)."""
    with open_backend() as backend:
        result = backend.list_tokens()
    emit(result, as_json, listing("id", "name", "role", "revoked", "created_at", "created_by"))


@tokens.command("revoke")
def revoke_token(
    token_id: int = typer.Argument(..., help="The token's id (shy_<id>_…)."), as_json: bool = JSON
) -> None:
    """Revoke an API token: it stops working at once."""
    with open_backend() as backend:
        result = backend.revoke_token(token_id)
    emit(result, as_json, lambda t: f"revoked token {t['id']} ({t['name']})")


def server(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8080, "--port", help="Port to listen on."),
    tls_cert: Path | None = TLS_CERT,
    tls_key: Path | None = TLS_KEY,
    trusted_proxies: str = TRUSTED_PROXIES,
) -> None:
    """Serve the registry HTTP API (the embedded registry, or $SHIPYARD_DATABASE_URL)."""
    import logging

    import uvicorn

    from ..registry import Registry
    from ..registry_http import create_app
    from ..web import redact_access_log

    listening = server_options(tls_cert, tls_key, trusted_proxies)

    with Registry.open() as registry:
        if not registry.list_tokens():
            console.print(
                "no API tokens yet: make the first with "
                "'shipyard token create admin --role admin' (without SHIPYARD_URL)",
                soft_wrap=True,
            )
    console.print(
        f"registry API on {scheme(listening)}://{host}:{port}/api/v1 (OpenAPI: /openapi.json)",
        soft_wrap=True,
    )
    # Failed requests are logged (with their request id and traceback) by 'shipyard.registry_http'.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = uvicorn.Config(
        create_app(Registry.open), host=host, port=port, log_level="info", **listening
    )
    redact_access_log()  # after the Config above has set up uvicorn's loggers
    uvicorn.Server(config).run()
