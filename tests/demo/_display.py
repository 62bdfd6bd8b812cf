"""A demo ``Display`` that records what it prints, with the command line's own views."""

from __future__ import annotations

from rich.console import Console

from shipyard.cli._views import (
    change_line,
    diff_view,
    history_view,
    revision_line,
    setting_line,
    status_view,
    version_line,
)
from shipyard.demo import Display, RegistryViews


def recording_display(width: int = 250) -> Display:
    """A Display on a recording console (read it with ``display.console.export_text()``)."""
    views = RegistryViews(
        version=version_line,
        revision=revision_line,
        setting=setting_line,
        change=change_line,
        status=status_view,
        diff=diff_view,
        history=history_view,
    )
    return Display(Console(record=True, width=width), views)
