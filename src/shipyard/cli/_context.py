"""The working context: the project and environment a folder works on, in ``.shipyard.toml``.

    # .shipyard.toml, written by `shipyard config init` and changed by `project select`
    # and `env select`
    project = "demo"
    environment = "uat"

Registry commands take ``--project`` and ``--env`` from, in order: the flag, the
environment variable ($SHIPYARD_PROJECT, $SHIPYARD_ENV), then the nearest
``.shipyard.toml`` found walking up from the current folder. After a command succeeds
it says on stderr which project and environment it acted on, and where a value came
from when the working context supplied it (never on stdout, so ``--json`` stays JSON).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..errors import UsageError

FILE_NAME = ".shipyard.toml"
KEYS = ("project", "environment")
# What each key's option is called, and its environment variable (for messages).
_OPTION = {"project": ("--project", "SHIPYARD_PROJECT"), "environment": ("--env", "SHIPYARD_ENV")}
_NOTE = "shipyard.acted_on"  # where an invocation's resolved values wait for its note


@dataclass(frozen=True)
class WorkingContext:
    """What a ``.shipyard.toml`` holds (``path`` None: there is none here or above)."""

    path: Path | None
    project: str | None = None
    environment: str | None = None


def find(start: Path | None = None) -> Path | None:
    """The nearest ``.shipyard.toml`` in ``start`` (default: the current folder) or above."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / FILE_NAME
        if path.is_file():
            return path
    return None


def read(path: Path) -> WorkingContext:
    """The context a file holds; UsageError naming the file when it is not one."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read the working context {path}: {exc}") from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise UsageError(
            f"{path}: unknown key(s) {', '.join(unknown)} (a working context holds "
            "project and environment)"
        )
    for key in KEYS:
        if key in data and (not isinstance(data[key], str) or not data[key]):
            raise UsageError(f"{path}: '{key}' must be a name in quotes")
    return WorkingContext(path, data.get("project"), data.get("environment"))


def load(start: Path | None = None) -> WorkingContext:
    """The nearest working context, or an empty one when there is no file."""
    path = find(start)
    return read(path) if path is not None else WorkingContext(None)


def write(path: Path, project: str | None, environment: str | None) -> WorkingContext:
    """Write a working context file (replacing what it held); returns what it now holds."""
    lines = [
        "# Shipyard's working context: what registry commands act on in this folder and",
        "# below. --project/--env and $SHIPYARD_PROJECT/$SHIPYARD_ENV win over it.",
    ]
    for key, value in zip(KEYS, (project, environment), strict=True):
        if value is not None:
            # A JSON string is a valid TOML basic string (same quotes and escapes).
            lines.append(f"{key} = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return WorkingContext(path, project, environment)


def resolve(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An option callback: the flag's or variable's value, else the working context's.

    Raises UsageError naming the three ways to give the value when none does. Records
    the value for the note printed when the command succeeds.
    """
    if ctx.resilient_parsing:
        return value
    key = "environment" if "--env" in getattr(param, "opts", ()) else "project"
    origin: Path | None = None
    if value is None:
        context = load()
        value, origin = getattr(context, key), context.path
        if value is None:
            flag, variable = _OPTION[key]
            select = "env select ENV" if key == "environment" else "project select PROJECT"
            where = (
                f"{context.path} has no {key}"
                if context.path
                else f"no {FILE_NAME} in {Path.cwd()} or above; 'shipyard config init' makes one"
            )
            raise UsageError(
                f"no {key} given: pass {flag}, set ${variable}, or run 'shipyard {select}' "
                f"({where})"
            )
    if _NOTE not in ctx.meta:
        ctx.meta[_NOTE] = {}
        ctx.with_resource(_note_on_success(ctx))
    ctx.meta[_NOTE][key] = (value, origin)
    return value


@contextmanager
def _note_on_success(ctx: click.Context) -> Iterator[None]:
    # Runs past the yield only when the command returned: a failure prints its one
    # error line alone.
    yield
    if ctx.params.get("as_json"):
        return
    from rich.markup import escape

    from ._output import errors

    resolved: dict[str, tuple[str, Path | None]] = ctx.meta[_NOTE]
    keys = [key for key in KEYS if key in resolved]
    line = "acted on " + ", ".join(f"{key} {resolved[key][0]}" for key in keys)
    from_file = [key for key in keys if resolved[key][1] is not None]
    if from_file:  # one file holds them all: the nearest
        line += f" ({' and '.join(from_file)} from {resolved[from_file[0]][1]})"
    errors.print(f"[dim]{escape(line)}[/]", soft_wrap=True)


def describe(context: WorkingContext) -> dict[str, Any]:
    """A working context as JSON data: its file and values."""
    return {
        "file": str(context.path) if context.path else None,
        "project": context.project,
        "environment": context.environment,
    }
