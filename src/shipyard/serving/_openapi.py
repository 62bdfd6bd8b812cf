"""The OpenAPI document of a route table, built from each model's input schema, and /docs.

Each model gets its predict route, with a request schema made from input_info.json (a
``oneOf`` of the forms a body may take, see ``_forms``) and an example of each form from
its bundle's example input, and its Open Inference Protocol infer routes, with a request
schema naming its input tensors. MLflow's ``/invocations`` is documented for the one
model it serves (its four payloads), or as the 400 it answers when there are several.
The document says what the server checks: field types, the fields it needs, the names it
knows (models, versions, nodes), and every status a route answers with the body it
carries.
"""

from __future__ import annotations

import re
from typing import Any

from .._version import __version__
from ._forms import (
    component_key,
    invocations_examples,
    invocations_schema,
    predict_examples,
    predict_schema,
    value_schema,
)
from ._payloads import DATATYPES
from ._routes import RouteTable
from ._runner import ModelRunner

_ANY_DATATYPE = sorted(set().union(*DATATYPES.values()))
_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]


def _names_pattern(names: list[str]) -> str:
    """A regex matching a comma-separated list of ``names`` (or nothing)."""
    one = "|".join(re.escape(n) for n in names)
    return f"^(({one})(,({one}))*)?$"


def _header_refs() -> dict[str, Any]:
    return {
        "X-Request-Id": {"$ref": "#/components/headers/RequestId"},
        "X-Shipyard-Version": {"$ref": "#/components/headers/Version"},
    }


def _error(description: str, style: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": _header_refs(),
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{style}"}}},
    }


def _ok(description: str, schema: dict[str, Any], media: str = "application/json") -> Any:
    return {
        "description": description,
        "headers": _header_refs(),
        "content": {media: {"schema": schema}},
    }


def _model_errors(style: str) -> dict[str, Any]:
    """The statuses a predict or infer request may get besides 200."""
    return {
        "400": _error("A malformed request (JSON, a field of the wrong type, a shape)", style),
        "401": _error("Missing or invalid API key (when the environment has keys)", style),
        "404": _error("Unknown model, version, project or environment", style),
        "408": _error("The body did not arrive in time (--body-timeout)", style),
        "413": _error("Body over the limit", style),
        "422": _error("Input breaks the schema (table, column, row)", style),
        "500": _error("The model failed (the server log has the request id)", style),
        "502": _error("An llm node's endpoint failed (the body names the node)", style),
    }


def _outputs_parameter(runner: ModelRunner) -> dict[str, Any]:
    nodes = sorted(runner.executor.nodes)
    return {
        "name": "outputs",
        "in": "query",
        "required": False,
        "description": "Comma-separated nodes to return (default: the outputs, "
        f"{', '.join(runner.plan.outputs)}). Nodes: {', '.join(nodes)}.",
        "schema": {"type": "string", "pattern": _names_pattern(nodes)},
    }


def _predictions(runner: ModelRunner) -> dict[str, Any]:
    """MLflow's answer: one record a row, of the nodes asked for."""
    return {
        "title": "MLflow predictions",
        "type": "object",
        "properties": {
            "predictions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "propertyNames": {"enum": sorted(runner.executor.nodes)},
                },
            }
        },
        "required": ["predictions"],
    }


def _predict(name: str, runner: ModelRunner, schemas: dict[str, Any]) -> dict[str, Any]:
    nodes = sorted(runner.executor.nodes)
    typed = {
        n: {
            "type": "object",
            "properties": {
                "type": {"const": runner.executor.dtype(n)},
                "values": {"type": "array"},
            },
            "required": ["type", "values"],
        }
        for n in nodes
    }
    answer = {
        "anyOf": [
            {"title": "typed dict format", "type": "object", "properties": typed},
            _predictions(runner),
        ]
    }
    body: dict[str, Any] = {"schema": predict_schema(name, runner, schemas)}
    examples = predict_examples(runner)
    if examples:
        body["examples"] = examples
    return {
        "post": {
            "summary": f"{name} {runner.version}: {runner.executor.metadata['description']}",
            "operationId": f"predict_{name}",
            "parameters": [_outputs_parameter(runner)],
            "requestBody": {"required": True, "content": {"application/json": body}},
            "responses": {
                "200": _ok(
                    'The outputs in the typed dict format, or {"predictions": [records]} '
                    "for an MLflow payload.",
                    answer,
                ),
                **_model_errors("PredictError"),
            },
            "security": _SECURITY,
        }
    }


