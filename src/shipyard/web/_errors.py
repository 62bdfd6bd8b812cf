"""The one map from Shipyard's error tree to HTTP statuses and JSON bodies, for every server.

    status  errors
    400     UsageError, RegistryError (unless listed below)
    403     PermissionDenied (a token or key that is missing or unknown is a 401 HttpError)
    404     NotFound
    409     Conflict, AuditBroken
    422     InvalidInput, SchemaError, ArtifactError, PipelineError, any other ShipyardError
    500     ModelError, AppError, and every exception that is not a ShipyardError
    502     StoreError (unless listed below), EndpointError (an llm node's endpoint failed)
    503     StoreReadOnly
    507     StoreFull
    any     HttpError and ClientGone carry their own ``status``

A client's mistake is a 4xx that names the error class (``kind``), its message and its
public attributes (``details``: table, column, row, key, problems, …). A 500 says only
which request id to look for in the server log, which holds the traceback. An error with a
``public_message`` (EndpointError: its own message names the endpoint's URL, which is the
server's business) is answered with that instead, and logged whole as a warning.

Each server answers in its own style:

    registry  {"error": kind, "message": ..., "details": {...}, "request_id": ...}
              (a 500 has no "details")
    predict   {"error": kind, "message": ..., **details, "request_id": ...}
    oip       {"error": message, "kind": kind, **details, "request_id": ...}

``oip`` follows the Open Inference Protocol, whose error is ``{"error": message}``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

import orjson
from starlette.responses import Response

from ..errors import (
    AppError,
    ArtifactError,
    AuditBroken,
    Conflict,
    EndpointError,
    HttpError,
    InvalidInput,
    ModelError,
    NotFound,
    PermissionDenied,
    PipelineError,
    RegistryError,
    SchemaError,
    ShipyardError,
    StoreError,
    StoreFull,
    StoreReadOnly,
    UsageError,
)
from ._asgi import JSON_TYPE, Headers

ErrorStyle = Literal["registry", "predict", "oip"]

REQUEST_ID_HEADER = b"x-request-id"

# Looked up along the error's class hierarchy: the nearest listed class decides.
STATUSES: Mapping[type[ShipyardError], int] = MappingProxyType(
    {
        ShipyardError: 422,  # raised on purpose about what the caller sent, unless listed
        ArtifactError: 422,
        SchemaError: 422,
        PipelineError: 422,
        UsageError: 400,
        ModelError: 500,
        AppError: 500,
        RegistryError: 400,
        NotFound: 404,
        Conflict: 409,
        InvalidInput: 422,
        PermissionDenied: 403,
        AuditBroken: 409,
        StoreError: 502,
        EndpointError: 502,  # Bad Gateway: the upstream language model failed, not the bundle
        StoreReadOnly: 503,
        StoreFull: 507,  # Insufficient Storage
    }
)

_PLAIN = (str, int, float, bool, type(None))
_RESERVED = frozenset({"error", "message", "kind", "details", "request_id", "public_message"})


def http_status(error: BaseException | type[BaseException]) -> int:
    """The HTTP status a server answers ``error`` (or any error of its class) with; 500 if unlisted.

    An HttpError instance answers its own ``status``; other errors take the status of the
    nearest class of the table above in their hierarchy.
    """
    if isinstance(error, HttpError):
        return error.status
    for cls in (error if isinstance(error, type) else type(error)).__mro__:
        status = STATUSES.get(cls)
        if status is not None:
            return status
    return 500


def http_error(error: BaseException, request_id: str, log: logging.Logger, where: str) -> HttpError:
    """``error`` as the HttpError a server answers with; a 500 is logged, traceback included.

    An HttpError is answered as it is. A ShipyardError keeps its class name, message (its
    ``public_message`` when it has one) and public attributes unless its status is 500; a
    500's message names only the request id (``where`` says in the log what failed: a
    route, a model).
    """
    if isinstance(error, HttpError):
        return error
    status = http_status(error)
    if status != 500:
        public = getattr(error, "public_message", None)
        if isinstance(public, str):
            log.warning("request %s (%s) failed: %s", request_id, where, error)
        message = public if isinstance(public, str) else str(error)
        answer = HttpError(status, type(error).__name__, message)
        answer.details = _details(error)
        return answer
    log.error("request %s (%s) failed", request_id, where, exc_info=error)
    if isinstance(error, ModelError):
        what, kind = "the model failed", "ModelError"
    else:
        what, kind = "internal error", "InternalError"
    return HttpError(500, kind, f"{what}; the server log has the details (request {request_id})")


def _details(error: BaseException) -> dict[str, Any]:
    """The error's public attributes that are plain JSON (``column``, ``event_id``, …)."""
    return {
        name: value
        for name, value in vars(error).items()
        if not name.startswith("_")
        and name not in _RESERVED
        and (
            isinstance(value, _PLAIN)
            or (isinstance(value, list) and all(isinstance(v, _PLAIN) for v in value))
        )
    }


def error_body(error: HttpError, request_id: str, style: ErrorStyle) -> bytes:
    """The JSON body answering ``error`` in ``style`` (see the module's docstring)."""
    document: dict[str, Any]
    if style == "registry":
        document = {"error": error.kind, "message": str(error)}
        if error.status != 500:
            document["details"] = error.details
    elif style == "oip":
        document = {"error": str(error), "kind": error.kind, **error.details}
    else:
        document = {"error": error.kind, "message": str(error), **error.details}
    document["request_id"] = request_id
    return orjson.dumps(document)


def error_headers(error: HttpError, request_id: str) -> Headers:
    """The headers of an error response: JSON, the request id, and a Bearer challenge on 401."""
    headers = [JSON_TYPE, (REQUEST_ID_HEADER, request_id.encode())]
    if error.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    return headers


def error_response(
    error: BaseException,
    request_id: str,
    style: ErrorStyle,
    log: logging.Logger,
    where: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> Response:
    """A Starlette response answering ``error`` (any exception) in ``style``; see ``http_error``.

    ``headers`` are added to the error's own (for example the version that answered).
    """
    answer = http_error(error, request_id, log, where)
    response = Response(error_body(answer, request_id, style), answer.status)
    response.raw_headers += [*error_headers(answer, request_id), *headers]
    return response
