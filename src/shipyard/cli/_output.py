"""Printing: rich tables for people, ``--json`` for machines, one line for errors.

Registry commands print through ``emit``: one way for every result, whether it came from
the embedded registry (dataclasses) or from the server (JSON data).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table as RichTable

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

Show = Callable[[Any], RenderableType | None]

# The width tables may take when stdout is not a terminal: in effect, no limit.
PIPED_WIDTH = 100_000


def print_json(document: Any) -> None:
    """Write ``document`` as JSON on stdout (no colour, no wrapping)."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def error_line(message: str) -> None:
    """One readable error line on stderr."""
    errors.print(f"[bold red]error:[/] {message}", soft_wrap=True)


def plain(result: Any) -> Any:
    """A registry result as plain JSON data (results from a server already are)."""
    from ..registry import to_json

    return to_json(result)


def emit(result: Any, as_json: bool, show: Show) -> Any:
    """Print a result: its JSON with ``--json``, else what ``show(data)`` makes for people.

    Returns the plain data.
    """
    data = plain(result)
    if as_json:
        print_json(data)
    else:
        shown = show(data)
        if shown is not None:  # a line stays one line, even in a narrow or piped terminal
            # Piped or redirected, tables print every value whole, not cut to 80 columns.
            out = console if console.is_terminal else Console(highlight=False, width=PIPED_WIDTH)
            out.print(shown, soft_wrap=isinstance(shown, str))
    return data


def cell(value: Any, column: str = "") -> str:
    """A value as a table cell: '-' for none, yes/no, lists joined, compact JSON for objects.

    Times (columns ``at`` and ``*_at``) are shown to the second, in UTC; digests by 12 digits.
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(", ", ": "), default=str)
    if (column == "at" or column.endswith("_at")) and isinstance(value, str):
        return value[:19].replace("T", " ")
    if column in ("digest", "hash") and isinstance(value, str):
        return value[:12] + "…"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> Any:
    """``rows`` as a rich table of ``columns`` (a heading per column), or '(none)'."""
    if not rows:
        return f"{title + ': ' if title else ''}(none)"
    grid = RichTable(title=title, title_justify="left")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*(cell(row.get(column), column) for column in columns))
    return grid


def fields(row: dict[str, Any], names: Sequence[str]) -> Any:
    """One result as a two-column table: a line per field of ``names``."""
    grid = RichTable(show_header=False, box=None, padding=(0, 2, 0, 0))
    grid.add_column(style="bold")
    grid.add_column()
    for name in names:
        grid.add_row(name, cell(row.get(name), name))
    return grid


def listing(*columns: str, title: str | None = None) -> Show:
    """A ``show`` for ``emit`` that prints a list of results as a table of ``columns``."""
    return lambda rows: table(rows, columns, title)
