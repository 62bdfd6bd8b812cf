"""``shipyard config``, ``project select`` and ``env select``: a folder's working context.

The file and how commands read it are in ``_context``; these commands write it, after
checking with the registry that the project and environment exist.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from ..errors import Conflict, UsageError
from ._backend import ENVIRONMENT_ENV, JSON, PROJECT, PROJECT_ENV, open_backend
from ._context import FILE_NAME, WorkingContext, describe, find, load, read, write
from ._output import emit, errors, plain

config = typer.Typer(
    help="The working context: the project and environment commands in this folder act on.",
    no_args_is_help=True,
)


@config.command("init")
def init(
    project: str | None = typer.Option(None, "--project", "-p", help="The project to select."),
    env: str | None = typer.Option(
        None, "--env", "-e", help="The environment to select (needs --project)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace a working context file here."),
    as_json: bool = JSON,
) -> None:
    """Write .shipyard.toml here: registry commands in this folder and below use it when
    neither --project/--env nor $SHIPYARD_PROJECT/$SHIPYARD_ENV say otherwise."""
    if env is not None and project is None:
        raise UsageError("--env needs --project (an environment belongs to a project)")
    path = Path.cwd() / FILE_NAME
    if path.exists() and not force:
        raise Conflict(
            f"{path} exists already: change it with 'shipyard project select' or "
            "'shipyard env select', or replace it with --force"
        )
    outer = find(Path.cwd().parent)
    if project is not None:
        with open_backend() as backend:
            _check(backend, project, env)
    made = write(path, project, env)
    emit(describe(made), as_json, lambda d: _line("wrote", made) + _shadows(outer))


@config.command("show")
def show(as_json: bool = JSON) -> None:
    """The working context here, and what wins over it in this shell."""
    context = load()
    data: dict[str, Any] = describe(context)
    for key, variable in (("project", PROJECT_ENV), ("environment", ENVIRONMENT_ENV)):
        if os.environ.get(variable):
            data[key], data[f"{key}_from"] = os.environ[variable], f"${variable}"
        else:
            data[f"{key}_from"] = data["file"] if data[key] else None
    emit(data, as_json, _show)


def select_project(
    name: str = typer.Argument(..., help="The project commands here act on."),
    as_json: bool = JSON,
) -> None:
    """Make NAME the working context's project (the environment stays if NAME has it)."""
    path = _existing()
    context = read(path)
    environment = context.environment
    with open_backend() as backend:
        backend.get_project(name)
        if environment is not None and not _has_environment(backend, name, environment):
            errors.print(f"{name} has no environment {environment}: it is no longer selected")
            environment = None
    made = write(path, name, environment)
    _warn_if_overridden(PROJECT_ENV, name)
    emit(describe(made), as_json, lambda d: _line("selected", made))


def select_environment(
    name: str = typer.Argument(..., help="The environment commands here act on."),
    project: str = PROJECT,
    as_json: bool = JSON,
) -> None:
    """Make NAME (an environment of the project) the working context's environment."""
    path = _existing()
    with open_backend() as backend:
        backend.get_environment(project, name)
    made = write(path, project, name)
    _warn_if_overridden(ENVIRONMENT_ENV, name)
    emit(describe(made), as_json, lambda d: _line("selected", made))


def _existing() -> Path:
    path = find()
    if path is None:
        raise UsageError(
            f"no {FILE_NAME} in {Path.cwd()} or above: run 'shipyard config init' in the "
            "folder it should cover"
        )
    return path


def _check(backend: Any, project: str, env: str | None) -> None:
    """NotFound unless the project (and the environment, when given) exist."""
    backend.get_project(project)
    if env is not None:
        backend.get_environment(project, env)


def _has_environment(backend: Any, project: str, env: str) -> bool:
    return any(e["name"] == env for e in plain(backend.list_environments(project)))


def _line(verb: str, context: WorkingContext) -> str:
    values = [f"project {context.project}" if context.project else "no project"]
    values.append(f"environment {context.environment}" if context.environment else "no environment")
    return f"{verb} {context.path}: {', '.join(values)}"


def _shadows(outer: Path | None) -> str:
    return f"\n(here and below it takes over from {outer})" if outer else ""


def _warn_if_overridden(variable: str, chosen: str) -> None:
    current = os.environ.get(variable)
    if current and current != chosen:
        errors.print(f"note: ${variable}={current} is set in this shell and wins over the file")


def _show(data: dict[str, Any]) -> str:
    lines = [f"file: {data['file'] or f'(no {FILE_NAME} here or above)'}"]
    for key in ("project", "environment"):
        source = data[f"{key}_from"]
        lines.append(f"{key}: {data[key] or '-'}" + (f"  (from {source})" if source else ""))
    return "\n".join(lines)
