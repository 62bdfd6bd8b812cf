"""The registry API's OpenAPI 3.1 document, generated from the operation table.

Parameter and response schemas come from the ``Registry`` methods' type hints; result
dataclasses become named schemas under ``components/schemas``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import Any

from ._operations import Operation, Param
from ._values import Rule

__all__ = ["API_PREFIX", "openapi"]

API_PREFIX = "/api/v1"
_ERROR_CODES = {
    "400": "Malformed request (JSON, parameters)",
    "401": "Missing, unknown or revoked token",
    "403": "The token's role does not allow this",
    "404": "Not found; the message lists what exists",
    "409": "Conflict with the registry's state",
    "413": "Request body too large",
    "422": "Invalid input; the message names the parameter and says why",
    "500": "Internal error; the body names the request id found in the server log",
    "502": "The artifact store (S3) failed, or a blob in it is missing or corrupt",
    "503": "The artifact store refuses writes (read-only, no permission)",
    "507": "The artifact store has no room for the bundle",
}


class _Schemas:
    """JSON Schemas of Python types, collecting dataclasses as named components."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, annotation: Any) -> dict[str, Any]:
        """The JSON Schema of ``annotation``."""
        origin = typing.get_origin(annotation) or annotation
        args = typing.get_args(annotation)
        if annotation is Any:
            return {}
        if annotation is type(None):
            return {"type": "null"}
        if origin in (typing.Union, types.UnionType):
            return {"anyOf": [self.of(a) for a in args]}
        if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
            return self._dataclass(annotation)
        simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
        if origin in simple:
            return {"type": simple[origin]}
        if origin is dict:
            values = self.of(args[1]) if len(args) == 2 else {}
            return {"type": "object", "additionalProperties": values}
        if origin is tuple:
            return {
                "type": "array",
                "prefixItems": [self.of(a) for a in args],
                "minItems": len(args),
                "maxItems": len(args),
            }
        if origin in (list, Sequence):
            return {"type": "array", "items": self.of(args[0]) if args else {}}
        return {}

    def _dataclass(self, cls: type) -> dict[str, Any]:
        name = cls.__name__
        if name not in self.components:
            self.components[name] = {}  # placeholder: a dataclass may refer to itself
            hints = typing.get_type_hints(cls)
            fields = [f.name for f in dataclasses.fields(cls)]
            self.components[name] = {
                "type": "object",
                "description": (cls.__doc__ or "").strip().splitlines()[0],
                "properties": {f: self.of(hints[f]) for f in fields},
                "required": fields,
            }
        return {"$ref": f"#/components/schemas/{name}"}


def _tag(path: str) -> str:
    """The group an operation is listed under: ``models`` for /projects/{project}/models/…"""
    parts = path.strip("/").split("/")
    return parts[2] if parts[0] == "projects" and len(parts) > 2 else parts[0]


def _constrained(schema: dict[str, Any], rule: Rule) -> dict[str, Any]:
    """``schema`` stating ``rule`` too: a pattern on its text, bounds on its numbers."""
    if "anyOf" in schema:
        return {**schema, "anyOf": [_constrained(s, rule) for s in schema["anyOf"]]}
    kind = schema.get("type")
    if kind == "string":
        return {**schema, **rule.text_keywords()}
    if kind in ("integer", "number"):
        return {**schema, **rule.number_keywords()}
    if kind == "array" and "items" in schema:
        return {**schema, "items": _constrained(schema["items"], rule)}
    return schema


def _parameter(param: Param, schemas: _Schemas) -> dict[str, Any]:
    """A path or query parameter: absent rather than null; a JSON object sent as JSON text."""
    schema = _constrained(schemas.of(param.annotation), param.rule)
    options = [s for s in schema.get("anyOf", [schema]) if s != {"type": "null"}]
    schema = options[0] if len(options) == 1 else {**schema, "anyOf": options}
    document: dict[str, Any] = {
        "name": param.name,
        "in": param.where,
        "required": param.where == "path" or param.required,
    }
    if schema.get("type") == "object":
        document["content"] = {"application/json": {"schema": schema}}
    else:
        document["schema"] = schema
        if schema.get("type") == "array":  # a,b,c
            document |= {"style": "form", "explode": False}
    return document


def _operation(op: Operation, schemas: _Schemas) -> dict[str, Any]:
    parameters = [_parameter(p, schemas) for p in op.params if p.where in ("path", "query")]
    document: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "description": f"{op.description}\n\nNeeds a token with role `{op.role}` or above.".strip(),
        "tags": [_tag(op.path)],
        "parameters": parameters,
    }
    body = [p for p in op.params if p.where == "body"]
    if op.upload is not None:
        document["requestBody"] = {
            "required": True,
            "description": "The bundle (NAME-VERSION.tar.gz) as the raw request body.",
            "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
        }
    elif body:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {p.name: _constrained(schemas.of(p.annotation), p.rule) for p in body},
            "additionalProperties": False,
        }
        required = [p.name for p in body if p.required]
        if required:
            schema["required"] = required
        document["requestBody"] = {
            "required": bool(required),
            "content": {"application/json": {"schema": schema}},
        }
    success: dict[str, Any] = {"description": "Success"}
    if op.download is not None:
        binary = {"type": "string", "format": "binary"}
        success["content"] = {"application/gzip": {"schema": binary}}
    elif op.status != 204:
        result = schemas.of(op.hints["return"])
        success["content"] = {"application/json": {"schema": result}}
    document["responses"] = {
        str(op.status): success,
        **{code: {"$ref": "#/components/responses/Error"} for code in _ERROR_CODES},
    }
    return document


def openapi(operations: Sequence[Operation], version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations`` served under ``/api/v1``."""
    schemas = _Schemas()
    paths: dict[str, Any] = {
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Liveness: the server answers (no token needed)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Alive",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document (no token needed)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document of the API",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/docs": {
            "get": {
                "operationId": "docs",
                "summary": "Swagger UI of this document, served by this server (no token needed)",
                "security": [],
                "responses": {"200": {"description": "The page", "content": {"text/html": {}}}},
            }
        },
        "/docs/assets/{file}": {
            "get": {
                "operationId": "docs_asset",
                "summary": "A file of the docs page: swagger-ui.css or swagger-ui-bundle.js",
                "security": [],
                "parameters": [
                    {
                        "name": "file",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "maxLength": 64},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The file",
                        "content": {"text/css": {}, "text/javascript": {}},
                    },
                    "404": {"description": "No such file"},
                },
            }
        },
    }
    for op in operations:
        paths.setdefault(API_PREFIX + op.path, {})[op.method.lower()] = _operation(op, schemas)
    schemas.components["Error"] = {
        "type": "object",
        "description": "Every failure: the error's class, one readable line, and the request id.",
        "properties": {
            "error": {"type": "string", "examples": ["NotFound"]},
            "message": {"type": "string"},
            "details": {"type": "object"},
            "request_id": {"type": "string"},
        },
        "required": ["error", "message", "request_id"],
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Shipyard registry API",
            "version": version,
            "description": (
                "Projects, model versions, environments, promotion, settings and the audit "
                "log. Send `Authorization: Bearer <token>`; roles are viewer < deployer < "
                "admin. The same operations as the `shipyard` command line."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "responses": {
                "Error": {
                    "description": "; ".join(f"{k}: {v}" for k, v in _ERROR_CODES.items()),
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
