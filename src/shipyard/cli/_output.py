"""Printing: rich tables for people, ``--json`` for machines, one line for errors."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def print_json(document: Any) -> None:
    """Write ``document`` as JSON on stdout (no colour, no wrapping)."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def error_line(message: str) -> None:
    """One readable error line on stderr."""
    errors.print(f"[bold red]error:[/] {message}", soft_wrap=True)
