"""``render_environment``: read the plan, render a target's files, write them, record it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..registry import RegistryAPI, to_json
from . import _cloudrun, _compose, _kserve, _kubernetes, _lambda
from ._files import tree_digest, write_tree
from ._plan import Plan, default_image, parse_image, read_plan

Renderer = Callable[[Plan], tuple[dict[str, str], list[str]]]
RENDERERS: dict[str, Renderer] = {
    "kubernetes": _kubernetes.render,
    "kserve": _kserve.render,
    "compose": _compose.render,
    "cloudrun": _cloudrun.render,
}
# Targets whose render is an image's build context (it bakes the bundles and collects
# the wheels) rather than manifests alone.
CONTEXTS = ("lambda",)
TARGETS = (*RENDERERS, *CONTEXTS)
# The targets that give serve the llm key the environment config points to (from a Secret).
LLM_KEY_TARGETS = ("kubernetes", "kserve", "compose")
# What a target says, besides the plan's notes, about settings it cannot honour as set.
NOTES: dict[str, Callable[[Plan], list[str]]] = {
    "cloudrun": _cloudrun.notes,
    "lambda": _lambda.notes,
}


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
        known = ", ".join(RENDERERS)
        raise UsageError(f"--target {target!r} renders no manifests here (those that do: {known})")
    return renderer(plan)


def target_notes(plan: Plan, target: str) -> list[str]:
    """What ``target`` leaves out of ``plan`` or cannot honour as set, said once each."""
    extra = NOTES.get(target)
    notes = extra(plan) if extra else []
    key = plan.llm_key
    if key is not None and target not in LLM_KEY_TARGETS:
        where = (
            f"the variable {key.variable}"
            if key.variable is not None
            else f"the file {key.file} under the secrets root (SHIPYARD_SECRETS_ROOT)"
        )
        notes.append(
            f"{target} does not render the language model endpoint's key, which the "
            f"environment config's llm entry says serve reads from {where}: give the "
            "service that from a secret of the platform's"
        )
    if target not in ("kubernetes", "compose") and plan.apps:
        names = ", ".join(app.name for app in plan.apps)
        notes.append(
            f"{target} renders the models only: app(s) {names} are left out; "
            "render them with --target kubernetes or compose"
        )
    return notes


def render_environment(
    registry: RegistryAPI,
    project: str,
    env: str,
    target: str,
    folder: Path,
    image: str | None = None,
    *,
    source: str | None = None,
    find_links: Sequence[str] = (),
) -> Render:
    """Write ``target``'s deployment of ``env`` as it is now into ``folder``, and record it.

    ``image`` (a tag or ``name@sha256:…`` reference) defaults to
    ``shipyard-PROJECT-ENV:REVISION`` (``…-lambda:REVISION`` for the Lambda image). The
    files are written first, then the render is recorded in the audit log with the
    revision it came from (which needs the deployer role on a registry server). ``lambda``
    writes an image's build context: its bundles are verified first (``write_image_context``,
    whose ``source`` and ``find_links`` these are) and its digest is that of the files
    pinning the rest. Raises UsageError, NotFound, InvalidInput (see ``read_plan``),
    PermissionDenied, what baking raises for a bundle that does not verify, and OSError
    when ``folder`` cannot be written.
    """
    if target not in TARGETS:
        raise UsageError(f"--target {target!r} is not one of {', '.join(TARGETS)}")
    plan = read_plan(registry, project, env, image)
    notes = [*plan.notes, *target_notes(plan, target)]
    if target in CONTEXTS:
        if image is None:
            reference = default_image(project, env, plan.revision, _lambda.KIND)
            plan = dataclasses.replace(plan, image=parse_image(reference))
        _, written, digest = _lambda.render(
            registry, plan, folder, source=source, find_links=find_links
        )
    else:
        files, owned = render_files(plan, target)
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
