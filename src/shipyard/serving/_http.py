"""Raw ASGI plumbing for the serving hot path: read a bounded body, send a response.

The predict and infer routes skip Starlette's Request/Response objects: on a one-row
request their construction costs as much as the model. Everything here works on the
ASGI ``scope``/``receive``/``send`` triple directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_TYPE = (b"content-type", b"application/json")


class HttpError(Exception):
    """Answer the request with ``status`` and a JSON error body instead of a result.

    ``kind`` names the error (``MalformedJSON``, ``TooLarge``, a SchemaError subclass …);
    ``details`` are extra JSON fields of the body (``table``, ``column``, ``row``).
    """

    def __init__(self, status: int, kind: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.details = details


class ClientGone(Exception):
    """The client disconnected before its request body was complete."""


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of request header ``name`` (lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body; HttpError 413 as soon as it is known to exceed ``limit`` bytes.

    Content-Length is checked before anything is read, and the bytes actually streamed
    are counted too (a chunked body has no Content-Length). Raises ClientGone on a
    disconnect.
    """
    declared = header(scope, b"content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise HttpError(400, "BadRequest", "Content-Length is not a number") from None
        if size > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> HttpError:
    return HttpError(413, "TooLarge", f"the request body is over the limit of {limit:,} bytes")


async def send_response(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]]
) -> None:
    """Send a complete response: ``headers`` plus Content-Length."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def error_body(error: HttpError, request_id: str, oip: bool) -> bytes:
    """The JSON body of an error, in the style of the route that failed.

    Open Inference Protocol routes answer ``{"error": message}`` as the protocol says;
    Shipyard's own routes answer ``{"error": kind, "message": ...}`` like the registry API.
    Both carry the request id and the details (table, column, row).
    """
    if oip:
        document = {"error": str(error), "kind": error.kind}
    else:
        document = {"error": error.kind, "message": str(error)}
    document.update(error.details)
    document["request_id"] = request_id
    return orjson.dumps(document)


def decode_json(body: bytes) -> Any:
    """The JSON document in ``body``; HttpError 400 when it is not valid JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HttpError(
            400, "MalformedJSON", f"the request body is not valid JSON: {exc}"
        ) from None
