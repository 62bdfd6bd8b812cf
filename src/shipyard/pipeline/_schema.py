"""Input tables and their typed columns, as a data scientist declares them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import GraphError
from ..runtime import TYPES

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_identifier(name: str, what: str) -> None:
    """Raise GraphError unless ``name`` is a Python identifier (it names a module or a column)."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise GraphError(f"{what} name {name!r} must be a Python identifier (letters, digits, _)")


@dataclass(frozen=True)
class Column:
    """A typed input column.

    ``type`` is one of bool, int64, float64, string, datetime, list[float64].
    ``min``/``max`` bound numeric values; ``categories`` lists the allowed values.
    A column is not nullable unless ``nullable=True``.
    """

    name: str
    type: str
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: Sequence[Any] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "." in self.name:
            raise GraphError(f"column name {self.name!r} must be a non-empty string without '.'")
        if self.type not in TYPES:
            raise GraphError(
                f"column '{self.name}': unknown type {self.type!r} (types: {', '.join(TYPES)})"
            )
        for bound in ("min", "max"):
            value = getattr(self, bound)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or value != value
            ):
                # A string or NaN bound would only fail (or pass everything) when data arrives.
                raise GraphError(f"column '{self.name}': {bound} must be a number, not {value!r}")
        if (self.min is not None or self.max is not None) and self.type not in ("int64", "float64"):
            raise GraphError(
                f"column '{self.name}': min/max apply to int64 and float64 columns only"
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise GraphError(f"column '{self.name}': min {self.min} is greater than max {self.max}")
        if self.categories is not None:
            if self.type not in ("string", "int64", "bool"):
                raise GraphError(
                    f"column '{self.name}': categories apply to string, int64 and bool columns"
                )
            object.__setattr__(self, "categories", tuple(self.categories))

    def to_json(self) -> dict[str, Any]:
        """The column as written in input_info.json."""
        return {
            "name": self.name,
            "type": self.type,
            "nullable": self.nullable,
            "min": self.min,
            "max": self.max,
            "categories": list(self.categories) if self.categories is not None else None,
            "description": self.description,
        }


@dataclass(frozen=True)
class Table:
    """A declared input table: a name and its columns.

    Columns may be given as ``Column`` objects or as ``{name: type}``.
    """

    name: str
    columns: Sequence[Column] = field(default_factory=tuple)
    description: str = ""

    def __init__(
        self,
        name: str,
        columns: Iterable[Column] | Mapping[str, str],
        description: str = "",
    ) -> None:
        check_identifier(name, "table")
        cols = (
            tuple(Column(n, t) for n, t in columns.items())
            if isinstance(columns, Mapping)
            else tuple(columns)
        )
        seen: set[str] = set()
        for column in cols:
            if not isinstance(column, Column):
                raise GraphError(f"table '{name}': columns must be shipyard.Column objects")
            if column.name in seen:
                raise GraphError(f"table '{name}': duplicate column '{column.name}'")
            seen.add(column.name)
        if not cols:
            raise GraphError(f"table '{name}' declares no columns")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "columns", cols)
        object.__setattr__(self, "description", description)

    def column(self, name: str) -> Column | None:
        """The column called ``name``, or None."""
        return next((c for c in self.columns if c.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """The table as written in input_info.json."""
        return {
            "name": self.name,
            "description": self.description,
            "columns": [c.to_json() for c in self.columns],
        }
