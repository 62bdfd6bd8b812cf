"""Raw ASGI plumbing both servers share: headers, a bounded body, a complete response.

The serving hot path skips Starlette's Request/Response objects (on a one-row request
their construction costs as much as the model), so everything here works on the ASGI
``scope``/``receive``/``send`` triple directly; a Starlette endpoint passes
``request.scope`` and ``request.receive``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import orjson

from ..errors import ClientGone, HttpError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_TYPE = (b"content-type", b"application/json")


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
    disconnect, HttpError 400 when Content-Length is not a number.
    """
    declared = header(scope, b"content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise HttpError(400, "BadRequest", "Content-Length is not a number") from None
        if size > limit:
            raise too_large("the request body", limit)
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise too_large("the request body", limit)
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def too_large(what: str, limit: int) -> HttpError:
    """The 413 for ``what`` (``"the request body"``, ``"the bundle"``) over ``limit`` bytes."""
    return HttpError(413, "TooLarge", f"{what} is over the limit of {limit:,} bytes")


def decode_json(body: bytes) -> Any:
    """The JSON document in ``body``; HttpError 400 (``MalformedJSON``) when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HttpError(
            400, "MalformedJSON", f"the request body is not valid JSON: {exc}"
        ) from None


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
