"""``create_app``: a template's files, rendered, plus the Containerfile and CI workflows.

A template is a stack of folders next to this module (``AppTemplate.layers``). Every
file in them is rendered with
``string.Template`` (``$name``, ``$template``, ``$models``, ``$models_list``, ``$project``;
``$$`` is a dollar sign) and written without its ``.tmpl`` suffix; a leading ``dot-``
becomes ``.`` (package data leaves dot files out). The suffix keeps the templates' Python
files from being taken for Shipyard's own modules (by packaging, mypy and pytest).

The Containerfile comes from ``shipyard.deploy.app_containerfile`` and the workflows from
``shipyard.ci.render_files``, so an app gets what the rest of Shipyard writes. The folder
is written whole or not at all: into a temporary sibling, then renamed into place.
"""

from __future__ import annotations

import json
import re
import shutil
import string
import tempfile
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from .._version import __version__
from ..apps import read_app_config
from ..ci import CIOptions, render_files
from ..deploy import app_containerfile
from ..errors import Conflict, UsageError

# An app's name: the registry's name rule without the dot (shipyard.apps reads it so).
_APP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")
# A model's name: the pipeline name its bundle carries (an identifier).
_MODEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True)
class AppTemplate:
    """A template ``shipyard app create`` can start from.

    ``layers`` are the folders its files come from, in order (a later one's file replaces
    an earlier one's): ``_common`` (shipyard-app.toml, pytest.ini, the tests' markers and
    loopback servers), ``_health`` (a minimal ASGI app answering /health), ``_model``
    (the model's input schema, a stand-in model served by ``shipyard serve`` for the
    integration tests), then the template's own. ``needs_model``: it calls a model.
    """

    name: str
    description: str
    layers: tuple[str, ...]
    needs_model: bool = True


TEMPLATES = {
    t.name: t
    for t in (
        AppTemplate(
            "web",
            "Starlette app: an HTML form built from the model's input schema, "
            "/predict (API key) and /health",
            ("_common", "_model", "web"),
        ),
        AppTemplate(
            "batch",
            "a script scoring a CSV or JSON Lines file with a model of the environment, "
            "in chunks, with a reject file",
            ("_common", "_health", "_model", "batch"),
        ),
        AppTemplate(
            "blank",
            "a minimal ASGI app answering /health, to start from",
            ("_common", "_health", "blank"),
            needs_model=False,
        ),
    )
}


def templates() -> list[AppTemplate]:
    """The templates, in the order ``shipyard app templates`` lists them."""
    return list(TEMPLATES.values())


@dataclass(frozen=True)
class CreateOptions:
    """What ``shipyard app create`` makes.

    ``folder`` is the app's folder (default: ``./NAME``); ``models`` are the models the app
    calls, the first one the one its page or script uses; ``project``, ``environments`` and
    ``main_branch`` go into the CI workflows.
    """

    name: str
    template: str = "web"
    folder: Path | None = None
    models: tuple[str, ...] = ()
    project: str | None = None
    environments: tuple[str, ...] = ("integration", "uat", "production")
    main_branch: str = "main"

    def check(self) -> CreateOptions:
        """These options, or UsageError naming the one that is wrong."""
        if self.template not in TEMPLATES:
            raise UsageError(
                f"unknown template {self.template!r}: choose {', '.join(TEMPLATES)} "
                "(shipyard app templates describes them)"
            )
        if not isinstance(self.name, str) or not _APP_NAME.fullmatch(self.name):
            raise UsageError(
                f"app name {self.name!r} is not allowed: use letters, digits, '_' and '-', "
                "starting with a letter (at most 63)"
            )
        for model in self.models:
            if not _MODEL_NAME.fullmatch(model):
                raise UsageError(
                    f"--model {model!r} is not a model name (a pipeline's name: letters, "
                    "digits and '_', not starting with a digit)"
                )
        if len(set(self.models)) != len(self.models):
            raise UsageError("--model names a model twice")
        if TEMPLATES[self.template].needs_model and not self.models:
            raise UsageError(
                f"the {self.template} template calls a model: give --model NAME (a model of "
                "the environment the app will run in)"
            )
        if not self.project:
            raise UsageError("give --project: the project the CI workflows register the app in")
        return self

    @property
    def target(self) -> Path:
        return self.folder if self.folder is not None else Path(self.name)


