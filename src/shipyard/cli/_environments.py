"""``shipyard env``: environments, promotion, rollback, history, config and settings."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import typer
import yaml

from ..errors import ApprovalRequired, Conflict, UsageError
from ._backend import ENV, JSON, PROJECT, PROJECT_ENV, YES, confirm, confirm_change, open_backend
from ._output import console, emit, listing, plain
from ._views import (
    CHANGE_COLUMNS,
    change_line,
    change_lines,
    change_row,
    diff_view,
    history_view,
    revision_line,
    setting_line,
    settings_table,
    status_view,
)

app = typer.Typer(
    help="Environments: promotion, rollback, history, config and settings.", no_args_is_help=True
)
config = typer.Typer(
    help="Environment config (bound to the environment, never promoted).", no_args_is_help=True
)
settings = typer.Typer(
    help="Settings (replicas, worker_group, low_latency_mode, traffic), inherited "
    "global -> project -> environment -> component.",
    no_args_is_help=True,
)
challenger = typer.Typer(help="Challenger environments.", no_args_is_help=True)
app.add_typer(config, name="config")
app.add_typer(settings, name="settings")
app.add_typer(challenger, name="challenger")

_SCOPE_PROJECT = typer.Option(
    None,
    "--project",
    "-p",
    envvar=PROJECT_ENV,
    help="Project level (default: $SHIPYARD_PROJECT; neither: global).",
)
_SCOPE_ENV = typer.Option(None, "--env", "-e", help="Environment level (needs --project).")
_SCOPE_COMPONENT = typer.Option(
    None, "--component", "-c", help="Component level: a component deployed in --env."
)


@app.command("list")
def list_environments(project: str = PROJECT, as_json: bool = JSON) -> None:
    """The project's environments and where each promotes to."""
    with open_backend() as backend:
        result = backend.list_environments(project)
    emit(result, as_json, listing("name", "promotes_to", "challenger_of", "revision"))


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Environment name."),
    promotes_to: str | None = typer.Option(
        None, "--promotes-to", help="The environment it promotes to (default: none)."
    ),
    project: str = PROJECT,
    as_json: bool = JSON,
) -> None:
    """Add an empty environment to the project."""
    with open_backend() as backend:
        result = backend.create_environment(project, name, promotes_to)
    emit(
        result,
        as_json,
        lambda e: f"created environment {e['name']} (promotes to {e['promotes_to'] or '-'})",
    )


@app.command("delete")
def delete(
    name: str = typer.Argument(..., help="Environment name."),
    project: str = PROJECT,
    yes: bool = YES,
    as_json: bool = JSON,
) -> None:
    """Delete an environment (refused while others promote to it or are its challengers)."""
    with open_backend() as backend:
        confirm_change(backend, project, name, f"delete environment {name}", yes)
        backend.delete_environment(project, name)
    emit({"deleted": name}, as_json, lambda d: f"deleted environment {d['deleted']}")


@app.command("status")
def status(
    env: str = typer.Argument(..., help="Environment name."),
    project: str = PROJECT,
    as_json: bool = JSON,
) -> None:
    """What an environment runs: revision, component versions, effective settings, and the
    last deployment rendered or built of it for each target."""
    with open_backend() as backend:
        result = plain(backend.status(project, env))
        result["deployments"] = plain(backend.list_deployments(project, env))
    emit(result, as_json, status_view)


@app.command("history")
def history(
    env: str = typer.Argument(..., help="Environment name."),
    project: str = PROJECT,
    as_json: bool = JSON,
) -> None:
    """Every revision of an environment, newest first."""
    with open_backend() as backend:
        result = backend.history(project, env)
    emit(result, as_json, history_view)


@app.command("diff")
def diff(
    a: str = typer.Argument(
        ..., help="What would go in: an environment (uat) or a revision (uat@3)."
    ),
    b: str = typer.Argument(..., help="What would change: an environment (production)."),
    project: str = PROJECT,
    as_json: bool = JSON,
) -> None:
    """What putting A into B would change in B: promoting A, or rolling B back to A (B@N).

    Components only A holds show as added, those only B holds as removed; settings and
    environment config are listed too (a rollback restores them, a promotion does not).
    """
    with open_backend() as backend:
        result = backend.diff(project, a, b)
    emit(result, as_json, diff_view)


DRY_RUN = typer.Option(False, "--dry-run", help="Print what would change, and change nothing.")


