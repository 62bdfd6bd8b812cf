"""Check a language model's answer against a JSON schema; fall back to a declared value.

Copied into every bundle, standard library only. The schema language is the part of
JSON Schema that describes an answer: ``type``, ``properties``, ``required``,
``additionalProperties``, ``items``, ``enum``, ``const``, ``minimum``, ``maximum``,
``exclusiveMinimum``, ``exclusiveMaximum``, ``minLength``, ``maxLength``, ``pattern``,
``minItems``, ``maxItems``, ``anyOf``, plus the annotations ``title``, ``description``,
``default``, ``examples`` and ``$schema``. Export refuses any other keyword, so a
schema never silently checks less than its author wrote.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "anyOf",
    }
)
ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$schema"})
TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(.*)\n```\s*$", re.DOTALL)


def unsupported(schema: Any, path: str = "$") -> str | None:
    """Where ``schema`` uses something this checker does not know, as a sentence; else None."""
    if not isinstance(schema, Mapping):
        return f"{path} is not an object"
    for key, value in schema.items():
        if key in ANNOTATIONS:
            continue
        if key not in KEYWORDS:
            return f"{path} uses '{key}', which answers are not checked with"
        if key == "type":
            names = value if isinstance(value, list) else [value]
            wrong = [n for n in names if n not in TYPES]
            if wrong:
                return f"{path} has unknown type {wrong[0]!r}"
        elif key == "properties":
            for name, sub in value.items():
                found = unsupported(sub, f"{path}.{name}")
                if found:
                    return found
        elif key in ("items", "additionalProperties") and isinstance(value, Mapping):
            found = unsupported(value, f"{path}[]" if key == "items" else f"{path}.*")
            if found:
                return found
        elif key == "anyOf":
            for i, sub in enumerate(value):
                found = unsupported(sub, f"{path}.anyOf[{i}]")
                if found:
                    return found
        elif key == "pattern":
            try:
                re.compile(value)
            except re.error as exc:
                return f"{path} has a pattern that does not compile ({exc})"
    return None


def _is_type(value: Any, name: str) -> bool:
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return name == "number" or float(value).is_integer()


def violation(value: Any, schema: Mapping[str, Any], path: str = "$") -> str | None:
    """The first way ``value`` breaks ``schema``, as ``$.field: what``; None when it fits."""
    kind = schema.get("type")
    if kind is not None:
        names = kind if isinstance(kind, list) else [kind]
        if not any(_is_type(value, n) for n in names):
            return f"{path}: {json.dumps(value)[:80]} is not of type {' or '.join(names)}"
    if "const" in schema and value != schema["const"]:
        return f"{path}: must be {json.dumps(schema['const'])}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path}: {json.dumps(value)[:80]} is not one of {json.dumps(schema['enum'])}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        for key, broken in (
            ("minimum", lambda v, m: v < m),
            ("maximum", lambda v, m: v > m),
            ("exclusiveMinimum", lambda v, m: v <= m),
            ("exclusiveMaximum", lambda v, m: v >= m),
        ):
            if key in schema and broken(value, schema[key]):
                return f"{path}: {value} breaks {key} {schema[key]}"
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            return f"{path}: shorter than {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{path}: longer than {schema['maxLength']} characters"
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            return f"{path}: does not match {schema['pattern']!r}"
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            return f"{path}: fewer than {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{path}: more than {schema['maxItems']} items"
        if isinstance(schema.get("items"), Mapping):
            for i, item in enumerate(value):
                found = violation(item, schema["items"], f"{path}[{i}]")
                if found:
                    return found
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                return f"{path}: '{name}' is required"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                found = violation(item, properties[name], f"{path}.{name}")
            elif extra is False:
                found = f"{path}: '{name}' is not an allowed field"
            elif isinstance(extra, Mapping):
                found = violation(item, extra, f"{path}.{name}")
            else:
                found = None
            if found:
                return found
    if "anyOf" in schema and all(violation(value, sub, path) for sub in schema["anyOf"]):
        return f"{path}: fits none of anyOf"
    return None


def check_answer(text: Any, schema: Mapping[str, Any], fallback: Any) -> dict[str, Any]:
    """The outcome of one answer: ``{"valid": True, "value": parsed}`` when ``text`` is JSON
    fitting ``schema``, else ``{"valid": False, "value": fallback, "error": why}``.

    A Markdown code fence around the JSON (```json … ```) is removed first; a missing
    answer (None, when the model call failed and its node answers null) falls back too.
    """
    if text is None:
        return {"valid": False, "value": fallback, "error": "no answer"}
    body = str(text).strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        value = json.loads(body)
    except ValueError as exc:
        return {"valid": False, "value": fallback, "error": f"the answer is not JSON ({exc})"}
    found = violation(value, schema)
    if found:
        return {"valid": False, "value": fallback, "error": found}
    return {"valid": True, "value": value}
