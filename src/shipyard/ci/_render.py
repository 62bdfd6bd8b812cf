"""Write the workflow files of one provider."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import Conflict
from . import _github, _gitlab
from ._flow import CIOptions

RENDERERS: dict[str, Callable[[CIOptions], dict[str, str]]] = {
    "github": _github.render,
    "gitlab": _gitlab.render,
}


def render_files(options: CIOptions) -> dict[str, str]:
    """The provider's files as {path relative to the repository: text} (UsageError on a
    bad option)."""
    options.check()
    return RENDERERS[options.provider](options)


def render_ci(options: CIOptions, folder: Path, force: bool = False) -> list[Path]:
    """Write the provider's files under ``folder`` (the repository's root); returns them.

    Raises Conflict, writing nothing, when a file exists and ``force`` is false.
    """
    files = render_files(options)
    targets = {folder / relative: text for relative, text in files.items()}
    existing = [str(path) for path in targets if path.exists()]
    if existing and not force:
        raise Conflict(f"{', '.join(existing)} exists already: pass --force to replace it")
    for path, text in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(targets)
