"""Deadlines uvicorn does not keep: a request's head and its body must arrive in time.

uvicorn closes a keep-alive connection left idle after a response (``timeout_keep_alive``)
but never one that is slow to send a request: a client sending a header line every few
seconds, or a body a byte at a time, holds its connection (and a file descriptor, and
with httptools an ever-growing header list) for as long as it likes. ``GuardedProtocol``
is uvicorn's httptools protocol with three limits, ``ReadLimits``:

- the head (request line and headers) must arrive within ``header_seconds`` of the
  connection opening or of the request's first byte; else 408 (or, on a connection that
  sent nothing, a plain close);
- the body must arrive within ``body_seconds`` of the head; else 408 when nothing was
  answered yet, a close otherwise (the app answered without reading it all);
- the head may hold at most ``max_header_bytes`` of URL and headers; else 431.

Each answer is a JSON error (``{"error", "message"}``) with ``Connection: close``. The
limits travel in ``GuardedConfig``, so worker processes get them with the rest of the
config.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PROTOCOL = "shipyard.serving._protocol:GuardedProtocol"  # what GuardedConfig's http names
_REASONS = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}


@dataclass(frozen=True)
class ReadLimits:
    """How long a request's head and body may take to arrive, and how big its head may be."""

    header_seconds: float = 10.0
    body_seconds: float = 15.0
    max_header_bytes: int = 64 * 1024


class GuardedConfig(uvicorn.Config):
    """uvicorn's Config serving over ``GuardedProtocol`` with ``limits``, without WebSocket."""

    def __init__(self, app: Any, *, limits: ReadLimits | None = None, **options: Any) -> None:
        # No WebSocket: nothing here speaks it, and an upgraded connection would escape the
        # deadlines (an Upgrade header is then served as plain HTTP).
        super().__init__(app, http=PROTOCOL, ws="none", **options)
        self.read_limits = limits or ReadLimits()


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head over the limit."""


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol holding each request to the config's ``ReadLimits``.

    States: reading a head (deadline ``header_seconds``), reading a body (deadline
    ``body_seconds``), or waiting on the app and between requests (no deadline of its
    own: uvicorn's keep-alive timeout closes an idle connection).
    """

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._limits: ReadLimits = getattr(config, "read_limits", None) or ReadLimits()
        self._deadline: asyncio.TimerHandle | None = None
        self._reading: str | None = None  # "head", "body", or None
        self._head_bytes = 0
        self._head_started = False
        self._head_too_large = False

    # -- the deadlines --------------------------------------------------------------

    def _arm(self, reading: str | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._reading = reading
        if reading is not None:
            seconds = (
                self._limits.header_seconds if reading == "head" else self._limits.body_seconds
            )
            self._deadline = self.loop.call_later(seconds, self._expired)

    def _expired(self) -> None:
        self._deadline = None
        reading, self._reading = self._reading, None
        if self.transport.is_closing():
            return
        cycle = self.cycle  # reading a head: the previous request's; a body: this one's
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            cycle.keep_alive = False  # an answer is on its way: close after it
        elif reading == "body" and self.pipeline:
            self.transport.close()  # queued behind another request: no answer to give
        elif reading == "body" and cycle is not None and not cycle.response_started:
            # The app waits for the body: it gets a disconnect, the client gets the 408.
            cycle.disconnected = True
            cycle.message_event.set()
            seconds = self._limits.body_seconds
            self._answer(408, f"the request body did not arrive within {seconds:g} s")
        elif (
            reading == "head" and self._head_started and (cycle is None or cycle.response_complete)
        ):
            seconds = self._limits.header_seconds
            self._answer(408, f"the request head did not arrive within {seconds:g} s")
        else:
            self.transport.close()  # nothing sent, or answered already: nothing to add

    def _answer(self, status: int, message: str) -> None:
        """Write a JSON error with ``Connection: close`` and close (outside any response)."""
        kind = {400: "BadRequest", 408: "RequestTimeout", 431: "HeadersTooLarge"}[status]
        body = orjson.dumps({"error": kind, "message": message})
        head = [
            f"HTTP/1.1 {status} {_REASONS[status]}".encode(),
            b"content-type: application/json",
            b"content-length: " + str(len(body)).encode(),
            b"connection: close",
        ]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.transport.close()

    # -- uvicorn's callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._arm(None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading is None and (self.cycle is None or self.cycle.response_complete):
            self._arm("head")  # the first byte of a new request (even a stray blank line)
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._head_started = True
        if self._reading != "head":
            self._arm("head")

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self._limits.max_header_bytes:
            self._head_too_large = True
            raise _HeadTooLarge()  # the parser stops; uvicorn answers with send_400_response

    def on_headers_complete(self) -> None:
        self._head_started = False
        self._arm("body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._arm(None)
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        self._arm(None)
        if self._head_too_large:
            limit = self._limits.max_header_bytes
            self._answer(431, f"the request's URL and headers are over {limit:,} bytes")
        else:
            self._answer(400, f"not a valid HTTP/1.1 request ({msg.rstrip('.')})")
