"""``shipyard-app.toml``: what an app folder declares about itself.

[app]
name = "tumour_app"
version = "0.1.0"
template = "web"            # the template it was made from (optional)
entry = "app.main:app"      # module:attribute of an ASGI app, relative to the folder
models = ["tumour_triage"]  # the models it calls by name (optional)
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError

CONFIG_FILE = "shipyard-app.toml"

# An app's name names its component in the registry and its bundle's file and top folder,
# so it takes the registry's name rule without the dot (a dot would read as a version).
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")
# The pipeline version rule (1.2.0, 2.0rc1): the registry takes it for every bundle.
_VERSION = re.compile(r"[0-9]+(\.[0-9]+){0,3}([a-z][a-z0-9]*)?")
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_KEYS = ("name", "version", "template", "entry", "models")


@dataclass(frozen=True)
class AppSpec:
    """An app as its ``shipyard-app.toml`` declares it.

    ``entry`` is ``module:attribute`` of the ASGI app, the module relative to the folder;
    ``template`` is None for an app not made from a template.
    """

    name: str
    version: str
    template: str | None
    entry: str
    models: list[str] = field(default_factory=list)

    @property
    def bundle_name(self) -> str:
        """The bundle's top folder: ``<name>_<version with _>`` (as for model bundles)."""
        return f"{self.name}_{re.sub(r'[^A-Za-z0-9]', '_', self.version)}"

    @property
    def module(self) -> str:
        """The module part of ``entry`` (``app.main``)."""
        return self.entry.partition(":")[0]

    @property
    def attribute(self) -> str:
        """The attribute part of ``entry`` (``app``)."""
        return self.entry.partition(":")[2]


def read_app_config(folder: str | os.PathLike[str]) -> AppSpec:
    """The ``AppSpec`` in ``folder/shipyard-app.toml``.

    Raises UsageError naming the file, and the key when one is missing or wrong.
    """
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise UsageError(
            f"{path} does not exist: an app folder declares its name, version and entry there "
            "(shipyard app create makes one)"
        )
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    return parse_app_config(document, str(path))


def parse_app_config(document: dict[str, Any], where: str) -> AppSpec:
    """The ``AppSpec`` of a parsed ``shipyard-app.toml`` (``where`` names it in errors).

    Raises UsageError naming ``where`` and the key.
    """
    extra = sorted(set(document) - {"app"})
    if extra:
        raise UsageError(f"{where}: unknown key(s) {', '.join(extra)} (the file holds [app])")
    table = document.get("app")
    if not isinstance(table, dict):
        raise UsageError(f"{where}: no [app] table")
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise UsageError(
            f"{where}: unknown key(s) app.{', app.'.join(unknown)} (known: {', '.join(_KEYS)})"
        )

    def text(key: str, pattern: re.Pattern[str], rule: str, required: bool = True) -> str | None:
        value = table.get(key)
        if value is None and not required:
            return None
        if value is None:
            raise UsageError(f"{where}: app.{key} is missing ({rule})")
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise UsageError(f"{where}: app.{key} = {value!r} is not allowed ({rule})")
        return value

    name = text("name", _NAME, "letters, digits, '_' and '-', starting with a letter")
    version = text("version", _VERSION, "a version such as 0.1.0")
    template = text("template", _NAME, "a template name such as web", required=False)
    entry = table.get("entry")
    module, colon, attribute = entry.partition(":") if isinstance(entry, str) else ("", "", "")
    if entry is None:
        raise UsageError(f"{where}: app.entry is missing (module:attribute, such as app.main:app)")
    if not (colon and _DOTTED.fullmatch(module) and _DOTTED.fullmatch(attribute)):
        raise UsageError(
            f"{where}: app.entry = {entry!r} is not module:attribute (such as app.main:app)"
        )
    models = table.get("models", [])
    if not isinstance(models, list) or not all(
        isinstance(m, str) and _MODEL.fullmatch(m) for m in models
    ):
        raise UsageError(f"{where}: app.models = {models!r} is not a list of model names")
    if len(set(models)) != len(models):
        raise UsageError(f"{where}: app.models names a model twice")
    assert name is not None and version is not None
    return AppSpec(name, version, template, entry, list(models))