def _invocations(table: RouteTable, schemas: dict[str, Any]) -> dict[str, Any]:
    """MLflow's scoring route: the one model's MLflow payloads, or a 400 naming the models."""
    names = sorted(table.models)
    one = names[0] if len(names) == 1 else None
    runner = table.models[one].primary if one is not None else None
    body: dict[str, Any] = {"schema": invocations_schema(one, runner, schemas)}
    operation: dict[str, Any] = {"operationId": "invocations", "security": _SECURITY}
    if runner is not None:
        examples = invocations_examples(runner)
        if examples:
            body["examples"] = examples
        errors = _model_errors("PredictError")
        del errors["404"]  # the route names no model: it is the one served
        errors["400"] = _error(
            "Not one of MLflow's payloads (a JSON object with exactly one of "
            "dataframe_split, dataframe_records, instances, inputs, and optionally params), "
            "malformed JSON, or a field of the wrong type",
            "PredictError",
        )
        if runner.single_table is None:
            errors["422"] = _error(
                f"Always: {one}'s pipeline has several input tables, which no MLflow "
                "payload can carry (use its predict route and the dict format)",
                "PredictError",
            )
        operation |= {
            "summary": f"MLflow's scoring route: {one} {runner.version}",
            "description": "What MLflow's clients and scripts call. Takes exactly one of "
            "MLflow's payloads and answers MLflow's way, one record a row; the same "
            "model and checks as its predict route.",
            "parameters": [_outputs_parameter(runner)],
            "responses": {
                "200": _ok('{"predictions": [records]}, one record a row', _predictions(runner)),
                **errors,
            },
        }
    else:
        served = f"{len(names)} models ({', '.join(names)})" if names else "no model"
        operation |= {
            "summary": "MLflow's scoring route (for an environment with one model)",
            "description": f"This environment serves {served}, so the route cannot say "
            "which to call: every request (once its API key is checked) is a 400 naming the "
            "models; call one's predict route instead.",
            "responses": {
                "400": _error(f"AmbiguousModel: this environment serves {served}", "PredictError"),
                "401": _model_errors("PredictError")["401"],
            },
        }
    operation["requestBody"] = {"required": True, "content": {"application/json": body}}
    refused = _error("Only POST is served here", "PredictError")
    refused["headers"] = {
        **refused["headers"],
        "Allow": {
            "description": "The methods the path takes",
            "required": True,
            "schema": {"const": "POST"},
        },
    }
    return {
        "post": operation,
        "get": {
            "summary": "not served: MLflow's scoring route takes POST",
            "operationId": "invocations_get",
            "responses": {"405": refused},
        },
    }


def _input_tensor(name: str, column: Any) -> dict[str, Any]:
    values = value_schema(column)
    if column.type == "list[float64]":
        values = {"type": "number"}
    rank = 2 if column.type == "list[float64]" else None
    shape = {
        "type": "array",
        "items": {"type": "integer", "minimum": 0},
        "minItems": rank or 1,
        "maxItems": rank or 2,
        "description": "[rows, n]" if rank else "[rows] or [rows, 1]",
    }
    return {
        "type": "object",
        "properties": {
            "name": {"const": name},
            "datatype": {"enum": sorted(DATATYPES[column.type])},
            "shape": shape,
            "data": {
                "type": "array",
                "description": "As many values as the shape holds: flat (row-major) or "
                "nested as the shape says. Absent when parameters.binary_data_size is set.",
                "items": {"anyOf": [values, {"type": "array"}]},
            },
            "parameters": {
                "type": "object",
                "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
            },
        },
        "required": ["name", "datatype", "shape"],
    }


