"""``shipyard component`` and ``shipyard component-config``: what an environment holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..errors import UsageError
from ._backend import ENV, JSON, PROJECT, YES, confirm_change, open_backend
from ._files import APP_CONFIG, read_app_config
from ._output import emit, listing, plain, print_json
from ._views import components_line, label, revision_line

components = typer.Typer(help="Components deployed in an environment.", no_args_is_help=True)
component_config = typer.Typer(
    help="An environment's component set as YAML, for git and CD.", no_args_is_help=True
)


@components.command("add")
def add(
    name: str = typer.Argument(..., help="Model name."),
    version: str | None = typer.Option(
        None, "--version", help="A tag (v2) or a candidate's version id (default: the default)."
    ),
    app_config: Path | None = APP_CONFIG,
    env: str = ENV,
    project: str = PROJECT,
    as_json: bool = JSON,
) -> None:
    """Deploy a model version into an environment (replacing the version there)."""
    config = read_app_config(app_config)
    with open_backend() as backend:
        before = revision_of(backend, project, env)
        result = backend.add_component(project, env, name, version, config)
    emit(result, as_json, lambda r: changed_line("added", r, before))


@components.command("remove")
def remove(
    name: str = typer.Argument(..., help="Component name."),
    env: str = ENV,
    project: str = PROJECT,
    yes: bool = YES,
    as_json: bool = JSON,
) -> None:
    """Remove a component from an environment."""
    with open_backend() as backend:
        confirm_change(backend, project, env, f"remove {name} from {env}", yes)
        result = backend.remove_component(project, env, name)
    emit(result, as_json, lambda r: f"removed: {revision_line(r)}")


@components.command("list")
def list_components(env: str = ENV, project: str = PROJECT, as_json: bool = JSON) -> None:
    """The components an environment holds, with versions and app config."""
    with open_backend() as backend:
        result = backend.list_components(project, env)
    emit(
        result,
        as_json,
        lambda rows: listing("name", "kind", "version", "bundle_version", "digest", "app_config")(
            [dict(r, version=label(r)) for r in rows]
        ),
    )


@components.command("logs")
def logs(
    name: str = typer.Argument(..., help="Component name (an app, or a model)."),
    env: str = ENV,
    project: str = PROJECT,
    tail: int | None = typer.Option(None, "--tail", "-n", min=1, help="Only the last N lines."),
    log_dir: Path | None = typer.Option(
        None,
        "--log-dir",
        help="The server's --log-dir (default: $SHIPYARD_HOME/logs/PROJECT/ENV).",
    ),
    as_json: bool = JSON,
) -> None:
    """Print what a component served by `shipyard serve` on this machine logged.

    An app's logging and the errors of its requests, a model's failed requests. On
    Kubernetes: kubectl logs -l app.kubernetes.io/component=NAME (see docs/deploying.md).
    """
    from ..serving import default_log_dir, read_log

    lines = read_log(log_dir or default_log_dir(project, env), name, tail)
    if as_json:
        print_json({"project": project, "environment": env, "component": name, "lines": lines})
        return
    for line in lines:
        typer.echo(line)


@component_config.command("save")
def save(
    file: Path = typer.Argument(..., help="The YAML file to write ('-': standard output)."),
    env: str = ENV,
    project: str = PROJECT,
) -> None:
    """Write the environment's component set (names, versions, digests, app config) as YAML."""
    with open_backend() as backend:
        text = backend.save_component_config(project, env)
    if str(file) == "-":
        typer.echo(text, nl=False)
    else:
        file.write_text(text)
        typer.echo(f"saved the component config of {env} to {file}")


@component_config.command("apply")
def apply(
    file: Path = typer.Argument(..., help="A YAML file written by 'component-config save'."),
    env: str = ENV,
    project: str = PROJECT,
    yes: bool = YES,
    as_json: bool = JSON,
) -> None:
    """Make an environment hold exactly the file's components, in one revision (or nothing)."""
    try:
        text = file.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read '{file}': {exc.strerror}") from None
    with open_backend() as backend:
        confirm_change(backend, project, env, f"apply {file} to {env}", yes)
        before = revision_of(backend, project, env)
        result = backend.apply_component_config(project, env, text)
    emit(result, as_json, lambda r: changed_line("applied", r, before))


def revision_of(backend: Any, project: str, env: str) -> int:
    """The environment's current revision number (to tell a change from none)."""
    return int(plain(backend.get_environment(project, env))["revision"])


def changed_line(verb: str, revision: dict[str, Any], before: int) -> str:
    """``added: …`` for a new revision; ``unchanged: …`` when the registry wrote none."""
    if revision["number"] == before:
        return (
            f"unchanged: {revision['environment']} already holds that; still revision "
            f"{before} [dim]({components_line(revision['components'])})[/]"
        )
    return f"{verb}: {revision_line(revision)}"
