"""AWS Lambda: a container image's build context whose handler is serve's app.

    ENV/Containerfile     the lambda kind of ``_image.containerfile``: awslambdaric runs
                          ``shipyard.serving.aws_lambda.handler``
    ENV/wheels/           every library, awslambdaric among them, pinned with its sha256
    ENV/bundles/          the baked environment, verified before anything is written

Lambda has no replicas, worker groups or traffic routing of its own to render: it starts an
instance for each concurrent request, sized by the function's memory. The render says so in
its notes when the environment sets them; a traffic split stays inside the function (each
instance splits and shadows as the setting says, as serve does).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._files import tree_digest
from ._image import ImageContext, write_image_context
from ._plan import Plan

KIND = "lambda"
# The files of the context that pin everything else: the digest a render records.
PINNING = ("Containerfile", "wheels/requirements.txt", "bundles/environment.json")


def notes(plan: Plan) -> list[str]:
    """What Lambda does instead of the settings it has no place for."""
    found = []
    if plan.replicas > 1:
        found.append(
            f"replicas {plan.replicas}: Lambda starts an instance per concurrent request; "
            f"to keep {plan.replicas} started, give the function provisioned concurrency"
        )
    if plan.worker_group is not None:
        found.append(
            f"worker group {plan.worker_group}: Lambda has no machine pools; give the function "
            f"the memory a pod has there ({plan.resources.memory_mib} MB), which also sets "
            "its CPU share"
        )
    if plan.split is not None:
        found.append(
            f"component {plan.split.model} splits traffic: the split stays inside the "
            "function (each instance splits as the setting says)"
        )
    return found


def render(
    registry: Any,
    plan: Plan,
    folder: Path,
    *,
    source: str | None = None,
    find_links: Sequence[str] = (),
) -> tuple[ImageContext, list[str], str]:
    """Write the Lambda build context of ``plan``'s environment into ``folder/ENV``.

    Returns the context, the files written (relative to ``folder``) and the digest of the
    files that pin the rest. Raises what ``write_image_context`` raises (a bundle that does
    not verify: before anything is written).
    """
    where = folder / plan.environment
    context = write_image_context(
        registry,
        plan.project,
        plan.environment,
        where,
        tag=plan.image.reference,
        source=source,
        find_links=find_links,
        kind=KIND,
    )
    written = sorted(
        path.relative_to(folder).as_posix()
        for name in ("wheels", "bundles")
        for path in (where / name).rglob("*")
        if path.is_file()
    )
    written = sorted([*written, f"{plan.environment}/Containerfile"])
    pinning = {
        f"{plan.environment}/{name}": (where / name).read_text(encoding="utf-8") for name in PINNING
    }
    return context, written, tree_digest(pinning)
