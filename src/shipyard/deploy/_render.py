"""``render_environment``: read the plan, render a target's files, write them, record it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..registry import RegistryAPI, to_json
from . import _compose, _kserve, _kubernetes
from ._files import tree_digest, write_tree
from ._plan import Plan, read_plan

Renderer = Callable[[Plan], tuple[dict[str, str], list[str]]]
RENDERERS: dict[str, Renderer] = {
    "kubernetes": _kubernetes.render,
    "kserve": _kserve.render,
    "compose": _compose.render,
}
TARGETS = tuple(RENDERERS)


@dataclass(frozen=True)
class Render:
    """What one render wrote: where, from which revision, naming which image.

    ``files`` are relative to ``folder``; ``digest`` is the sha256 of them all (what the
    audit log records); ``notes`` say what the target could not honour as set;
    ``deployment`` is the registry's record of the render.
    """

    project: str
    environment: str
    target: str
    revision: int
    image: str
    folder: str
    files: list[str]
    digest: str
    notes: list[str]
    deployment: dict[str, Any]


def render_files(plan: Plan, target: str) -> tuple[dict[str, str], list[str]]:
    """``target``'s files for ``plan`` (relative path -> text) and the folders it owns.

    Raises UsageError for an unknown target, or a traffic split it cannot express.
    """
    renderer = RENDERERS.get(target)
    if renderer is None:
        raise UsageError(f"--target {target!r} is not one of {', '.join(TARGETS)}")
    return renderer(plan)


def target_notes(plan: Plan, target: str) -> list[str]:
    """What ``target`` leaves out of ``plan``, said once each."""
    if target == "kserve" and plan.apps:
        names = ", ".join(app.name for app in plan.apps)
        return [
            f"kserve renders the models only: app(s) {names} are not in the InferenceService; "
            "render them with --target kubernetes or compose"
        ]
    return []


def render_environment(
    registry: RegistryAPI,
    project: str,
    env: str,
    target: str,
    folder: Path,
    image: str | None = None,
) -> Render:
    """Write ``target``'s deployment of ``env`` as it is now into ``folder``, and record it.

    ``image`` (a tag or ``name@sha256:…`` reference) defaults to
    ``shipyard-PROJECT-ENV:REVISION``. The files are written first, then the render is
    recorded in the audit log with the revision it came from (which needs the deployer
    role on a registry server). Raises UsageError, NotFound, InvalidInput (see
    ``read_plan``), PermissionDenied, and OSError when ``folder`` cannot be written.
    """
    if target not in RENDERERS:
        raise UsageError(f"--target {target!r} is not one of {', '.join(TARGETS)}")
    plan = read_plan(registry, project, env, image)
    files, owned = render_files(plan, target)
    notes = [*plan.notes, *target_notes(plan, target)]
    written = write_tree(folder, files, owned)
    digest = tree_digest(files)
    record = registry.record_deployment(
        project, env, "render", target, plan.revision, plan.image.reference, digest
    )
    return Render(
        project=project,
        environment=env,
        target=target,
        revision=plan.revision,
        image=plan.image.reference,
        folder=str(folder),
        files=written,
        digest=digest,
        notes=notes,
        deployment=to_json(record),
    )
