"""The forms a predict or /invocations body may take, as JSON Schema and as examples.

What ``_payloads.decode_predict`` accepts: the dict format (each table as plain or typed
columns, or as records); for a pipeline with one input table also that table alone, with
no table level (columns, or a list of records); and MLflow's four payloads, which are all
that ``/invocations`` takes (``decode_invocations``). Each request schema is a ``oneOf``
of its forms (a body is read as exactly one of them), and each form has a named example
made from the bundle's example input; the OpenAPI document is built from them."""

from __future__ import annotations

import re
from typing import Any

from ._payloads import MLFLOW_KEYS
from ._runner import ModelRunner

_JSON_TYPES: dict[str, dict[str, Any]] = {
    "float64": {"type": "number"},
    "int64": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
    "bool": {"type": "boolean"},
    "string": {"type": "string"},
    "datetime": {"type": "string", "format": "date-time"},
    "list[float64]": {"type": "array", "items": {"type": "number"}},
}


def component_key(name: str) -> str:
    """``name`` as a component name (letters, digits, '.', '-', '_')."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def value_schema(column: Any) -> dict[str, Any]:
    """One value of ``column``: its JSON type, range, categories, and null when nullable."""
    schema = dict(_JSON_TYPES[column.type])
    if column.min is not None:
        schema["minimum"] = max(column.min, schema.get("minimum", column.min))
    if column.max is not None:
        schema["maximum"] = min(column.max, schema.get("maximum", column.max))
    if column.categories is not None:
        schema["enum"] = list(column.categories)
    if column.nullable:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def _column_schema(column: Any) -> dict[str, Any]:
    """A column: its values as a list, or the typed form ``{"type", "values"}``."""
    values = {"type": "array", "items": value_schema(column)}
    typed = {
        "type": "object",
        "properties": {"type": {"const": column.type}, "values": values},
        "required": ["values"],
    }
    return {"anyOf": [values, typed]}


def _mlflow(key: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": f"MLflow {key}",
        "type": "object",
        "properties": {key: payload, "params": {"type": "object"}},
        "required": [key],
        "additionalProperties": False,
    }


def _table_refs(
    model: str, runner: ModelRunner, schemas: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """References to each table's columns and records schemas, which go into ``schemas``."""
    tables: dict[str, dict[str, Any]] = {}
    records: dict[str, dict[str, Any]] = {}
    for name, spec in runner.tables.items():
        needed = list(runner.plan.columns.get(name, ()))
        key = component_key(f"{model}.{name}")
        columns = {c.name: _column_schema(c) for c in spec.columns.values()}
        schemas[f"{key}.columns"] = {
            "type": "object",
            "description": f"Table '{name}' as columns; extra columns are ignored.",
            "properties": columns,
            "required": needed,
        }
        record = {c.name: value_schema(c) for c in spec.columns.values()}
        schemas[f"{key}.records"] = {
            "type": "array",
            "description": f"Table '{name}' as records, one object a row.",
            "items": {"type": "object", "properties": record, "required": needed},
        }
        tables[name] = {"$ref": f"#/components/schemas/{key}.columns"}
        records[name] = {"$ref": f"#/components/schemas/{key}.records"}
    return tables, records


def _mlflow_forms(table: dict[str, Any], rows: dict[str, Any]) -> list[dict[str, Any]]:
    """MLflow's four payloads of one table (its columns schema ``table``, records ``rows``)."""
    positional = {
        "type": "array",
        "description": "Rows of values in the declared column order",
        "items": {"type": "array"},
    }
    split = {
        "type": "object",
        "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "data": positional,
        },
        "required": ["columns", "data"],
    }
    return [
        _mlflow("dataframe_split", split),
        _mlflow("dataframe_records", rows),
        _mlflow("instances", {"anyOf": [rows, positional, table]}),
        _mlflow("inputs", {"anyOf": [table, rows, positional]}),
    ]