@app.command("promote")
def promote(
    env: str = typer.Argument(..., help="The environment whose components move on."),
    project: str = PROJECT,
    yes: bool = YES,
    dry_run: bool = DRY_RUN,
    as_json: bool = JSON,
) -> None:
    """Copy ENV's components (versions and app config) into the environment it promotes to.

    Lists what the target gains, changes and loses before asking (or, with --dry-run,
    instead of promoting). The target keeps its own settings and environment config.
    """
    with open_backend() as backend:
        target = plain(backend.get_environment(project, env))["promotes_to"]
        if target is None:
            raise Conflict(f"environment '{env}' does not promote to another environment")
        plan = plain(backend.diff(project, env, target))
        plan["settings"] = plan["config"] = []  # a promotion moves components only
        if dry_run:
            emit(plan, as_json, lambda p: _plan(f"promoting {env} would change {target}", p))
            return
        if not as_json:
            console.print(_plan(f"promoting {env} into {target} (project {project})", plan))
        # Nothing promotes into a challenger: the target always needs confirming.
        confirm(f"promote {env} into {target} (project {project})", yes)
        try:
            result = backend.promote(project, env)
        except ApprovalRequired as pending:
            _pending(backend, project, pending, as_json)
            return
    emit(result, as_json, lambda r: f"promoted {env} -> {revision_line(r)}")


@app.command("rollback")
def rollback(
    env: str = typer.Argument(..., help="Environment name."),
    to: int | None = typer.Option(
        None, "--to", help="The revision to restore (default: the one before the current)."
    ),
    allow_empty: bool = typer.Option(
        False,
        "--allow-empty",
        help="Allow restoring a revision with no components (takes ENV's models offline).",
    ),
    project: str = PROJECT,
    yes: bool = YES,
    dry_run: bool = DRY_RUN,
    as_json: bool = JSON,
) -> None:
    """Restore an earlier revision of ENV, as a new revision.

    Lists what changes (components, settings and environment config) before asking, or
    with --dry-run instead of rolling back.
    """
    with open_backend() as backend:
        current = plain(backend.get_environment(project, env))["revision"]
        number = current - 1 if to is None else to
        if number < 1:
            raise Conflict(f"environment '{env}' has no revision before {current}")
        plan = plain(backend.diff(project, f"{env}@{number}", env))
        if dry_run:
            emit(plan, as_json, lambda p: _plan(f"rolling {env} back to {number} would change", p))
            return
        what = f"roll {env} back to revision {number}"
        if not (yes or as_json):
            console.print(_plan(what, plan))
        confirm_change(backend, project, env, what, yes)
        try:
            result = backend.rollback(project, env, to, allow_empty)
        except ApprovalRequired as pending:
            _pending(backend, project, pending, as_json)
            return
    emit(result, as_json, lambda r: f"rolled back: {revision_line(r)}")


def _pending(backend: Any, project: str, pending: ApprovalRequired, as_json: bool) -> None:
    """Say that a change waits for approval (exit 0: asking for it is what was done)."""
    request = backend.get_change_request(project, pending.change_request)
    emit(request, as_json, lambda _: f"pending: {pending}")


@app.command("changes")
def changes(
    env: str | None = typer.Option(None, "--env", "-e", help="Only this environment's."),
    state: str | None = typer.Option(None, "--state", help="pending, applied, rejected or stale."),
    project: str = PROJECT,
    as_json: bool = JSON,
) -> None:
    """Change requests (promotions and rollbacks waiting for approval, and their outcome)."""
    with open_backend() as backend:
        result = backend.list_change_requests(project, env, state)
    emit(result, as_json, lambda rows: listing(*CHANGE_COLUMNS)([change_row(r) for r in rows]))


@app.command("approve")
def approve(
    request: int = typer.Argument(..., help="The change request's id (see 'env changes')."),
    project: str = PROJECT,
    as_json: bool = JSON,
) -> None:
    """Approve a change request as another person; the last approval needed applies it."""
    with open_backend() as backend:
        result = backend.approve_change(project, request)
    emit(result, as_json, change_line)


@app.command("reject")
def reject(
    request: int = typer.Argument(..., help="The change request's id."),
    reason: str = typer.Option("", "--reason", help="Why, kept with the request."),
    project: str = PROJECT,
    as_json: bool = JSON,
) -> None:
    """Reject (or, as its requester, withdraw) a pending change request."""
    with open_backend() as backend:
        result = backend.reject_change(project, request, reason)
    emit(result, as_json, change_line)


def _plan(heading: str, plan: dict[str, Any]) -> str:
    return f"{heading}:\n{change_lines(plan)}"


