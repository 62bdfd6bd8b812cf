"""Files the CLI reads for the registry: app config and model card documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

from ..errors import UsageError
from ..registry import load_yaml

APP_CONFIG = typer.Option(
    None,
    "--app-config",
    help="A YAML or JSON file: the app config bound to this version (a mapping).",
)


MODEL_CARD = typer.Option(
    None,
    "--model-card",
    help="A YAML or JSON file completing the bundle's model card: owner, intended_use, "
    "validation_metrics, limitations, approvals.",
)


def read_app_config(path: Path | None) -> dict[str, Any] | None:
    """The app config mapping in ``path`` (None when no file is given); see ``read_mapping``."""
    return read_mapping(path, "app config")


def read_mapping(path: Path | None, what: str) -> dict[str, Any] | None:
    """The mapping in the YAML or JSON file ``path`` (None when no file is given).

    Raises UsageError naming the file when it cannot be read, is not YAML, repeats a key
    or does not hold a mapping.
    """
    if path is None:
        return None
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {what} '{path}': {exc.strerror}") from None
    try:
        document = load_yaml(text)
    except yaml.YAMLError as exc:
        detail = str(exc).replace("\n", " ")
        raise UsageError(f"{what} '{path}' is not valid YAML: {detail}") from None
    if not isinstance(document, dict):
        raise UsageError(f"{what} '{path}' must hold a mapping, not {type(document).__name__}")
    return document
