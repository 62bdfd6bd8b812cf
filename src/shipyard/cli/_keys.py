"""``shipyard key``: signing keys."""

from __future__ import annotations

from pathlib import Path

import typer

from ..artifact import generate_key_pair
from ._output import console, print_json

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
