"""AWS Lambda's HTTP events answered by the serving app, in-process: ``LambdaHandler``.

An API Gateway HTTP API and a Lambda function URL hand a function each HTTP request as an
event of payload format version 2.0, and read its answer from the object it returns:

    event     version "2.0", rawPath, rawQueryString (queryStringParameters: the same,
              parsed), cookies, headers (lower-case names; a repeated header's values
              joined by commas), requestContext {http {method, path, sourceIp}, stage,
              domainName, requestId}, body, isBase64Encoded
    response  statusCode, headers, cookies (each becomes a set-cookie), body,
              isBase64Encoded

``LambdaHandler`` turns each event into one ASGI HTTP request for the ``ServingApp`` that
``shipyard serve`` runs (so the routes, API keys, statuses and error bodies are serve's),
and what the app sends back into the response. A handler lives for one cold start: its
app is built once, its lifespan (the shadow and capture workers) is started once, and one
event loop of its own runs every request, one at a time. A named stage of an HTTP API
prefixes the path with ``/STAGE``; the handler removes it, as ``$default`` has none.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode

from ..errors import HttpError, ShipyardError, UsageError
from ..web import Headers, Message, Receive, Scope, Send, error_body, error_headers, http_error

logger = logging.getLogger("shipyard.serving")

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
PAYLOAD_VERSION = "2.0"
DEFAULT_STAGE = "$default"
# Media types whose bodies travel as text; every other body is base64 (isBase64Encoded).
_TEXT_TYPES = frozenset({"application/json", "application/javascript", "application/xml"})


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request read from a Lambda event, as ASGI gives it to an app."""

    method: str
    path: str
    raw_path: bytes
    query: bytes
    headers: Headers
    body: bytes
    client: tuple[str, int] | None
    server: tuple[str, int]
    request_id: str

    def scope(self) -> Scope:
        """The ASGI ``http`` scope of this request."""
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": self.method,
            "scheme": "https",  # API Gateway and function URLs are reached over HTTPS
            "path": self.path,
            "raw_path": self.raw_path,
            "query_string": self.query,
            "root_path": "",
            "headers": self.headers,
            "client": self.client,
            "server": self.server,
        }


def _not_http(event: Any) -> UsageError:
    if isinstance(event, dict) and "httpMethod" in event:
        shape = (
            "an event of payload format 1.0 (an API Gateway REST API, or an HTTP API "
            "integration set to 1.0)"
        )
    else:
        keys = ", ".join(sorted(map(str, event))[:8]) if isinstance(event, dict) else ""
        shape = f"an event with keys {keys}" if keys else f"a {type(event).__name__} event"
    return UsageError(
        f"this function answers HTTP requests of payload format {PAYLOAD_VERSION} (an API "
        f"Gateway HTTP API, or a function URL), and was given {shape}"
    )


def read_event(event: Any) -> HttpRequest:
    """The HTTP request an API Gateway HTTP API or function URL event carries.

    Raises UsageError for any other event (the function is wired to the wrong trigger),
    HttpError 400 for a body that is not the base64 its ``isBase64Encoded`` says.
    """
    context = event.get("requestContext") if isinstance(event, dict) else None
    http = context.get("http") if isinstance(context, dict) else None
    if (
        not isinstance(event, dict)
        or event.get("version") != PAYLOAD_VERSION
        or not isinstance(context, dict)
        or not isinstance(http, dict)
        or not http.get("method")
    ):
        raise _not_http(event)
    raw = str(event.get("rawPath") or http.get("path") or "/")
    stage = context.get("stage")
    if stage and stage != DEFAULT_STAGE:
        prefix = f"/{stage}"
        if raw == prefix or raw.startswith(prefix + "/"):
            raw = raw[len(prefix) :] or "/"
    query = event.get("rawQueryString")
    if query is None:
        query = urlencode(event.get("queryStringParameters") or {})
    headers = [
        (str(name).lower().encode("latin-1"), str(value).encode("utf-8"))
        for name, value in (event.get("headers") or {}).items()
    ]
    if event.get("cookies"):
        headers.append((b"cookie", "; ".join(map(str, event["cookies"])).encode("utf-8")))
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise HttpError(
                400, "BadRequest", "the request body is not the base64 its event says it is"
            ) from None
    else:
        data = str(body).encode("utf-8")
    source = http.get("sourceIp")
    return HttpRequest(
        method=str(http["method"]).upper(),
        path=unquote(raw),
        raw_path=raw.encode("utf-8"),
        query=str(query).removeprefix("?").encode("utf-8"),
        headers=headers,
        body=data,
        client=(str(source), 0) if source else None,
        server=(str(context.get("domainName") or "lambda"), 443),
        request_id=str(context.get("requestId") or ""),
    )


