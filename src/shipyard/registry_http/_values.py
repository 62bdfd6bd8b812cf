"""What the registry API accepts in a parameter: its type, then its rule (a name's pattern,
an id's range), read from a request and stated in the OpenAPI document from one table.

``convert`` turns a path, query or JSON value into the type the ``Registry`` method
names and holds it to the parameter's ``Rule``; anything else is an InvalidInput that
names the parameter, never a value the database refuses later (a 500): PostgreSQL
holds no id past ``MAX_ID`` and no NUL character in text, and its columns have widths.
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..registry import MAX_ID, NAME_PATTERN, InvalidInput

__all__ = ["RULES", "Rule", "convert", "rule"]

MAX_BIGINT = 2**63 - 1  # a BIGINT column (the rows a batch job counts)
MAX_DEPTH = 32  # levels of lists and objects in one value: a config needs a handful
_NAME_HINT = "letters, digits, '_', '.', '-' (at most 63, starting with a letter or digit)"


@dataclass(frozen=True)
class Rule:
    """What a value must be beyond its type.

    Text matches ``pattern`` whole (``hint`` says how in words) and is at most
    ``max_length`` characters; a number lies from ``minimum`` (above it when
    ``exclusive_minimum``) to ``maximum``. A list of text holds each item to the rule.
    """

    pattern: str | None = None
    hint: str = ""
    max_length: int | None = None
    minimum: float = -(2**63)  # what a database integer holds, unless a rule says less
    maximum: float = MAX_BIGINT
    exclusive_minimum: bool = False

    def text_keywords(self) -> dict[str, Any]:
        """The JSON Schema keywords that state this rule for a string."""
        keywords: dict[str, Any] = {}
        if self.pattern is not None:
            keywords["pattern"] = self.pattern
        if self.max_length is not None:
            keywords["maxLength"] = self.max_length
        return keywords

    def number_keywords(self) -> dict[str, Any]:
        """The JSON Schema keywords that state this rule for an integer or a number."""
        low = "exclusiveMinimum" if self.exclusive_minimum else "minimum"
        return {low: self.minimum, "maximum": self.maximum}

    def check(self, name: str, value: Any) -> None:
        """Raise InvalidInput naming ``name`` unless ``value`` (already typed) keeps the rule."""
        if isinstance(value, str):
            self._check_text(name, value)
        elif isinstance(value, list):
            for item in value:
                self._check_text(name, item)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            low_ok = value > self.minimum if self.exclusive_minimum else value >= self.minimum
            if not (low_ok and value <= self.maximum):
                raise InvalidInput(f"parameter '{name}' is out of range: {self._range(value)}")

    def _check_text(self, name: str, value: str) -> None:
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise InvalidInput(f"parameter '{name}' must be {self.hint}")
        if self.max_length is not None and len(value) > self.max_length:
            raise InvalidInput(f"parameter '{name}' must be at most {self.max_length} characters")

    def _range(self, value: float) -> str:
        if isinstance(value, int):
            return f"it must be a whole number from {self.minimum} to {self.maximum}"
        above = "above" if self.exclusive_minimum else "at least"
        return f"it must be a number {above} {self.minimum} and at most {self.maximum:g}"


_NAME = Rule(pattern=f"^{NAME_PATTERN.pattern}$", hint=f"a name: {_NAME_HINT}")
_ID = Rule(minimum=1, maximum=MAX_ID)

# By parameter name: each means the same thing in every operation that takes it. (Not so
# ``version``, ``state`` or ``role``, whose text the registry checks itself: a version
# is a tag or an id in one operation and a served label in another.)
RULES: dict[str, Rule] = {
    **dict.fromkeys(
        ("project", "env", "model", "name", "from_env", "component", "promotes_to"), _NAME
    ),
    "environments": _NAME,
    # What ``diff`` compares: an environment, or one of its revisions (uat@3).
    **dict.fromkeys(
        ("a", "b"),
        Rule(
            pattern=f"^{NAME_PATTERN.pattern}(@[0-9]{{1,9}})?$",
            hint=f"ENVIRONMENT or ENVIRONMENT@REVISION (an environment name: {_NAME_HINT})",
        ),
    ),
    # Row numbers; so is a version given by its id (3): as text (v2) the registry checks it.
    **dict.fromkeys(("number", "to", "version"), _ID),
    "limit": Rule(minimum=0, maximum=MAX_ID),
    **dict.fromkeys(("count", "max_attempts"), Rule(minimum=1, maximum=MAX_ID)),
    **dict.fromkeys(("rows_done", "rows_rejected"), Rule(minimum=0, maximum=MAX_BIGINT)),
    # Seconds; a billion (about 31 years) is further back than any heartbeat.
    "stale_after": Rule(minimum=0, exclusive_minimum=True, maximum=1e9),
    # The widths of the columns these are stored in (or compared with).
    "worker": Rule(max_length=255),
    "machine_size": Rule(max_length=64),
    "object_prefix": Rule(max_length=500),
}
_ANY = Rule()


def rule(name: str) -> Rule:
    """The rule of the parameter ``name`` (every parameter has one: at least a range).

    Any ``…_id`` (``job_id``, ``token_id``) is a row's id, from 1 to ``MAX_ID``.
    """
    return RULES.get(name) or (_ID if name.endswith("_id") else _ANY)


def _options(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _describe(annotation: Any) -> str:
    names = {
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        str: "text",
        dict: "a JSON object",
        list: "a list of text",
        Sequence: "a list of text",
    }
    wanted = [
        names.get(typing.get_origin(o) or o, "a value")
        for o in _options(annotation)
        if o is not type(None)
    ]
    return " or ".join(wanted)


def convert(name: str, value: Any, annotation: Any, text: bool) -> Any:
    """``value`` as the type ``annotation`` names; ``text`` when it comes from a path or query.

    Raises InvalidInput naming the parameter when the value does not fit its type or its
    rule, holds a NUL character anywhere (PostgreSQL stores no NUL in text), or nests
    lists and objects more than ``MAX_DEPTH`` levels deep.
    """
    typed = _typed(name, value, annotation, text)
    _check_content(name, typed)
    rule(name).check(name, typed)
    return typed


def _typed(name: str, value: Any, annotation: Any, text: bool) -> Any:
    options = _options(annotation)
    if value is None:
        if type(None) in options or Any in options:
            return None
        raise InvalidInput(f"parameter '{name}' must not be null")
    for option in options:
        kind = typing.get_origin(option) or option
        if option is Any:
            return value
        if kind is bool:
            if text and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            if not text and isinstance(value, bool):
                return value
        elif kind is int:
            number = None
            if text and re.fullmatch(r"-?[0-9]+", value):
                # Past 19 digits no rule's range can hold it: refuse before int() reads it.
                number = int(value) if len(value.lstrip("-")) <= 19 else 10**19
            elif not text and isinstance(value, int) and not isinstance(value, bool):
                number = value
            if number is not None:
                return number
        elif kind is float:
            decimal = text and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value)
            plain = not text and isinstance(value, int | float) and not isinstance(value, bool)
            if (decimal or plain) and math.isfinite(float(value)):
                return float(value)
        elif kind is str:
            if isinstance(value, str):
                return value
        elif kind is dict:
            parsed = _json_text(name, value) if text else value
            if isinstance(parsed, dict):
                return parsed
        elif kind in (list, Sequence):
            parsed = value.split(",") if text else value
            if isinstance(parsed, list) and all(isinstance(v, str) for v in parsed):
                return parsed
    raise InvalidInput(f"parameter '{name}' must be {_describe(annotation)}")


def _check_content(name: str, value: Any) -> None:
    """InvalidInput unless every text in ``value`` is free of NUL and it nests at most
    ``MAX_DEPTH`` levels (deeper documents break encoders and checks that recurse)."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str) and "\x00" in item:
            raise InvalidInput(f"parameter '{name}' must not contain a NUL character")
        if isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise InvalidInput(
                    f"parameter '{name}' nests too deeply (at most {MAX_DEPTH} levels)"
                )
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending += [(child, depth + 1) for child in children]


def _json_text(name: str, value: str) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise InvalidInput(f"parameter '{name}' is not valid JSON") from None
