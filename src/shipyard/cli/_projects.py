"""``shipyard project`` and ``shipyard model``: projects and their model versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..errors import ShipyardError
from ._backend import JSON, PROJECT, YES, confirm, open_backend
from ._files import APP_CONFIG, MODEL_CARD, read_app_config, read_mapping
from ._output import emit, listing, plain
from ._views import card_view, version_line

projects = typer.Typer(help="Projects and their chains of environments.", no_args_is_help=True)
models = typer.Typer(
    help="Model versions: register, tag, choose the default.", no_args_is_help=True
)


@projects.command("create")
def create_project(
    name: str = typer.Argument(..., help="Project name."),
    environments: str = typer.Option(
        "integration,uat,production",
        "--environments",
        help="The promotion chain, first to last, comma-separated.",
    ),
    as_json: bool = JSON,
) -> None:
    """Create a project with a chain of environments (integration -> uat -> production)."""
    chain = [e.strip() for e in environments.split(",") if e.strip()]
    with open_backend() as backend:
        result = backend.create_project(name, chain)
    emit(
        result,
        as_json,
        lambda p: f"created project {p['name']}: {' -> '.join(p['environments'])}",
    )


@projects.command("list")
def list_projects(as_json: bool = JSON) -> None:
    """Every project with its environments."""
    with open_backend() as backend:
        result = backend.list_projects()
    emit(result, as_json, listing("name", "environments", "created_at", "created_by"))


@projects.command("delete")
def delete_project(
    name: str = typer.Argument(..., help="Project name."),
    yes: bool = YES,
    as_json: bool = JSON,
) -> None:
    """Delete a project with its environments, models and history (the audit log keeps it)."""
    confirm(f"delete project {name} with all its environments and models", yes)
    with open_backend() as backend:
        backend.delete_project(name)
    emit({"deleted": name}, as_json, lambda d: f"deleted project {d['deleted']}")


@models.command("register")
def register(
    bundle: Path = typer.Argument(..., help="A bundle (NAME-VERSION.tar.gz)."),
    app_config: Path | None = APP_CONFIG,
    model_card: Path | None = MODEL_CARD,
    project: str = PROJECT,
    as_json: bool = JSON,
) -> None:
    """Verify a bundle and add it to its model as a candidate version.

    ``--app-config FILE`` gives the version's default app config (a YAML or JSON mapping);
    ``--model-card FILE`` completes the model card the bundle carries.
    """
    config = read_app_config(app_config)
    card = read_mapping(model_card, "model card")
    with open_backend() as backend:
        known = _registered_before(backend, project, bundle)
        result = backend.register_model(project, bundle, config, card)
    emit(
        result,
        as_json,
        lambda v: (
            f"unchanged: this bundle is already registered, {version_line(v)}"
            if known
            else f"registered {version_line(v)}"
        ),
    )


def _registered_before(backend: Any, project: str, bundle: Path) -> bool:
    """Whether the model already holds this exact bundle (so registering changes nothing).

    Reads only the bundle's metadata.json (it comes before the model files in the archive)
    and its sha256; any doubt (an unreadable file, no such model yet) answers False and
    leaves the refusal, if any, to the registry.
    """
    import hashlib
    import json
    import tarfile

    try:
        with tarfile.open(bundle, mode="r:gz") as archive:
            name = None
            for member in archive:
                if member.isfile() and member.name.endswith("/metadata.json"):
                    handle = archive.extractfile(member)
                    name = json.loads(handle.read(1 << 20))["name"] if handle else None
                    break
        with bundle.open("rb") as file:
            digest = hashlib.file_digest(file, "sha256").hexdigest()
        if not isinstance(name, str):
            return False
        versions = plain(backend.versions(project, name))
    except (OSError, ValueError, KeyError, tarfile.TarError, ShipyardError):
        return False
    return any(v.get("digest") == digest for v in versions)


@models.command("card")
def card(
    name: str = typer.Argument(..., help="Model name."),
    version: str | None = typer.Option(
        None, "--version", help="A tag (v2) or a version id (default: the default version)."
    ),
    project: str = PROJECT,
    as_json: bool = JSON,
) -> None:
    """A version's model card: owner, intended use, validation metrics, limitations, approvals."""
    with open_backend() as backend:
        result = backend.get_version(project, name, version)
    emit(result, as_json, card_view)


@models.command("list")
def list_models(project: str = PROJECT, as_json: bool = JSON) -> None:
    """The project's models with their default version."""
    with open_backend() as backend:
        result = backend.list_models(project)
    emit(
        result,
        as_json,
        listing("name", "default_version", "versions", "candidates", "latest_bundle_version"),
    )


@models.command("versions")
def versions(
    name: str = typer.Argument(..., help="Model name."),
    project: str = PROJECT,
    as_json: bool = JSON,
) -> None:
    """Every version of a model, oldest first."""
    with open_backend() as backend:
        result = backend.versions(project, name)
    emit(
        result,
        as_json,
        listing(
            "version_id",
            "tag",
            "is_default",
            "bundle_version",
            "digest",
            "signed",
            "created_at",
        ),
    )


@models.command("tag")
def tag(
    name: str = typer.Argument(..., help="Model name."),
    version_id: int = typer.Argument(..., help="The candidate's version id (1, 2, …)."),
    project: str = PROJECT,
    as_json: bool = JSON,
) -> None:
    """Tag a candidate version with the model's next vN."""
    with open_backend() as backend:
        result = backend.tag(project, name, version_id)
    emit(result, as_json, lambda v: f"tagged {version_line(v)}")


@models.command("set-default")
def set_default(
    name: str = typer.Argument(..., help="Model name."),
    version: str = typer.Argument(..., help="A tag (v2), or 'newest' for the newest tag."),
    project: str = PROJECT,
    as_json: bool = JSON,
) -> None:
    """Make a tagged version the model's default ('newest': follow the newest tag again)."""
    with open_backend() as backend:
        result = backend.set_default(project, name, None if version == "newest" else version)
    emit(result, as_json, lambda v: f"default: {version_line(v)}")
