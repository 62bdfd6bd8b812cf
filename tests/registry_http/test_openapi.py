"""The registry's OpenAPI document: valid, complete, and as strict as the server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate

from shipyard import __version__
from shipyard.errors import InvalidInput
from shipyard.registry import MAX_ID, NAME_PATTERN
from shipyard.registry_http import OPERATIONS, create_app, openapi

NAMES = ("project", "env", "model", "name", "from_env", "component", "promotes_to")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    made = openapi(OPERATIONS, __version__)
    validate(made)
    return made


def _never_started() -> Any:
    raise AssertionError("the registry is opened at startup, and the app is not started here")


def test_the_document_lists_every_route_the_server_serves_and_no_other(
    document: dict[str, Any],
) -> None:
    app = create_app(_never_started)
    served = {(route.path, method) for route in app.routes for method in route.methods}
    documented = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item
    }
    assert served == documented
    assert ("/openapi.json", "GET") in served and ("/health", "HEAD") not in served


def _parameters(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(operation, parameter, schema) of every path, query and JSON body parameter."""
    for item in document["paths"].values():
        for op in item.values():
            for parameter in op.get("parameters", []):
                schema = parameter.get("schema") or parameter["content"]["application/json"]
                yield op["operationId"], parameter["name"], schema.get("schema", schema)
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            for name, schema in (body or {"schema": {}})["schema"].get("properties", {}).items():
                yield op["operationId"], name, schema


def _nodes(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield schema
    for part in schema.get("anyOf", []):
        yield from _nodes(part)
    if isinstance(schema.get("items"), dict):
        yield from _nodes(schema["items"])


def test_every_integer_parameter_states_its_bounds(document: dict[str, Any]) -> None:
    integers = 0
    for operation, name, schema in _parameters(document):
        for node in _nodes(schema):
            if node.get("type") in ("integer", "number"):
                integers += 1
                assert "maximum" in node, (operation, name)
                assert "minimum" in node or "exclusiveMinimum" in node, (operation, name)
    assert integers > 10


def test_names_and_ids_state_the_registry_s_own_rules(document: dict[str, Any]) -> None:
    for operation, name, schema in _parameters(document):
        if name in NAMES or name == "environments":
            strings = [n for n in _nodes(schema) if n.get("type") == "string"]
            assert strings, (operation, name)
            assert {n["pattern"] for n in strings} == {f"^{NAME_PATTERN.pattern}$"}, operation
        if name.endswith("_id") and name != "version_id" or name in ("number", "to"):
            (integer,) = [n for n in _nodes(schema) if n.get("type") == "integer"]
            assert (integer["minimum"], integer["maximum"]) == (1, MAX_ID), (operation, name)


def test_the_server_holds_a_value_to_the_rule_its_document_states() -> None:
    revoke = next(op for op in OPERATIONS if op.name == "revoke_token")
    (token_id,) = revoke.params
    assert token_id.read(str(MAX_ID)) == MAX_ID
    with pytest.raises(InvalidInput, match=rf"'token_id' is out of range: .* 1 to {MAX_ID}$"):
        token_id.read(str(MAX_ID + 1))
    get_project = next(op for op in OPERATIONS if op.name == "get_project")
    (name,) = get_project.params
    with pytest.raises(InvalidInput, match="parameter 'name' must be a name: letters"):
        name.read("no/slash")
    with pytest.raises(InvalidInput, match="parameter 'name' must not contain a NUL character"):
        name.read("de\x00mo")
