"""``shipyard key``: signing keys."""

from __future__ import annotations

from pathlib import Path

import typer

from ..artifact import generate_key_pair
from ..errors import UsageError
from ._backend import JSON, open_backend
from ._output import console, emit, listing, print_json

app = typer.Typer(help="Ed25519 keys that sign and verify bundles.", no_args_is_help=True)


@app.command("generate")
def generate(
    output: Path = typer.Option(
        Path("."), "--output", "-o", help="Folder for NAME.key and NAME.pub."
    ),
    name: str = typer.Option("shipyard", "--name", help="File name stem."),
    force: bool = typer.Option(False, "--force", help="Replace existing key files."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Make an Ed25519 key pair: NAME.key signs bundles (keep it secret), NAME.pub verifies them."""
    private, public = generate_key_pair(output, name, overwrite=force)
    if as_json:
        print_json({"private_key": str(private), "public_key": str(public)})
        return
    console.print(f"private key: {private}  (mode 0600; pass it to --sign-key, keep it secret)")
    console.print(
        f"public key:  {public}  (give it to verifiers: --public-key or SHIPYARD_PUBLIC_KEY)"
    )


@app.command("trust")
def trust(
    public_key: Path = typer.Argument(..., help="The public key file (PEM), e.g. NAME.pub."),
    name: str = typer.Option(..., "--name", help="A name for the key (who or what signs)."),
    as_json: bool = JSON,
) -> None:
    """Trust a public key to sign bundles for environments that require signatures (admin)."""
    try:
        text = public_key.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read public key '{public_key}': {exc}") from None
    with open_backend() as backend:
        result = backend.trust_key(name, text)
    emit(result, as_json, lambda k: f"trusted key {k['name']} ({k['key_id']})")


@app.command("list")
def list_keys(as_json: bool = JSON) -> None:
    """The registry's trusted signing keys, revoked ones included."""
    with open_backend() as backend:
        result = backend.list_trusted_keys()
    emit(result, as_json, listing("name", "key_id", "revoked", "created_at", "created_by"))


@app.command("revoke")
def revoke(
    name: str = typer.Argument(..., help="The key's name or key id."), as_json: bool = JSON
) -> None:
    """Stop trusting a key: what it signed can no longer enter a guarded environment (admin)."""
    with open_backend() as backend:
        result = backend.revoke_trusted_key(name)
    emit(result, as_json, lambda k: f"revoked key {k['name']} ({k['key_id']})")
