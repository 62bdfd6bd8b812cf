"""HTTP plumbing shared by Shipyard's servers (the registry API and serving).

    from shipyard.web import error_response, presented_credential
    error_response(exc, request_id, "registry", logger, "GET /api/v1/projects")

``http_status`` and ``http_error`` are the one map from the error tree (``shipyard.errors``)
to HTTP statuses; ``error_body`` writes the JSON body in each server's style;
``presented_credential`` reads a bearer token or API key; the rest is raw ASGI plumbing for
a hot path that builds no Request or Response objects.
"""

from ._asgi import (
    JSON_TYPE,
    Headers,
    Message,
    Receive,
    Scope,
    Send,
    decode_json,
    header,
    read_body,
    send_response,
    too_large,
)
from ._credentials import presented_credential
from ._errors import (
    REQUEST_ID_HEADER,
    STATUSES,
    ErrorStyle,
    error_body,
    error_headers,
    error_response,
    http_error,
    http_status,
)
from ._logging import QueryRedactor, redact_access_log
from ._swagger import asset as swagger_asset
from ._swagger import docs_page

__all__ = [
    "JSON_TYPE",
    "REQUEST_ID_HEADER",
    "STATUSES",
    "ErrorStyle",
    "Headers",
    "Message",
    "QueryRedactor",
    "Receive",
    "Scope",
    "Send",
    "decode_json",
    "docs_page",
    "error_body",
    "error_headers",
    "error_response",
    "header",
    "http_error",
    "http_status",
    "presented_credential",
    "read_body",
    "redact_access_log",
    "send_response",
    "swagger_asset",
    "too_large",
]
