"""The OpenAPI document of a route table, built from each model's input schema, and /docs.

Each model gets its predict route with a request schema made from input_info.json (the
dict format, plus MLflow's four payloads for single-table pipelines) and its bundle's
example input; the Open Inference Protocol routes are described once.
"""

from __future__ import annotations

from typing import Any

from .._version import __version__
from ._routes import RouteTable
from ._runner import ModelRunner

_JSON_TYPES: dict[str, dict[str, Any]] = {
    "float64": {"type": "number"},
    "int64": {"type": "integer"},
    "bool": {"type": "boolean"},
    "string": {"type": "string"},
    "datetime": {"type": "string", "format": "date-time"},
    "list[float64]": {"type": "array", "items": {"type": "number"}},
}


def _value_schema(column: Any) -> dict[str, Any]:
    schema = dict(_JSON_TYPES[column.type])
    if column.min is not None:
        schema["minimum"] = column.min
    if column.max is not None:
        schema["maximum"] = column.max
    if column.categories is not None:
        schema["enum"] = list(column.categories)
    if column.nullable:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def _request_schema(runner: ModelRunner) -> dict[str, Any]:
    tables: dict[str, dict[str, Any]] = {}
    for name, spec in runner.tables.items():
        columns = {
            c.name: {"type": "array", "items": _value_schema(c)} for c in spec.columns.values()
        }
        needed = list(runner.plan.columns.get(name, ()))
        tables[name] = {"type": "object", "properties": columns, "required": needed}
    dict_format = {
        "title": "dict format",
        "type": "object",
        "properties": tables,
        "required": [t for t in runner.tables if runner.plan.columns.get(t)],
    }
    if runner.single_table is None:
        return dict_format
    table = tables[runner.single_table]
    row = {"type": "object", "properties": {k: v["items"] for k, v in table["properties"].items()}}
    forms = [
        dict_format,
        {"title": "one table, no table level", **table},
        {
            "title": "MLflow dataframe_split",
            "type": "object",
            "properties": {
                "dataframe_split": {
                    "type": "object",
                    "properties": {
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "data": {"type": "array", "items": {"type": "array"}},
                    },
                    "required": ["columns", "data"],
                }
            },
            "required": ["dataframe_split"],
        },
        {
            "title": "MLflow dataframe_records",
            "type": "object",
            "properties": {"dataframe_records": {"type": "array", "items": row}},
            "required": ["dataframe_records"],
        },
        {
            "title": "MLflow instances",
            "type": "object",
            "properties": {"instances": {"oneOf": [{"type": "array", "items": row}, table]}},
            "required": ["instances"],
        },
        {
            "title": "MLflow inputs",
            "type": "object",
            "properties": {"inputs": {"oneOf": [table, {"type": "array", "items": row}]}},
            "required": ["inputs"],
        },
    ]
    return {"oneOf": forms}


_MODEL = {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}


def _error() -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"type": "object"}}}}


def openapi(table: RouteTable) -> dict[str, Any]:
    """The OpenAPI 3.1 document of everything ``table`` serves."""
    paths: dict[str, Any] = {}
    prefix = f"/api/v1/projects/{table.project}/environments/{table.environment}"
    for name, route in sorted(table.models.items()):
        runner = route.primary
        outputs = {
            o.name: {
                "type": "object",
                "properties": {"type": {"type": "string"}, "values": {"type": "array"}},
            }
            for o in runner.outputs
        }
        body: dict[str, Any] = {"schema": _request_schema(runner)}
        if runner.example_input is not None:
            body["example"] = runner.example_input
        path = f"{prefix}/models/{name}/predict"
        paths[path] = {
            "post": {
                "summary": f"{name} {runner.version}: {runner.executor.metadata['description']}",
                "operationId": f"predict_{name}",
                "parameters": [
                    {
                        "name": "outputs",
                        "in": "query",
                        "required": False,
                        "description": "Comma-separated nodes to return (default: the outputs).",
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": {"required": True, "content": {"application/json": body}},
                "responses": {
                    "200": {
                        "description": "The outputs in the typed dict format, or "
                        '{"predictions": [records]} for an MLflow payload.',
                        "content": {
                            "application/json": {
                                "schema": {"type": "object", "properties": outputs}
                            }
                        },
                    },
                    "400": {"description": "Malformed JSON", **_error()},
                    "401": {"description": "Missing or invalid API key", **_error()},
                    "404": {"description": "Unknown model", **_error()},
                    "413": {"description": "Body over the limit", **_error()},
                    "422": {
                        "description": "Input breaks the schema (table, column, row)",
                        **_error(),
                    },
                    "500": {"description": "The model failed (see the request id)", **_error()},
                },
                "security": [{"bearer": []}, {"apiKey": []}],
            }
        }
    paths["/v2/models/{model}/infer"] = {
        "post": {
            "summary": "Open Inference Protocol v2 inference (JSON or binary tensor data)",
            "operationId": "infer",
            "parameters": [_MODEL],
            "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {"200": {"description": "Outputs", **_error()}},
            "security": [{"bearer": []}, {"apiKey": []}],
        }
    }
    for path, summary in (
        ("/v2", "server metadata"),
        ("/v2/health/live", "liveness"),
        ("/v2/health/ready", "readiness"),
        ("/v2/models/{model}", "model metadata: inputs and outputs"),
        ("/v2/models/{model}/ready", "model readiness"),
        ("/health", "liveness, revision and versions served"),
        ("/metrics", "Prometheus metrics"),
    ):
        get: dict[str, Any] = {"summary": summary, "responses": {"200": {"description": "OK"}}}
        if "{model}" in path:
            get["parameters"] = [_MODEL]
        paths[path] = {"get": get}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"Shipyard: {table.project}/{table.environment}",
            "version": __version__,
            "description": "Models served by Shipyard. Send an API key as "
            "'Authorization: Bearer KEY' or 'X-API-Key: KEY' when the environment has keys.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
        },
    }


DOCS_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shipyard API</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head><body><div id="docs"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#docs"});</script>
</body></html>
"""
