"""The component config file: an environment's component set as YAML, for git and CD.

    # Component config of environment 'uat' in project 'demo' (revision 4).
    components:
    - name: tumour_triage
      kind: model
      version: v1          # a tag, or a candidate's version id (a number)
      digest: 3f9c…        # optional: the bundle's sha256, checked when applied
      app_config: {}       # optional: the version's own app config when absent

Applying a file makes the environment hold exactly these components (the others are
removed). ``parse`` checks only the file's shape; the registry checks the names,
versions and digests against its database and reports every problem at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from . import _yaml
from ._types import DeployedComponent

_FIELDS = ("name", "kind", "version", "digest", "app_config")


@dataclass(frozen=True)
class ComponentSpec:
    """One component of a component config, as written in the file."""

    name: str
    kind: str | None
    version: str | int | None
    digest: str | None
    app_config: dict[str, Any] | None


def dump(
    project: str, environment: str, revision: int, components: Sequence[DeployedComponent]
) -> str:
    """The YAML text of a component set; ``parse`` reads it back to the same set."""
    items = [
        {
            "name": c.name,
            "kind": c.kind,
            "version": c.tag if c.tag is not None else c.version_id,
            "digest": c.digest,
            "app_config": c.app_config,
        }
        for c in sorted(components, key=lambda c: c.name)
    ]
    header = (
        f"# Component config of environment '{environment}' in project '{project}' "
        f"(revision {revision}).\n"
        "# Apply with: shipyard component-config apply FILE --env ENVIRONMENT\n"
    )
    return header + yaml.safe_dump({"components": items}, sort_keys=False, allow_unicode=True)


class _PlainLoader(_yaml.UniqueKeys):
    """Safe YAML without aliases (``*name``): an alias can make a document that contains
    itself, or expand a small file into an enormous one; a component config needs none."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed", mark)
        return super().compose_node(parent, index)


def _not_plain(document: Any) -> str | None:
    """What in ``document`` is not JSON's kind of data (a date, binary, NaN), or None."""
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            pending += item
        elif isinstance(item, float) and not math.isfinite(item):
            return f"the number {item} (JSON, which the registry stores, has none)"
        elif isinstance(item, str) and "\x00" in item:
            return "a NUL character in text"
        elif not isinstance(item, str | int | float | type(None)):
            return f"a {type(item).__name__} value ({item!r:.40}); quote it to keep it as text"
    return None


def parse(text: str) -> tuple[list[ComponentSpec], list[str]]:
    """The components a file lists, and every problem with its shape (empty when none)."""
    try:
        # A SafeLoader refusing aliases and a key given twice in one mapping.
        document = yaml.load(text, Loader=_PlainLoader)  # noqa: S506
    except yaml.YAMLError as exc:
        return [], [f"not valid YAML ({exc})".replace("\n", " ")]
    except RecursionError:  # PyYAML builds nested collections recursively
        return [], ["not valid YAML for a component config (nested too deeply)"]
    odd = _not_plain(document)
    if odd is not None:
        return [], [f"not plain data: {odd}"]
    if not isinstance(document, dict) or not isinstance(document.get("components"), list):
        return [], ["expected a mapping with a 'components' list"]
    extra = sorted(set(document) - {"components"})
    problems = [f"unknown top-level key(s) {', '.join(map(str, extra))}"] if extra else []
    specs: list[ComponentSpec] = []
    seen: set[str] = set()
    for index, item in enumerate(document["components"]):
        where = f"components[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected a mapping with 'name' and 'version'")
            continue
        name = item.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}: 'name' is missing")
            continue
        where = f"{where} ({name})"
        unknown = sorted(set(item) - set(_FIELDS))
        if unknown:
            problems.append(f"{where}: unknown field(s) {', '.join(map(str, unknown))}")
        if name in seen:
            problems.append(f"{where}: listed twice")
        seen.add(name)
        version = item.get("version")
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, str | int)
        ):
            problems.append(f"{where}: 'version' must be a tag like v2 or a version id")
            version = None
        app_config = item.get("app_config")
        if app_config is not None and not isinstance(app_config, dict):
            problems.append(f"{where}: 'app_config' must be a mapping")
            app_config = None
        kind, digest = item.get("kind"), item.get("digest")
        if kind is not None and not isinstance(kind, str):
            problems.append(f"{where}: 'kind' must be text")
            kind = None
        if digest is not None and not isinstance(digest, str):
            problems.append(f"{where}: 'digest' must be text (quote it)")
            digest = None
        specs.append(ComponentSpec(name, kind, version, digest, app_config))
    return specs, problems
