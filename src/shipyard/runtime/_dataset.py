"""The dict dataset format: parse, validate and encode columns.

Copied into every bundle; needs only numpy. A dataset is ``{table: {column: {"type": T,
"values": [...]}}}``; a table may also be given as plain column lists or as records.
Inside the executor a column is one numpy array:

=============  ==========================================================
type           array
=============  ==========================================================
float64        float64, NaN for null
int64          int64; float64 with NaN when a nullable column holds a null
bool           bool; object (True/False/None) when it holds a null
string         object (str or None)
datetime       datetime64[us], NaT for null (ISO 8601 in and out; UTC)
list[float64]  2-D float64, one row per record (no nulls)
=============  ==========================================================
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from ._errors import MissingColumn, NullValue, OutOfRange, SchemaError, UnknownTable, WrongType

TYPES = ("bool", "int64", "float64", "string", "datetime", "list[float64]")
NUMERIC = ("bool", "int64", "float64", "list[float64]")


@dataclass(frozen=True)
class ColumnSpec:
    """One declared input column (from input_info.json)."""

    name: str
    type: str
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[Any, ...] | None = None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ColumnSpec:
        cats = doc.get("categories")
        return cls(
            name=doc["name"],
            type=doc["type"],
            nullable=bool(doc.get("nullable", False)),
            min=doc.get("min"),
            max=doc.get("max"),
            categories=tuple(cats) if cats is not None else None,
        )


@dataclass(frozen=True)
class TableSpec:
    """One declared input table.

    ``float_bounds`` gives, per float64 column, ``(min, max, nullable)`` with infinite
    bounds where none is declared: the fast validation path reads it on every request.
    """

    name: str
    columns: Mapping[str, ColumnSpec]
    float_bounds: Mapping[str, tuple[float, float, bool]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.float_bounds:
            bounds = {
                c.name: (
                    -np.inf if c.min is None else float(c.min),
                    np.inf if c.max is None else float(c.max),
                    c.nullable,
                )
                for c in self.columns.values()
                if c.type == "float64"
            }
            object.__setattr__(self, "float_bounds", bounds)


def table_specs(input_info: Mapping[str, Any]) -> dict[str, TableSpec]:
    """The declared tables of an input_info.json document, by name."""
    return {
        table["name"]: TableSpec(
            table["name"], {c["name"]: ColumnSpec.from_json(c) for c in table["columns"]}
        )
        for table in input_info["tables"]
    }


def columns_of(table: str, value: Any) -> dict[str, tuple[str | None, Any]]:
    """A table in any accepted form, as ``{column: (declared type or None, values)}``.

    Accepts the typed form, plain column lists (or numpy arrays) and records.
    Raises SchemaError when the table is none of these.
    """
    if isinstance(value, Mapping):
        out: dict[str, tuple[str | None, Any]] = {}
        for name, column in value.items():
            kind = type(column)
            if kind is list or kind is np.ndarray:  # the common cases, without ABC checks
                out[str(name)] = (None, column)
            elif isinstance(column, Mapping):
                if "values" not in column:
                    raise SchemaError("a typed column needs a 'values' list", table, str(name))
                out[str(name)] = (column.get("type"), column["values"])
            else:
                out[str(name)] = (None, column)
        return out
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        names: dict[str, None] = {}
        for i, record in enumerate(value):
            if not isinstance(record, Mapping):
                raise SchemaError("records must be objects ({column: value})", table, None, i)
            names.update(dict.fromkeys(record))
        return {str(name): (None, [record.get(name) for record in value]) for name in names}
    raise SchemaError(
        "a table must be {column: {type, values}}, {column: [values]} or [{column: value}]", table
    )


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _object_scan(
    table: str, spec: ColumnSpec, values: Sequence[Any], ok: tuple[type, ...]
) -> list[int]:
    """Check each value's Python type; return the rows holding nulls."""
    nulls = []
    for row, value in enumerate(values):
        if value is None or (type(value) is float and math.isnan(value)):
            nulls.append(row)
        elif not isinstance(value, ok) or (bool not in ok and type(value) is bool):
            raise WrongType(
                f"expected {spec.type}, got {type(value).__name__} {value!r}", table, spec.name, row
            )
    return nulls