def predict_schema(model: str, runner: ModelRunner, schemas: dict[str, Any]) -> dict[str, Any]:
    """The predict body of ``runner`` (a ``oneOf`` of its forms); each table's columns and
    records schemas go into ``schemas`` once."""
    tables, records = _table_refs(model, runner, schemas)
    dict_format = {
        "title": "dict format",
        "description": "{table: {column: [values]}}, {table: {column: {type, values}}} or "
        "{table: [{column: value}]}; every column of a table holds as many values (no "
        "values: zero rows, answered with no values).",
        "type": "object",
        "properties": {name: {"anyOf": [tables[name], records[name]]} for name in tables},
        "required": [t for t in runner.tables if runner.plan.columns.get(t)],
        "additionalProperties": False,
    }
    only = runner.single_table
    if only is None:
        return {"oneOf": [dict_format]}
    table, rows = tables[only], records[only]
    bare_columns = {
        "title": "one table as columns, no table level",
        "allOf": [table],
        "not": {"required": [only]},  # a key named after the table makes it the dict format
    }
    return {
        "oneOf": [
            dict_format,
            bare_columns,
            {"title": "one table as records, no table level", **rows},
            *_mlflow_forms(table, rows),
        ]
    }


def invocations_schema(
    model: str | None, runner: ModelRunner | None, schemas: dict[str, Any]
) -> dict[str, Any]:
    """The ``/invocations`` body: a ``oneOf`` of MLflow's four payloads, each of the one
    model's table (``model`` served by ``runner``); of any content when there is no such
    model or its pipeline has several tables (no MLflow payload fits it then)."""
    only = runner.single_table if runner is not None else None
    if model is None or runner is None or only is None:
        return {"oneOf": [_mlflow(key, {}) for key in MLFLOW_KEYS]}
    tables, records = _table_refs(model, runner, schemas)
    return {"oneOf": _mlflow_forms(tables[only], records[only])}


def predict_examples(runner: ModelRunner) -> dict[str, Any]:
    """One named example (OpenAPI Example objects) of each form, from the bundle's example
    input; {} when the bundle has none."""
    example = runner.example_input
    if not isinstance(example, dict):
        return {}
    columns = _example_columns(example)
    records = {table: _records(given) for table, given in columns.items()}
    found: dict[str, tuple[str, Any]] = {
        "dict": ("The dict format, typed columns", example),
        "dict_columns": ("The dict format, plain columns", columns),
        "dict_records": ("The dict format, records", records),
    }
    only = runner.single_table
    if only is not None and only in columns:
        found |= {
            "columns": ("The table alone as columns", columns[only]),
            "records": ("The table alone as records", records[only]),
            **_mlflow_examples(columns[only]),
        }
    return _named(found)


def invocations_examples(runner: ModelRunner) -> dict[str, Any]:
    """A named example of each of MLflow's payloads for ``runner``'s one table, from its
    bundle's example input; {} when it has none or several tables."""
    example, only = runner.example_input, runner.single_table
    if not isinstance(example, dict) or only is None or only not in example:
        return {}
    return _named(_mlflow_examples(_example_columns(example)[only]))


def _example_columns(example: dict[str, Any]) -> dict[str, dict[str, list[Any]]]:
    return {
        table: {name: column["values"] for name, column in given.items()}
        for table, given in example.items()
    }


def _mlflow_examples(columns: dict[str, list[Any]]) -> dict[str, tuple[str, Any]]:
    """MLflow's four payloads of one table given as ``columns``, with their summaries."""
    records = _records(columns)
    rows = [list(row.values()) for row in records]
    return {
        "dataframe_split": (
            "MLflow dataframe_split",
            {"dataframe_split": {"columns": list(columns), "data": rows}},
        ),
        "dataframe_records": ("MLflow dataframe_records", {"dataframe_records": records}),
        "instances": ("MLflow instances, as records", {"instances": records}),
        "inputs": ("MLflow inputs, as columns", {"inputs": columns}),
    }


def _named(found: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    return {name: {"summary": summary, "value": value} for name, (summary, value) in found.items()}


def _records(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
