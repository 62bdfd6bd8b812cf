"""``shipyard app``: web apps as versioned components, built, registered and tagged.

``app build`` locks a folder as an app bundle; ``app register`` builds (or takes) one and
adds it to the registry as a candidate, as ``model register`` does for a model bundle.
``app list`` / ``versions`` / ``tag`` are the model commands' twins for apps; component,
promotion and rollback commands treat apps and models alike.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import typer

from ..errors import NotFound, UsageError
from ._backend import JSON, PROJECT, open_backend
from ._files import APP_CONFIG, read_app_config
from ._output import emit, listing, plain
from ._views import version_line

app = typer.Typer(
    help="Apps: web apps locked as versioned bundles, promoted with their models.",
    no_args_is_help=True,
)

SIGN_KEY = typer.Option(None, "--sign-key", help="Ed25519 private key (PEM) that signs the bundle.")


def _build_line(path: Path, metadata: dict[str, Any], signed: bool) -> str:
    """``built dist/x-0.1.0.tar.gz: tumour_app 0.1.0, sha256 …, signed; git 1a2b3c4 on main``."""
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    return (
        f"built {path}: {metadata['name']} {metadata['version']}, sha256 {digest[:12]}…, "
        f"{'signed' if signed else 'unsigned'}; {_source_line(metadata['build'])}"
    )


def _source_line(build: dict[str, Any]) -> str:
    """Where the source came from, as git says: ``git 1a2b3c4 on main, uncommitted changes``."""
    if build.get("git_commit") is None and build.get("git_dirty") is None:
        return "not in a git repository"
    commit = (build.get("git_commit") or "no commit")[:12]
    branch = build.get("git_branch")
    where = f"git {commit}" + (f" on {branch}" if branch else " (detached)")
    return where + (", uncommitted changes" if build.get("git_dirty") else "")


@app.command("build")
def build(
    folder: Path = typer.Argument(..., help="The app folder (it holds shipyard-app.toml)."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Folder to write NAME-VERSION.tar.gz into."
    ),
    sign_key: Path | None = SIGN_KEY,
    as_json: bool = JSON,
) -> None:
    """Lock an app folder as a bundle (its git commit, branch and dirty flag recorded)."""
    from ..apps import AppBundle, build_app_bundle

    path = build_app_bundle(folder, output, sign_key=sign_key)
    metadata = AppBundle(path).metadata
    emit(
        {"bundle": str(path), "metadata": metadata},
        as_json,
        lambda _: _build_line(path, metadata, sign_key is not None),
    )


@app.command("register")
def register(
    source: Path = typer.Argument(
        ..., metavar="DIR", help="The app folder (or an app bundle built before)."
    ),
    project: str = PROJECT,
    sign_key: Path | None = SIGN_KEY,
    app_config: Path | None = APP_CONFIG,
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Keep the bundle in this folder (default: not kept)."
    ),
    env: str | None = typer.Option(
        None,
        "--env",
        "-e",
        help="Also deploy the version into this environment, as component add does "
        "(the CI flow's challenger).",
    ),
    as_json: bool = JSON,
) -> None:
    """Build the app's bundle and add it to the app as a candidate version.

    An unchanged folder builds the same bundle, which registers as its existing version
    ("unchanged"). ``--app-config FILE`` gives the version's default app config; ``--env E``
    deploys the version into E too (its JSON then holds ``deployed``: environment, revision).
    """
    from ..apps import AppBundle, build_app_bundle

    config = read_app_config(app_config)
    if source.is_file() and sign_key is not None:
        raise UsageError(
            f"{source} is a bundle built already: --sign-key signs a bundle built from a folder"
        )
    with tempfile.TemporaryDirectory(prefix="shipyard-app-") as scratch:
        if source.is_file():
            bundle = source
        else:
            bundle = build_app_bundle(source, output or Path(scratch), sign_key=sign_key)
        name = str(AppBundle(bundle).metadata.get("name"))
        with open_backend() as backend:
            known = _registered_before(backend, project, name, bundle)
            result = plain(backend.register_app(project, bundle, config))
            if env is not None:
                added = backend.add_component(project, env, name, result["version_id"])
                deployed = {"environment": env, "revision": plain(added)["number"]}
                result = {**result, "deployed": deployed}
    emit(
        result,
        as_json,
        lambda v: (
            (
                f"unchanged: this bundle is already registered, {version_line(v)}"
                if known
                else f"registered {version_line(v)}"
            )
            + (f" (kept at {bundle})" if output is not None else "")
            + (
                f"; deployed to {v['deployed']['environment']}, revision "
                f"{v['deployed']['revision']}"
                if "deployed" in v
                else ""
            )
        ),
    )


def _registered_before(backend: Any, project: str, name: str, bundle: Path) -> bool:
    """Whether the app already holds this exact bundle (so registering changes nothing)."""
    with bundle.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    try:
        versions = plain(backend.versions(project, name))
    except NotFound:
        return False
    return any(v.get("digest") == digest for v in versions)


@app.command("list")
def list_apps(project: str = PROJECT, as_json: bool = JSON) -> None:
    """The project's apps with their default version."""
    with open_backend() as backend:
        result = backend.list_apps(project)
    emit(
        result,
        as_json,
        listing("name", "default_version", "versions", "candidates", "latest_bundle_version"),
    )


@app.command("versions")
def versions(
    name: str = typer.Argument(..., help="App name."),
    project: str = PROJECT,
    as_json: bool = JSON,
) -> None:
    """Every version of an app, oldest first."""
    with open_backend() as backend:
        result = plain(backend.versions(project, name))
    _require_app(result[0] if result else {}, name)
    emit(
        result,
        as_json,
        listing("version_id", "tag", "is_default", "bundle_version", "digest", "signed"),
    )


@app.command("tag")
def tag(
    name: str = typer.Argument(..., help="App name."),
    version_id: int = typer.Argument(..., help="The candidate's version id (1, 2, …)."),
    project: str = PROJECT,
    as_json: bool = JSON,
) -> None:
    """Tag a candidate version with the app's next vN."""
    with open_backend() as backend:
        _require_app(plain(backend.get_version(project, name, version_id)), name)
        result = backend.tag(project, name, version_id)
    emit(result, as_json, lambda v: f"tagged {version_line(v)}")


def _require_app(version: dict[str, Any], name: str) -> None:
    """Refuse a model's version where an app's is meant (the registry shares the verbs)."""
    kind = version.get("kind", "app")
    if kind != "app":
        raise UsageError(f"'{name}' is a {kind}, not an app: use shipyard {kind} commands")
