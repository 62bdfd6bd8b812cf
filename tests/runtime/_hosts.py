"""Running a command on a stand-in production host: a venv, with nothing leaking in."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# Variables of the test process that would change what the host's Python sees.
_LEAKS = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "SHIPYARD_PUBLIC_KEY")


def run_on_host(
    python: Path,
    *args: str,
    stdin: str = "",
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python *args``; the host is what the venv holds, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in _LEAKS}
    return subprocess.run(
        [str(python), *args],
        input=stdin,
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
