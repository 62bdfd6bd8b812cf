"""Deployment manifests rendered from an environment of the registry (see docs/deploying.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["render_environment"]


def render_environment(
    registry: Any, project: str, env: str, target: str, folder: Path, image: str | None = None
) -> Any:
    """Write ``target``'s manifests for ``env`` into ``folder`` (being built)."""
    from ..errors import UsageError

    raise UsageError("shipyard deploy render is not available yet")