def _is_text(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in _TEXT_TYPES or media.endswith(("+json", "+xml"))


def lambda_response(status: int, headers: Headers, body: bytes) -> dict[str, Any]:
    """The response object (payload format 2.0) of an HTTP answer.

    Header names are lower case and a repeated header's values are joined by commas,
    except ``set-cookie``, whose values go to ``cookies``. A JSON or text body is given as
    text; any other (the Open Inference Protocol's binary tensors) as base64.
    """
    named: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "set-cookie":
            cookies.append(value)
        else:
            named[name] = f"{named[name]},{value}" if name in named else value
    text: str | None = None
    if _is_text(named.get("content-type", "text/plain")):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    response: dict[str, Any] = {
        "statusCode": status,
        "headers": named,
        "body": text if text is not None else base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": text is None,
    }
    if cookies:
        response["cookies"] = cookies
    return response


def _error_response(error: HttpError, request_id: str) -> dict[str, Any]:
    body = error_body(error, request_id, "predict")
    return lambda_response(error.status, error_headers(error, request_id), body)


async def exchange(app: ASGIApp, request: HttpRequest) -> tuple[int, Headers, bytes]:
    """Run ``request`` through ``app``: the status, headers and whole body it answered.

    An app that fails before answering is answered as serve's server would, with a 500
    (logged with its traceback); one that fails midway raises, as a dropped connection.
    """
    answered = asyncio.Event()
    given = False

    async def receive() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await answered.wait()  # the client is there until the answer is complete
        return {"type": "http.disconnect"}

    start: Message | None = None
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                answered.set()

    try:
        await app(request.scope(), receive, send)
    except Exception as exc:
        if start is not None:
            raise
        error = http_error(exc, request.request_id, logger, f"{request.method} {request.path}")
        return (
            error.status,
            error_headers(error, request.request_id),
            error_body(error, request.request_id, "predict"),
        )
    finally:
        answered.set()
    if start is None:
        raise ShipyardError(f"the app sent no answer to {request.method} {request.path}")
    return int(start["status"]), list(start.get("headers", [])), b"".join(chunks)


class _Lifespan:
    """An app's ASGI lifespan: started once, stopped (drained) at ``stop``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._inbox: asyncio.Queue[Message] | None = None
        self._outbox: asyncio.Queue[Message] | None = None
        self._task: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """ShipyardError when the app reports that it could not start (or ends instead)."""
        self._inbox, self._outbox = asyncio.Queue(), asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        self._task = asyncio.ensure_future(self.app(scope, self._inbox.get, self._outbox.put))
        await self._inbox.put({"type": "lifespan.startup"})
        answer = await self._answer()
        if answer["type"] != "lifespan.startup.complete":
            raise ShipyardError(f"the serving app did not start: {answer.get('message', '')}")

    async def stop(self) -> None:
        if self._inbox is None or self._task is None or self._task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._answer()

    async def _answer(self) -> Message:
        assert self._outbox is not None and self._task is not None
        getter: asyncio.Future[Any] = asyncio.ensure_future(self._outbox.get())
        await asyncio.wait({getter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
        self._task.result()  # raises what the app raised
        raise ShipyardError("the serving app's lifespan ended without answering")


class LambdaHandler:
    """Answers Lambda HTTP events (see the module's docstring) with one ASGI app.

    Call it as Lambda calls a handler: ``handler(event, context)`` returns the response
    object. ``app`` is started (its lifespan) when the handler is made; ``close`` drains it.
    Raises UsageError, from a call, for an event that is not an HTTP request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()  # one event loop: one request at a time
        self._lifespan = _Lifespan(app)
        try:
            self._loop.run_until_complete(self._lifespan.start())
        except BaseException:
            self._loop.close()
            raise

    @classmethod
    def from_baked(
        cls, folder: str | os.PathLike[str], api_key_file: str | None = None
    ) -> LambdaHandler:
        """A handler serving the environment baked into ``folder`` (``BakedRegistry``).

        Every bundle is checked as serve checks a baked one (its sha256, its manifest, the
        signature and pickle policy with the recorded trusted keys) before any of it is
        loaded: a tampered bundle raises TamperedArtifact and nothing of it runs.
        ``api_key_file``, when that file exists, replaces the baked API keys.
        """
        from ._baked import BakedRegistry
        from ._server import ServeOptions, build_app

        baked = BakedRegistry(folder)  # UsageError for a folder that is not a baked one
        options = ServeOptions(
            bundle_dir=str(folder),
            project=baked.project,
            environment=baked.environment,
            api_key_file=api_key_file,
        )
        return cls(build_app(options))

    def __call__(self, event: Any, context: Any = None) -> dict[str, Any]:
        try:
            request = read_event(event)
        except HttpError as error:
            request_id = ""
            if isinstance(event, dict) and isinstance(event.get("requestContext"), dict):
                request_id = str(event["requestContext"].get("requestId") or "")
            return _error_response(error, request_id)
        with self._lock:
            status, headers, body = self._loop.run_until_complete(exchange(self.app, request))
        return lambda_response(status, headers, body)

    def close(self) -> None:
        """Stop the app's lifespan (drain its workers) and close the event loop."""
        with self._lock:
            if self._loop.is_closed():
                return
            self._loop.run_until_complete(self._lifespan.stop())
            self._loop.close()