@challenger.command("create")
def create_challenger(
    name: str = typer.Argument(..., help="The challenger's name."),
    from_env: str = typer.Option(..., "--from", help="The environment it clones and promotes to."),
    project: str = PROJECT,
    as_json: bool = JSON,
) -> None:
    """Clone an environment's components and config into a challenger that promotes back."""
    with open_backend() as backend:
        result = backend.create_challenger(project, name, from_env)
    emit(
        result,
        as_json,
        lambda e: (
            f"created challenger {e['name']} of {e['challenger_of']} "
            f"(promotes to {e['promotes_to']})"
        ),
    )


def _value(text: str) -> Any:
    """What the user typed, as JSON when it is JSON (3, true, {...}), else as text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _set_at(config: dict[str, Any], path: list[str], value: Any) -> None:
    """Set ``config[a][b]… = value`` for ``path`` [a, b, …], making the mappings missing on the
    way; UsageError when one on the way holds something else."""
    node = config
    for depth, part in enumerate(path[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(path[: depth + 1])
            raise UsageError(f"'{where}' in the environment config is not a mapping")
        node = child
    node[path[-1]] = value


def _read_mapping(file: Path) -> dict[str, Any]:
    """A JSON or YAML file holding a mapping (UsageError naming the file otherwise)."""
    try:
        data = yaml.safe_load(file.read_text())  # YAML is a superset of JSON
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read '{file}': {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"'{file}' must hold a mapping of keys to values")
    return data


@config.command("get")
def get_config(env: str = ENV, project: str = PROJECT, as_json: bool = JSON) -> None:
    """The environment config."""
    with open_backend() as backend:
        result = backend.get_environment_config(project, env)
    emit(result, as_json, lambda c: json.dumps(c, indent=2))


@config.command("set")
def set_config(
    pairs: list[str] = typer.Argument(None, help="KEY=VALUE pairs merged into the config."),
    file: Path | None = typer.Option(
        None, "--file", "-f", help="A JSON or YAML file that replaces the whole config."
    ),
    env: str = ENV,
    project: str = PROJECT,
    as_json: bool = JSON,
) -> None:
    """Set environment config: merge KEY=VALUE pairs (VALUE as JSON when it is), or --file.

    A dotted KEY sets a key inside a mapping: llm.base_url=URL sets {"llm": {"base_url": URL}}
    and keeps the mapping's other keys.
    """
    if bool(pairs) == (file is not None):
        raise UsageError("give KEY=VALUE pairs or --file FILE (one of them)")
    updates: list[tuple[list[str], Any]] = []
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        path = key.split(".")
        if not sep or not all(path):
            raise UsageError(f"'{key if sep else pair}' is not KEY=VALUE (KEY may be dotted)")
        updates.append((path, _value(value)))
    with open_backend() as backend:
        if file is not None:
            new = _read_mapping(file)
        else:
            new = copy.deepcopy(plain(backend.get_environment_config(project, env)))
            for path, value in updates:
                _set_at(new, path, value)
        result = backend.set_environment_config(project, env, new)
    emit(result, as_json, lambda r: f"environment config set: {revision_line(r)}")


@settings.command("get")
def get_setting(
    key: str | None = typer.Argument(None, help="A setting (default: all of them)."),
    project: str | None = _SCOPE_PROJECT,
    env: str | None = _SCOPE_ENV,
    component: str | None = _SCOPE_COMPONENT,
    as_json: bool = JSON,
) -> None:
    """Effective settings at a level, with the level each comes from (inherited or not)."""
    with open_backend() as backend:
        if key is None:
            emit(backend.get_settings(project, env, component), as_json, settings_table)
        else:
            emit(backend.get_setting(key, project, env, component), as_json, setting_line)


@settings.command("set")
def set_setting(
    key: str = typer.Argument(..., help="replicas, worker_group, low_latency_mode or traffic."),
    value: str = typer.Argument(..., help="The value: 3, gpu-pool, true, or traffic's JSON."),
    project: str | None = _SCOPE_PROJECT,
    env: str | None = _SCOPE_ENV,
    component: str | None = _SCOPE_COMPONENT,
    as_json: bool = JSON,
) -> None:
    """Set a setting at the level named (global, project, environment or component)."""
    with open_backend() as backend:
        result = backend.set_setting(key, value, project, env, component)
    emit(result, as_json, lambda s: f"set {setting_line(s)}")


@settings.command("inherit")
def inherit_setting(
    key: str = typer.Argument(..., help="The setting to clear at this level."),
    project: str | None = _SCOPE_PROJECT,
    env: str | None = _SCOPE_ENV,
    component: str | None = _SCOPE_COMPONENT,
    as_json: bool = JSON,
) -> None:
    """Clear a setting at one level so it inherits from the level above."""
    with open_backend() as backend:
        result = backend.inherit_setting(key, project, env, component)
    emit(result, as_json, lambda s: f"now {setting_line(s)}")
