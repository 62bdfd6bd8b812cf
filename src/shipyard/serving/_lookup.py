"""Finding the runner a request names in a route table; the 404s name what is there."""

from __future__ import annotations

from ..errors import HttpError
from ._routes import ModelRoute, RouteTable
from ._runner import ModelRunner


def runner_of(entry: ModelRoute, version: str) -> ModelRunner:
    """The runner of ``version`` of ``entry``'s model; HttpError 404 naming the versions held."""
    runner = entry.versions.get(version)
    if runner is None:
        held = ", ".join(entry.versions)
        raise HttpError(
            404,
            "NotFound",
            f"model '{entry.name}' has no version '{version}' loaded (versions: {held})",
        )
    return runner


def model_not_found(
    table: RouteTable, model: str, place: tuple[str, str] | None = None
) -> HttpError:
    """The 404 for ``model``, which ``table`` does not serve (at ``place``, when the route names
    a project and environment: ``(project, environment)``)."""
    if place is not None and place != (table.project, table.environment):
        message = (
            f"this server serves project '{table.project}', environment "
            f"'{table.environment}', not '{place[0]}/{place[1]}'"
        )
    else:
        known = ", ".join(sorted(table.models)) or "none"
        message = f"no model '{model}' here (models: {known})"
    return HttpError(404, "NotFound", message)
