"""How a reject describes a record that cannot be read, the same on both engines.

The local engine calls these in its own process; the Spark engine on its workers, where
Shipyard need not be installed: it sends this module to them by value
(``cloudpickle.register_pickle_by_value``), so the module uses nothing but builtins.
"""

from __future__ import annotations


def shown(text: str) -> str:
    """A line of input for a message: stripped, at most 200 characters, quoted (``repr``)."""
    return repr(text.strip()[:200])


def wrong_field_count(fields: int, expected: int, text: str) -> str:
    """The reason given for a CSV line with ``fields`` fields where the header has ``expected``."""
    return f"line has {fields} fields, expected {expected}: {shown(text)}"
