"""A model's answer is checked against a JSON schema as the jsonschema library would check
it, within the keywords Shipyard's checker takes; what fails takes the fallback."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from shipyard.runtime._answers import check_answer, unsupported, violation

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "decision": {"enum": ["approve", "refer", "decline"]},
        "score": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        "count": {"type": "integer"},
        "reasons": {"type": "array", "items": {"type": "string", "minLength": 2}, "maxItems": 2},
        "code": {"type": "string", "pattern": "^[A-Z]{2}[0-9]$"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["decision"],
    "additionalProperties": False,
}

CASES: list[Any] = [
    {"decision": "approve"},
    {"decision": "maybe"},
    {"score": 0.5},
    {"decision": "refer", "score": 1},
    {"decision": "refer", "score": -0.1},
    {"decision": "refer", "score": True},
    {"decision": "refer", "count": 2.0},
    {"decision": "refer", "count": 2.5},
    {"decision": "refer", "reasons": ["ok", "fine"]},
    {"decision": "refer", "reasons": ["ok", "x"]},
    {"decision": "refer", "reasons": ["ok", "ok", "ok"]},
    {"decision": "refer", "code": "AB1"},
    {"decision": "refer", "code": "ab1"},
    {"decision": "refer", "note": None},
    {"decision": "refer", "note": 3},
    {"decision": "refer", "extra": 1},
    ["decision"],
    "approve",
    None,
]


@pytest.mark.parametrize("value", CASES, ids=[json.dumps(c) for c in CASES])
def test_the_checker_agrees_with_the_jsonschema_library(value: Any) -> None:
    expected = jsonschema.Draft202012Validator(SCHEMA).is_valid(value)
    assert (violation(value, SCHEMA) is None) == expected


def test_a_fitting_answer_is_kept_and_a_code_fence_around_it_is_accepted() -> None:
    fenced = '```json\n{"decision": "approve"}\n```'
    assert check_answer(fenced, SCHEMA, {"decision": "refer"}) == {
        "valid": True,
        "value": {"decision": "approve"},
    }


def test_an_answer_that_is_not_json_takes_the_fallback_and_says_so() -> None:
    outcome = check_answer("Approve it.", SCHEMA, {"decision": "refer"})
    assert outcome["valid"] is False and outcome["value"] == {"decision": "refer"}
    assert outcome["error"].startswith("the answer is not JSON")


def test_keywords_the_checker_does_not_know_are_named() -> None:
    assert unsupported({"type": "object", "properties": {"a": {"format": "email"}}}) == (
        "$.a uses 'format', which answers are not checked with"
    )
    assert unsupported({"type": "text"}) == "$ has unknown type 'text'"
    assert unsupported(SCHEMA) is None
