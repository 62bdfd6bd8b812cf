"""What registry commands share: the registry they talk to, common options, confirmation.

``open_backend()`` is the one seam between the embedded registry and a registry server:
with ``SHIPYARD_URL`` set it is a ``RegistryClient`` (token from ``SHIPYARD_TOKEN``),
otherwise ``Registry.open()``. Both have the same methods; commands call them and print
the result through ``_output.emit``, which accepts either's results.

``PROJECT`` and ``ENV`` take their value from the flag, else the environment variable,
else the working context (``.shipyard.toml``, see ``_context``).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import typer

from ..errors import UsageError
from ._context import resolve

if TYPE_CHECKING:
    from ..registry import Registry
    from ..registry_http import RegistryClient

    Backend = Registry | RegistryClient

URL_ENV = "SHIPYARD_URL"
TOKEN_ENV = "SHIPYARD_TOKEN"
PROJECT_ENV = "SHIPYARD_PROJECT"
ENVIRONMENT_ENV = "SHIPYARD_ENV"

# None only until ``resolve`` runs: it returns a name or raises UsageError.
PROJECT = typer.Option(
    None,
    "--project",
    "-p",
    envvar=PROJECT_ENV,
    callback=resolve,
    show_default=False,
    help="Project (default: $SHIPYARD_PROJECT, else the working context).",
)
ENV = typer.Option(
    None,
    "--env",
    "-e",
    envvar=ENVIRONMENT_ENV,
    callback=resolve,
    show_default=False,
    help="Environment (default: $SHIPYARD_ENV, else the working context).",
)
JSON = typer.Option(False, "--json", help="Print machine-readable JSON.")
YES = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (for CI).")


def open_backend() -> Backend:
    """The registry server at $SHIPYARD_URL, or the embedded registry ($SHIPYARD_HOME, …).

    Close it after use (both are context managers).
    """
    url = os.environ.get(URL_ENV)
    if url:
        from ..registry_http import RegistryClient

        return RegistryClient(url, os.environ.get(TOKEN_ENV))
    from ..registry import Registry

    return Registry.open()


def confirm(action: str, yes: bool) -> None:
    """Go on when ``yes`` or the person at the terminal agrees to ``action``.

    Raises UsageError (exit code 2) when there is no terminal to ask on, and typer.Abort
    when the person says no.
    """
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"refusing to {action} without --yes (no terminal to confirm on)")
    if not typer.confirm(f"{action}?", default=False):
        raise typer.Abort()


def confirm_change(backend: Backend, project: str, env: str, action: str, yes: bool) -> None:
    """``confirm`` a change to ``env``, unless it is a challenger (those are anyone's to try)."""
    if yes:
        return
    from ._output import plain

    found: Any = plain(backend.get_environment(project, env))
    if not found["is_challenger"]:
        confirm(f"{action} (project {project})", yes)