def _infer_request(runner: ModelRunner) -> dict[str, Any]:
    nodes = sorted(runner.executor.nodes)
    tensors = [_input_tensor(n, c) for n, (_, c) in runner.input_columns.items()]
    output = {
        "type": "object",
        "properties": {
            "name": {"enum": nodes},
            "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}},
        },
        "required": ["name"],
    }
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "parameters": {
                "type": "object",
                "properties": {"binary_data_output": {"type": "boolean"}},
            },
            "inputs": {
                "type": "array",
                "description": "One tensor per input column, each name once; other names "
                "are ignored.",
                "items": {"anyOf": tensors},
            },
            "outputs": {"type": "array", "items": output},
        },
        "required": ["inputs"],
    }


_INFER_RESPONSE = {
    "type": "object",
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string"},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "datatype": {"enum": _ANY_DATATYPE},
                    "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                    "data": {"type": "array"},
                    "parameters": {
                        "type": "object",
                        "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
                    },
                },
                "required": ["name", "datatype", "shape"],
            },
        },
    },
    "required": ["model_name", "model_version", "outputs"],
}


def _infer(name: str, versioned: bool) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": f"{name}: Open Inference Protocol v2 inference"
        + (" by one version" if versioned else ""),
        "description": "JSON tensor data, or the binary tensor extension: the JSON header "
        "first, its length in Inference-Header-Content-Length, then each tensor's bytes.",
        "operationId": f"infer_{name}" + ("_version" if versioned else ""),
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{component_key(name)}.infer"}
                }
            },
        },
        "responses": {
            "200": _ok("The outputs as tensors", _INFER_RESPONSE),
            **_model_errors("OipError"),
        },
        "security": _SECURITY,
    }
    return {"post": operation}


def _path_parameter(name: str, values: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": values} if values else {"type": "string"},
    }


def _info_paths(table: RouteTable) -> dict[str, Any]:
    models = sorted(table.models)
    versions = sorted({v for route in table.models.values() for v in route.versions})
    model, version = _path_parameter("model", models), _path_parameter("version", versions)
    tensor = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "datatype": {"enum": _ANY_DATATYPE},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": -1}},
        },
        "required": ["name", "datatype", "shape"],
    }
    metadata = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": tensor},
            "outputs": {"type": "array", "items": tensor},
        },
        "required": ["name", "versions", "platform", "inputs", "outputs"],
    }
    readiness = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "ready": {"type": "boolean"},
        },
        "required": ["name", "version", "ready"],
    }
    not_found = _error("Unknown model or version", "OipError")
    draining = "Draining: shutting down"

    def get(summary: str, responses: dict[str, Any], *params: dict[str, Any]) -> dict[str, Any]:
        operation: dict[str, Any] = {"summary": summary, "responses": responses}
        if params:
            operation["parameters"] = list(params)
        return {"get": operation}

    def obj(properties: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "properties": properties, "required": list(properties)}

    boolean, text = {"type": "boolean"}, {"type": "string"}
    ready = obj({"ready": boolean, "live": boolean})
    return {
        "/v2": get(
            "server metadata",
            {
                "200": _ok(
                    "OK",
                    obj({"name": text, "version": text, "extensions": {"type": "array"}}),
                )
            },
        ),
        "/v2/health/live": get("liveness", {"200": _ok("Live", obj({"live": boolean}))}),
        "/v2/health/ready": get(
            "readiness",
            {"200": _ok("Ready", ready), "503": _ok("Not ready (no model, or draining)", ready)},
        ),
        "/v2/models/{model}": get(
            "model metadata: inputs and outputs",
            {"200": _ok("OK", metadata), "404": not_found},
            model,
        ),
        "/v2/models/{model}/versions/{version}": get(
            "metadata of one version",
            {"200": _ok("OK", metadata), "404": not_found},
            model,
            version,
        ),
        "/v2/models/{model}/ready": get(
            "model readiness",
            {"200": _ok("Ready", readiness), "503": _ok(draining, readiness), "404": not_found},
            model,
        ),
        "/v2/models/{model}/versions/{version}/ready": get(
            "readiness of one version",
            {"200": _ok("Ready", readiness), "503": _ok(draining, readiness), "404": not_found},
            model,
            version,
        ),
        "/health": get(
            "liveness, revision and versions served",
            {
                "200": _ok(
                    "OK",
                    {
                        "type": "object",
                        "properties": {
                            "status": {"enum": ["ok", "draining"]},
                            "project": text,
                            "environment": text,
                            "revision": {"type": ["integer", "null"]},
                            "models": {
                                "type": "object",
                                "additionalProperties": {"type": "array", "items": text},
                            },
                            "apps": {
                                "type": "object",
                                "description": "each app served under /apps/NAME/ and its version",
                                "additionalProperties": text,
                            },
                            "not_loaded": {"type": "object"},
                        },
                        "required": ["status", "project", "environment", "revision", "models"],
                    },
                )
            },
        ),
        "/metrics": get(
            "Prometheus metrics", {"200": _ok("Metrics in the text format", text, "text/plain")}
        ),
        "/openapi.json": get("this document", {"200": _ok("OpenAPI 3.1", {"type": "object"})}),
        "/docs": get("Swagger UI", {"200": _ok("An HTML page", text, "text/html")}),
    }


