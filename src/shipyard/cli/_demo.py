"""``shipyard demo``: the main job, end to end, on embedded defaults (see shipyard.demo)."""

from __future__ import annotations

import functools
from pathlib import Path

import typer

from ._output import console
from ._views import (
    change_line,
    diff_view,
    history_view,
    revision_line,
    setting_line,
    status_view,
    version_line,
)


def demo(
    workdir: Path = typer.Option(
        Path("demo-output"),
        "--workdir",
        help="Where keys, bundles, the production copy and the demo's web app go.",
    ),
) -> None:
    """Train, export a signed bundle, run it as production would, register, promote and serve it.

    A web app from the web template then joins it in one promotion and answers beside it.

    The registry part runs on a fresh embedded registry in WORKDIR/.shipyard.
    """
    from ..demo import Display, RegistryViews, run_demo
    from ._progress import progress_bar

    views = RegistryViews(
        version=version_line,
        revision=revision_line,
        setting=setting_line,
        change=change_line,
        status=status_view,
        diff=diff_view,
        history=history_view,
    )
    run_demo(workdir, Display(console, views, functools.partial(progress_bar, console)))
