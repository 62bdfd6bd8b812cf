"""What the demo prints with: a console, the command line's views, and a progress bar.

The demo sits below the command line, so it cannot import the CLI's views; the ``demo``
command hands them in, and the journey reads exactly as the commands it prints do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console, RenderableType

from ..batch import Progress

Line = Callable[[dict[str, Any]], str]
View = Callable[[Any], RenderableType]
ProgressBar = Callable[[str], AbstractContextManager[Callable[[Progress], None]]]


@contextmanager
def no_progress(label: str) -> Iterator[Callable[[Progress], None]]:
    """A ``ProgressBar`` that draws nothing: for tests and consoles that are not terminals."""
    yield lambda progress: None


@dataclass(frozen=True)
class RegistryViews:
    """How registry results read for people, each taking a result's plain JSON data.

    ``version``, ``revision``, ``setting`` and ``change`` (a change request, as ``env
    approve`` and ``env reject`` print it) make one line; ``status``, ``diff`` and
    ``history`` a rich renderable (the views of ``env status``, ``env diff``, ``env history``).
    """

    version: Line
    revision: Line
    setting: Line
    change: Line
    status: View
    diff: View
    history: View


@dataclass(frozen=True)
class Display:
    """Where and how the demo prints: ``console``, the registry ``views``, and ``progress``,
    which makes a progress bar labelled by its argument (default: none)."""

    console: Console
    views: RegistryViews
    progress: ProgressBar = no_progress