def _error_schemas() -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "PredictError": {
            "type": "object",
            "description": "error: the kind (MissingColumn, WrongType, …); the details "
            "(table, column, row, …) sit beside it.",
            "properties": {"error": text, "message": text, "request_id": text},
            "required": ["error", "message", "request_id"],
        },
        "OipError": {
            "type": "object",
            "description": "The protocol's error: error holds the message, kind its name.",
            "properties": {"error": text, "kind": text, "request_id": text},
            "required": ["error", "kind", "request_id"],
        },
    }


def openapi(table: RouteTable, secured: bool = True) -> dict[str, Any]:
    """The OpenAPI 3.1 document of everything ``table`` serves.

    ``secured``: the model routes need an API key (the environment has keys); when False
    they are documented as open, with no 401.
    """
    paths: dict[str, Any] = {}
    schemas = _error_schemas()
    prefix = f"/api/v1/projects/{table.project}/environments/{table.environment}"
    for name, route in sorted(table.models.items()):
        runner = route.primary
        paths[f"{prefix}/models/{name}/predict"] = _predict(name, runner, schemas)
        schemas[f"{component_key(name)}.infer"] = _infer_request(runner)
        paths[f"/v2/models/{name}/infer"] = _infer(name, False)
        versioned = _infer(name, True)
        versioned["post"]["parameters"] = [_path_parameter("version", sorted(route.versions))]
        paths[f"/v2/models/{name}/versions/{{version}}/infer"] = versioned
    paths["/invocations"] = _invocations(table, schemas)
    paths.update(_info_paths(table))
    if not secured:
        for item in paths.values():
            operation = item.get("post")
            if operation is not None and "security" in operation:
                operation["security"] = []
                del operation["responses"]["401"]
    text = {"type": "string"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"Shipyard: {table.project}/{table.environment}",
            "version": __version__,
            "description": "Models served by Shipyard. Send an API key as "
            "'Authorization: Bearer KEY' or 'X-API-Key: KEY' when the environment has keys. "
            "A known path asked with another method answers 405 with Allow.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "headers": {
                "RequestId": {
                    "description": "The caller's X-Request-Id when sane, else the server's",
                    "required": True,
                    "schema": text,
                },
                "Version": {
                    "description": "The version that answered, or 'none'",
                    "required": True,
                    "schema": text,
                },
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
