"""What git says about the folder an app is built from: commit, branch, uncommitted changes.

Recorded in the bundle so a version can be traced to its source. Asked of the ``git``
command; a folder outside any repository, or a host without git, records None for each.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

GIT_TIMEOUT = 30.0  # seconds; a status of a large working tree is not instant


def _git(folder: Path, *args: str) -> str | None:
    """The stripped output of ``git args`` run in ``folder``, or None when it fails."""
    # No prompt and no fsmonitor hook (a program the config could name): only the
    # repository's facts are wanted. The user's config stays: it may mark the folder a
    # safe.directory (CI runners do), without which git refuses to answer.
    environment = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")
    try:
        done = subprocess.run(
            ["git", "-c", "core.fsmonitor=false", *args],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            env=environment,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def commit_time(folder: str | os.PathLike[str]) -> int | None:
    """The Unix time of HEAD's commit in ``folder``'s repository, or None."""
    found = _git(Path(folder), "log", "-1", "--format=%ct", "HEAD")
    return int(found) if found and found.isdigit() else None


def build_info(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"git_commit", "git_branch", "git_dirty"}`` of ``folder`` (each None outside git).

    ``git_branch`` is None on a detached HEAD too (as in a CI checkout of a pull request);
    ``git_dirty`` is True when a file under ``folder`` differs from the commit or is new
    and not ignored.
    """
    base = Path(folder)
    unknown: dict[str, Any] = {"git_commit": None, "git_branch": None, "git_dirty": None}
    if _git(base, "rev-parse", "--is-inside-work-tree") != "true":
        return unknown
    commit = _git(base, "rev-parse", "--verify", "-q", "HEAD")
    status = _git(base, "status", "--porcelain", "--untracked-files=normal", "--", ".")
    return {
        "git_commit": commit or None,
        "git_branch": _git(base, "symbolic-ref", "--short", "-q", "HEAD") or None,
        "git_dirty": None if status is None else bool(status),
    }
