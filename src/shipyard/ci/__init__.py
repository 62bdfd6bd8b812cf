"""CI/CD: workflows that take a pull request to production, and the steps they run.

    from shipyard.ci import CIOptions, render_ci
    render_ci(CIOptions("github", project="demo"), Path("."))

``render_ci`` writes a GitHub Actions workflow or a GitLab CI file (see ``_flow`` for the
flow both run); ``register_candidates``, ``tag_candidates`` and ``smoke`` are the steps
behind ``shipyard ci candidates|tag|smoke``. See docs/ci.md.
"""

from ._candidates import register_candidates, tag_candidates
from ._flow import COMPONENT_CONFIG, PROVIDERS, CIOptions, Flow, Step
from ._render import render_ci, render_files
from ._smoke import SmokeOptions, smoke

__all__ = [
    "COMPONENT_CONFIG",
    "PROVIDERS",
    "CIOptions",
    "Flow",
    "SmokeOptions",
    "Step",
    "register_candidates",
    "render_ci",
    "render_files",
    "smoke",
    "tag_candidates",
]
