"""How a reject describes a record that cannot be read, the same on both engines.

The local engine calls these in its own process; the Spark engine on its workers, where
Shipyard need not be installed: it sends this module to them by value
(``cloudpickle.register_pickle_by_value``), so the module uses nothing but builtins and
the standard library (imported where used).
"""

from __future__ import annotations

from typing import Any


def shown(text: str) -> str:
    """A line of input for a message: stripped, at most 200 characters, quoted (``repr``)."""
    return repr(text.strip()[:200])


def wrong_field_count(fields: int, expected: int, text: str) -> str:
    """The reason given for a CSV line with ``fields`` fields where the header has ``expected``."""
    return f"line has {fields} fields, expected {expected}: {shown(text)}"


def json_record(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """One line of a JSON Lines file as a record: ``(record, None)``, or ``(None, reason)``.

    The line (decoded text, its line ending and a leading byte-order mark dropped) is a
    record when Python's ``json`` reads it as one JSON object (NaN and Infinity allowed,
    as pyarrow and Spark read them) whose strings UTF-8 can hold. Both engines decide
    with this on the raw line, so a bad line gets the same reason from either.
    """
    import json

    line = text.rstrip("\r\n").lstrip("\ufeff")
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"line is not valid JSON ({exc.msg} at column {exc.colno}): {shown(line)}"
    except RecursionError:
        return None, f"line is not valid JSON (nested too deeply): {shown(line)}"
    if not isinstance(record, dict):
        return None, f"line is not a JSON object: {shown(line)}"
    if "\\u" in line:  # an escaped lone surrogate reads, but no UTF-8 text can carry it
        try:
            json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return None, f"line is not valid JSON (a lone surrogate in a string): {shown(line)}"
    return record, None


def json_reason(text: str | None) -> str | None:
    """The reason a JSON Lines line is not a record (None when it is one, or for None)."""
    return None if text is None else json_record(text)[1]