@dataclass(frozen=True)
class CreatedApp:
    """A written app folder and its files (relative paths, sorted)."""

    folder: Path
    template: str
    files: tuple[str, ...]


def create_app(options: CreateOptions) -> CreatedApp:
    """Write the app folder ``options`` describes; returns it and its files.

    Raises UsageError for a bad option and Conflict, writing nothing, when the folder
    exists and is not empty (an empty one is filled).
    """
    options.check()
    target = options.target
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise Conflict(
            f"{target} exists and is not empty: choose another folder with -o, or remove it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    files = rendered(options)
    scratch = Path(tempfile.mkdtemp(prefix=f".{options.name}-", dir=target.parent))
    try:
        for relative, text in sorted(files.items()):
            path = scratch / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        read_app_config(scratch)  # what app register will read: it must hold
        if target.exists():
            target.rmdir()  # empty, checked above
        scratch.rename(target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return CreatedApp(target, options.template, tuple(sorted(files)))


def rendered(options: CreateOptions) -> dict[str, str]:
    """Every file of the app as ``{relative path: text}``: the template's, the
    Containerfile and the CI workflows."""
    values = {
        "name": options.name,
        "template": options.template,
        "models": json.dumps(list(options.models)),  # a TOML array of strings, as JSON writes it
        "models_list": ", ".join(options.models) or "none yet",
        "project": options.project or "",
        "shipyard_version": __version__,
    }
    root = resources.files(__package__)
    files: dict[str, str] = {}
    for layer in TEMPLATES[options.template].layers:
        files.update(_template_files(root.joinpath(layer), values))
    files["Containerfile"] = app_containerfile(options.name, "0.1.0", "app.main:app")
    for provider in ("github", "gitlab"):
        files.update(render_files(_ci_options(options, provider)))
    return files


def _template_files(
    folder: Traversable, values: dict[str, str], prefix: str = ""
) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for item in sorted(folder.iterdir(), key=lambda i: i.name):
        name = item.name.removesuffix(".tmpl")
        if name.startswith("dot-"):
            name = "." + name[len("dot-") :]
        if item.is_dir():
            if name != "__pycache__":
                found.extend(_template_files(item, values, f"{prefix}{name}/"))
            continue
        if not item.name.endswith(".tmpl"):
            continue
        text = item.read_text(encoding="utf-8")
        try:
            found.append((prefix + name, string.Template(text).substitute(values)))
        except (KeyError, ValueError) as exc:  # a template of ours is broken: say which
            raise RuntimeError(f"app template file {prefix}{item.name}: {exc!r}") from None
    return found


def _ci_options(options: CreateOptions, provider: str) -> CIOptions:
    """The workflows of an app's own repository: no model bundles to build, the app
    registered from the repository's root, its own smoke tests run against the challenger."""
    install = (
        f"python -m pip install --disable-pip-version-check 'shipyard=={__version__}' "
        "-r requirements.txt -r requirements-dev.txt"
    )
    # ci smoke serves the challenger at $SHIPYARD_SMOKE_URL; the app is mounted under
    # /apps/NAME there, which the smoke tests add.
    smoke = (
        f"SHIPYARD_SMOKE_PATH=/apps/{options.name} "
        "python -m pytest -m smoke tests/smoke -p no:cacheprovider"
    )
    return CIOptions(
        provider=provider,
        project=options.project or "",
        environments=options.environments,
        main_branch=options.main_branch,
        bundle_command=None,
        app_dir=".",
        smoke_command=smoke,
        install_command=install,
    )
