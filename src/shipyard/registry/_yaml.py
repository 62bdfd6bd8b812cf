"""YAML for files people edit: a key given twice is an error, not a silent overwrite.

PyYAML keeps the last value of a repeated key, so a component config or an app config with
a copy-paste slip would apply something nobody reviewed. ``load`` refuses it, naming the
key and both lines.
"""

from __future__ import annotations

from typing import Any

import yaml


class UniqueKeys(yaml.SafeLoader):
    """SafeLoader that refuses a mapping holding one key twice."""


def _mapping(loader: UniqueKeys, node: yaml.MappingNode, deep: bool = False) -> Any:
    lines: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            first = lines.get(key)
        except TypeError:  # an unhashable key: SafeLoader's own error names it
            break
        line = key_node.start_mark.line + 1
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key!r} appears twice (lines {first} and {line}); keep one",
                key_node.start_mark,
            )
        lines[key] = line
    return loader.construct_mapping(node, deep=deep)


UniqueKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load(text: str) -> Any:
    """``yaml.safe_load`` that raises yaml.YAMLError for a key repeated in one mapping."""
    return yaml.load(text, Loader=UniqueKeys)  # noqa: S506 - a SafeLoader subclass
