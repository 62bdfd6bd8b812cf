"""``shipyard apikey``: API keys for serving an environment (shown once, stored hashed).

Like every registry command it works on the embedded registry or, with ``SHIPYARD_URL``,
on a registry server (creating and revoking a key there needs a deployer token).
"""

from __future__ import annotations

import typer

from ._backend import ENV, JSON, PROJECT, open_backend
from ._output import console, emit, listing, plain, print_json

app = typer.Typer(help="API keys for the models an environment serves.", no_args_is_help=True)


@app.command("create")
def create(
    project: str = PROJECT,
    env: str = ENV,
    name: str = typer.Option("default", "--name", help="Who or what uses it."),
    expires_in_days: int | None = typer.Option(
        None, "--expires-in-days", help="Servers stop accepting it after this many days."
    ),
    as_json: bool = JSON,
) -> None:
    """Make an API key for ENV; it is printed once and only its hash is kept."""
    with open_backend() as backend:
        info, key = backend.create_api_key(project, env, name, expires_in_days)
    if as_json:
        print_json({**plain(info), "key": key})
        return
    console.print(
        f"created API key {plain(info)['id']} ({name}) for {project}/{env}; it is shown only now:"
    )
    console.print(key, soft_wrap=True)
    console.print("send it as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'")


@app.command("list")
def list_keys(project: str = PROJECT, env: str = ENV, as_json: bool = JSON) -> None:
    """Every API key of ENV (never the key itself)."""
    with open_backend() as backend:
        result = backend.list_api_keys(project, env)
    emit(
        result, as_json, listing("id", "name", "revoked", "expires_at", "created_at", "created_by")
    )


@app.command("revoke")
def revoke(
    key_id: int = typer.Argument(..., help="The key's id (sya_<id>_…)."),
    project: str = PROJECT,
    env: str = ENV,
    as_json: bool = JSON,
) -> None:
    """Revoke an API key: servers refuse it from their next poll of the registry."""
    with open_backend() as backend:
        result = backend.revoke_api_key(project, env, key_id)
    emit(result, as_json, lambda k: f"revoked API key {k['id']} ({k['name']})")