_NUMBERS = (int, float, np.integer, np.floating)
_INT64_END = 2.0**63


def _number_array(table: str, spec: ColumnSpec, items: Sequence[Any]) -> np.ndarray:
    """A list of numbers and nulls as int64, or float64 with NaN for null; bad rows raise."""
    if len(items) == 0:
        return np.zeros(0, dtype=np.float64)
    # Anything but plain ints and floats (nulls, strings, bools, numpy scalars) is checked singly.
    if not set(map(type, items)) <= {int, float} and _object_scan(table, spec, items, _NUMBERS):
        items = [np.nan if v is None else v for v in items]
    try:
        arr = np.asarray(items)
    except OverflowError:  # Python ints of mixed sign beyond 64 bits
        arr = np.asarray(items, dtype=object)
    if arr.dtype.kind in "iuf":
        return arr
    if spec.type == "float64":
        return arr.astype(np.float64)
    row = next((i for i, v in enumerate(items) if not -_INT64_END <= v < _INT64_END), 0)
    raise WrongType(f"{items[row]!r} does not fit in int64", table, spec.name, row)


def _parse_datetime(table: str, spec: ColumnSpec, row: int, value: Any) -> Any:
    if isinstance(value, _dt.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = _dt.datetime.fromisoformat(value)
        except ValueError:
            raise WrongType(
                f"expected an ISO 8601 datetime, got {value!r}", table, spec.name, row
            ) from None
    else:
        raise WrongType(
            f"expected an ISO 8601 datetime, got {type(value).__name__}", table, spec.name, row
        )
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(_dt.UTC).replace(tzinfo=None)
    return np.datetime64(parsed, "us")


def to_array(table: str, spec: ColumnSpec, values: Any) -> np.ndarray:
    """One column's values as the executor's numpy array, validated.

    Raises WrongType, NullValue or OutOfRange naming table, column and the first bad row.
    """
    kind = spec.type
    if isinstance(values, np.ndarray):
        arr = values
    elif isinstance(values, Sequence) and not isinstance(values, (str, bytes)):
        arr = None
    else:
        raise WrongType("column values must be a list", table, spec.name)
    nulls: list[int] | np.ndarray = []

    if kind in ("float64", "int64"):
        if arr is None or arr.dtype.kind == "O":
            arr = _number_array(table, spec, values if arr is None else arr.tolist())
        if arr.dtype.kind not in "iuf":  # a numpy array of strings, bools, dates…
            if len(arr):
                value = arr[0].item()
                raise WrongType(
                    f"expected {kind}, got {type(value).__name__} {value!r}", table, spec.name, 0
                )
            arr = np.zeros(0, dtype=np.float64)
        if arr.dtype.kind == "f":
            null_mask = np.isnan(arr)
            if kind == "int64":
                whole = np.where(null_mask, 0.0, arr)
                bad = ~null_mask & ((whole != np.floor(whole)) | ~(np.abs(whole) < _INT64_END))
                if bad.any():
                    row = _first(bad)
                    raise WrongType(
                        f"expected int64, got {arr[row].item()!r}", table, spec.name, row
                    )
                if not null_mask.any():
                    arr = arr.astype(np.int64)
            else:
                arr = arr.astype(np.float64, copy=False)
            if null_mask.any():
                nulls = np.flatnonzero(null_mask)
        elif kind == "int64" and arr.dtype.kind == "u" and len(arr) and arr.max() >= _INT64_END:
            row = _first(arr >= _INT64_END)
            raise WrongType(f"{arr[row].item()!r} does not fit in int64", table, spec.name, row)
        else:
            arr = arr.astype(np.int64 if kind == "int64" else np.float64, copy=False)
    elif kind == "bool":
        if arr is None or arr.dtype.kind == "O":
            items = values if arr is None else arr.tolist()
            if len(items) == 0:
                arr = np.zeros(0, dtype=bool)
            else:
                nulls = _object_scan(table, spec, items, (bool,))
                arr = np.array(items, dtype=object if nulls else bool)
        elif arr.dtype.kind != "b":
            raise WrongType(f"expected bool, got {arr.dtype} values", table, spec.name, 0)
    elif kind == "string":
        if arr is not None and arr.dtype.kind in "US":
            arr = arr.astype(object)
        else:
            items = values if arr is None else arr.tolist()
            nulls = _object_scan(table, spec, items, (str,))
            arr = np.empty(len(items), dtype=object)
            arr[:] = items
            for row in nulls:
                arr[row] = None
    elif kind == "datetime":
        if arr is not None and arr.dtype.kind == "M":
            arr = arr.astype("datetime64[us]")
            nulls = np.flatnonzero(np.isnat(arr))
        else:
            items = values if arr is None else arr.tolist()
            parsed = []
            null_rows = []
            for row, value in enumerate(items):
                if value is None:
                    null_rows.append(row)
                    parsed.append(np.datetime64("NaT", "us"))
                else:
                    parsed.append(_parse_datetime(table, spec, row, value))
            nulls = null_rows
            arr = np.array(parsed, dtype="datetime64[us]")
    elif kind == "list[float64]":
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise WrongType("expected equal-length lists of numbers", table, spec.name) from None
        if arr.ndim != 2:
            raise WrongType("expected one list of numbers per row", table, spec.name)
        if np.isnan(arr).any():
            raise NullValue(
                "null inside a list[float64] value",
                table,
                spec.name,
                _first(np.isnan(arr).any(axis=1)),
            )
    else:  # pragma: no cover - input_info.json is checked at build
        raise SchemaError(f"unknown column type '{kind}'", table, spec.name)

    if len(nulls) and not spec.nullable:
        raise NullValue("null in a column that is not nullable", table, spec.name, int(nulls[0]))
    _check_range(table, spec, arr)
    return arr


def _check_range(table: str, spec: ColumnSpec, arr: np.ndarray) -> None:
    if spec.min is not None or spec.max is not None:
        values = arr.astype(np.float64) if arr.dtype.kind in "iub" else arr
        if values.dtype.kind == "f":
            low = values < spec.min if spec.min is not None else np.zeros(len(values), bool)
            high = values > spec.max if spec.max is not None else np.zeros(len(values), bool)
            bad = low | high
            if bad.any():
                row = _first(bad)
                raise OutOfRange(
                    f"{arr[row].item()!r} is outside the allowed range [{spec.min}, {spec.max}]",
                    table,
                    spec.name,
                    row,
                )
    if spec.categories is not None:
        allowed = set(spec.categories)
        for row, value in enumerate(arr.tolist()):
            if (
                value is not None
                and value not in allowed
                and not (type(value) is float and math.isnan(value))
            ):
                shown = ", ".join(repr(c) for c in spec.categories[:10])
                raise OutOfRange(
                    f"{value!r} is not an allowed category ({shown})", table, spec.name, row
                )


def parse_dataset(
    data: Any, tables: Mapping[str, TableSpec], needed: Mapping[str, Sequence[str]]
) -> tuple[dict[str, dict[str, np.ndarray]], int]:
    """Parse and validate a dataset; return ``({table: {column: array}}, number of rows)``.

    ``needed`` names, per table, the columns the requested outputs read: those must be
    present; other declared columns are checked when present. A bare table (no table
    level) is accepted when the pipeline declares exactly one table.
    Raises a SchemaError subclass naming table, column and row.
    """
    if not isinstance(data, Mapping) and len(tables) == 1:
        data = {next(iter(tables)): data}
    if not isinstance(data, Mapping):
        raise SchemaError("the input must be an object of tables: {table: {column: ...}}")
    if len(tables) == 1 and data and not any(name in tables for name in data):
        # a single table given without its table level: {column: [...]} or {column: {type, values}}
        only = next(iter(tables))
        if set(map(str, data)) & set(tables[only].columns):
            data = {only: data}
    result: dict[str, dict[str, np.ndarray]] = {}
    rows: int | None = None
    first_table = ("", "")
    for name in data:
        if name not in tables:
            known = ", ".join(sorted(tables))
            raise UnknownTable(f"unknown table (the pipeline declares: {known})", str(name))
    for name, spec in tables.items():
        want = needed.get(name, ())
        if name not in data:
            if want:
                raise MissingColumn("table is missing from the input", name, want[0])
            continue
        given = columns_of(name, data[name])
        if not given and not isinstance(data[name], Mapping):
            # no records at all: zero rows of every column, not a table with none
            given = {column: (None, []) for column in spec.columns}
        for column in want:
            if column not in given:
                raise MissingColumn("column is missing from the input", name, column)
        arrays = _float_block(spec, given)
        for column, (declared, values) in given.items():
            cspec = spec.columns.get(column)
            if cspec is None:
                continue  # extra columns are allowed and ignored
            if declared is not None and declared != cspec.type:
                raise WrongType(
                    f"declared as {declared!r} but the pipeline expects {cspec.type}", name, column
                )
            if column not in arrays:
                arrays[column] = to_array(name, cspec, values)
            length = len(arrays[column])
            if rows is None:
                rows, first_table = length, (name, column)
            elif length != rows:
                raise SchemaError(
                    f"has {length} rows but '{first_table[0]}.{first_table[1]}' has {rows}",
                    name,
                    column,
                )
        result[name] = arrays
    return result, rows or 0


def _float_block(
    spec: TableSpec, given: Mapping[str, tuple[str | None, Any]]
) -> dict[str, np.ndarray]:
    """Validate a table's float64 list columns together: one array, one check for all.

    Per column, parsing costs a few numpy calls; for one-row requests over many columns
    those calls dominate the latency, so plain float/int lists are stacked into one 2-D
    array and checked at once. Anything unusual (nulls, bad values, other types, unequal
    lengths) is left to the per-column path, which finds and names the bad row.
    """
    bounds = spec.float_bounds
    names: list[str] = []
    columns: list[Any] = []
    limits: list[tuple[float, float, bool]] = []
    plain = {int, float}
    for column, (declared, values) in given.items():
        limit = bounds.get(column)
        if limit is None or (declared is not None and declared != "float64"):
            continue
        kind = type(values)
        if kind is list:
            fits = bool(values) and set(map(type, values)) <= plain
        elif kind is np.ndarray:  # from Arrow, pandas or a caller: floats, NaN = null
            fits = values.ndim == 1 and values.dtype.kind == "f"
        else:
            fits = False
        if fits:
            names.append(column)
            columns.append(values)
            limits.append(limit)
    if not names:
        return {}
    if len({len(c) for c in columns}) != 1:
        return {}  # unequal lengths: the per-column path names them
    try:
        block = np.array(columns, dtype=np.float64)
    except (ValueError, OverflowError):  # huge ints: per column
        return {}
    ok = np.ones(len(names), dtype=bool)
    if np.isnan(block).any():
        nullable = np.array([limit[2] for limit in limits])
        ok &= ~(cast(np.ndarray, np.isnan(block).any(axis=1)) & ~nullable)
    if any(low != -np.inf or high != np.inf for low, high, _ in limits):
        low = np.array([limit[0] for limit in limits])[:, None]
        high = np.array([limit[1] for limit in limits])[:, None]
        # NaN compares False on both sides, so nulls never count as out of range here.
        with np.errstate(invalid="ignore"):
            ok &= ~cast(np.ndarray, ((block < low) | (block > high)).any(axis=1))
    if ok.all():
        return dict(zip(names, block, strict=True))
    return {name: block[i] for i, name in enumerate(names) if ok[i]}


def encode(dtype: str, values: np.ndarray) -> dict[str, Any]:
    """One output column in the typed form ``{"type": ..., "values": [...]}`` (JSON-safe)."""
    out: list[Any]
    if dtype == "datetime":
        out = [None if np.isnat(v) else str(v.astype("datetime64[us]")) for v in values]
    elif dtype == "int64" and values.dtype.kind == "f":  # a nullable int64 column holding nulls
        out = [None if math.isnan(v) else int(v) for v in values.tolist()]
    else:
        out = values.tolist()
        if (
            dtype in ("float64", "list[float64]")
            and values.dtype.kind == "f"
            and np.isnan(values).any()
        ):
            out = _nan_to_none(out)
    return {"type": dtype, "values": out}


def _nan_to_none(items: list[Any]) -> list[Any]:
    return [
        _nan_to_none(v)
        if isinstance(v, list)
        else (None if isinstance(v, float) and math.isnan(v) else v)
        for v in items
    ]
