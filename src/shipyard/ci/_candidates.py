"""The two registry steps of the flow that take more than one call: deploy a folder of
bundles as candidates, and tag the candidates an environment holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..apps import bundle_kind
from ..errors import UsageError
from ..registry import to_json
from ..runtime import Artifact


def register_candidates(backend: Any, project: str, env: str, folder: Path) -> list[dict[str, Any]]:
    """Register every ``*.tar.gz`` in ``folder`` (model and app bundles alike) and deploy
    each into ``env``.

    A bundle registered before (same bytes) is its existing version again, so a re-run
    is harmless. Returns one row per bundle: model, version_id, tag, bundle_version and
    the environment's revision after it. Raises UsageError when the folder holds no
    bundle or two bundles of one model; the registry's errors (a changed bundle under a
    registered version, an untrusted signature) as they come.
    """
    bundles = sorted(folder.glob("*.tar.gz")) if folder.is_dir() else []
    if not bundles:
        raise UsageError(
            f"no bundles (*.tar.gz) in {folder}: the bundle step must write them there"
        )
    rows: list[dict[str, Any]] = []
    for bundle in bundles:
        app = bundle_kind(Artifact(bundle).metadata) == "app"
        register = backend.register_app if app else backend.register_model
        version = to_json(register(project, bundle))
        earlier = next((r for r in rows if r["model"] == version["model"]), None)
        if earlier is not None:
            raise UsageError(
                f"{folder} holds two bundles of {version['model']} "
                f"({earlier['bundle']} and {bundle.name}): keep one per model"
            )
        revision = to_json(
            backend.add_component(project, env, version["model"], version["version_id"])
        )
        rows.append(
            {
                "bundle": bundle.name,
                "model": version["model"],
                "version_id": version["version_id"],
                "tag": version["tag"],
                "bundle_version": version["bundle_version"],
                "revision": revision["number"],
            }
        )
    return rows


def tag_candidates(backend: Any, project: str, env: str) -> list[dict[str, Any]]:
    """Tag every candidate ``env`` holds (models and apps) with its component's next vN;
    tagged ones stay as they are. Returns the versions tagged now."""
    tagged = []
    for component in to_json(backend.list_components(project, env)):
        if component["tag"] is None:
            tagged.append(to_json(backend.tag(project, component["name"], component["version_id"])))
    return tagged
