"""The registry HTTP API: a Starlette app over a ``Registry``, one route per operation.

Every request but ``/health`` and ``/openapi.json`` needs ``Authorization: Bearer
<token>`` (checked by ``Registry.verify_token``: hashed, constant time). Errors are
JSON ``{"error", "message", "details", "request_id"}`` with the status the error class
names; an unexpected exception is logged with its request id and answered with a 500
that holds no traceback.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .._version import __version__
from ..errors import PermissionDenied, ShipyardError, UsageError
from ..registry import ROLES, ApiToken, Registry, to_json
from ._batch_routes import batch_routes
from ._openapi import API_PREFIX, openapi
from ._operations import OPERATIONS, Operation, convert

__all__ = ["create_app"]

logger = logging.getLogger("shipyard.registry_http")

MAX_JSON_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_BYTES = 2 * 1024 * 1024 * 1024
REQUEST_ID = "X-Request-ID"


class _Refused(Exception):
    """Answer with this status and error instead of calling the registry."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``data`` as a JSON response (orjson)."""
    body = b"" if status == 204 else orjson.dumps(data)
    media = None if status == 204 else "application/json"
    return Response(body, status_code=status, media_type=media, headers=headers)


def error_status(exc: ShipyardError) -> int:
    """The HTTP status of a Shipyard error: its ``http_status``, else by its kind."""
    status = getattr(exc, "http_status", None)
    if isinstance(status, int):
        return status
    # A refused bundle (ArtifactError), bad data (SchemaError): the request's content.
    return 400 if isinstance(exc, UsageError) else 422


def _details(exc: BaseException) -> dict[str, Any]:
    """The error's public attributes that are plain JSON (``event_id``, ``problems``, …)."""
    plain = (str, int, float, bool, type(None))
    return {
        k: v
        for k, v in vars(exc).items()
        if not k.startswith("_")
        and (isinstance(v, plain) or (isinstance(v, list) and all(isinstance(i, plain) for i in v)))
    }


def _error(status: int, error: str, message: str, request_id: str, **extra: Any) -> Response:
    headers = {REQUEST_ID: request_id}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    body = {"error": error, "message": message, "request_id": request_id, **extra}
    return json_response(body, status, headers)


def _internal_error(request_id: str) -> Response:
    """A 500 that names the request id to look for in the log, and nothing else."""
    message = f"internal error; the server log has the details (request {request_id})"
    return _error(500, "InternalError", message, request_id)


class _Api:
    """The endpoints, holding the registry the app was built with."""

    def __init__(
        self, registry_factory: Callable[[], Registry], max_upload_bytes: int = MAX_UPLOAD_BYTES
    ) -> None:
        self._factory = registry_factory
        self._registry: Registry | None = None
        self.max_upload_bytes = max_upload_bytes

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = self._factory()
        return self._registry

    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(lambda: self.registry)
        try:
            yield
        finally:
            if self._registry is not None:
                self._registry.close()

    def endpoint(self, op: Operation) -> Callable[[Request], Awaitable[Response]]:
        """The ASGI endpoint of ``op``: authenticate, read the arguments, call, answer."""

        async def handle(request: Request) -> Response:
            request_id = uuid.uuid4().hex[:16]
            with ExitStack() as cleanup:
                try:
                    token = await self._authenticate(request, op)
                    arguments = await self._arguments(request, op, cleanup)
                    registry = self.registry.with_actor(token.name)
                    result = await run_in_threadpool(getattr(registry, op.name), **arguments)
                    return json_response(to_json(result), op.status, {REQUEST_ID: request_id})
                except _Refused as exc:
                    return _error(exc.status, exc.error, str(exc), request_id)
                except ShipyardError as exc:
                    status = error_status(exc)
                    name = type(exc).__name__
                    return _error(status, name, str(exc), request_id, details=_details(exc))
                except Exception:
                    logger.exception("request %s (%s %s) failed", request_id, op.method, op.path)
                    return _internal_error(request_id)

        handle.__name__ = op.name
        return handle

    async def _authenticate(self, request: Request, op: Operation) -> ApiToken:
        """The token's record; 401 without a valid token, 403 when its role is too low."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Refused(
                401, "PermissionDenied", "send an API token: Authorization: Bearer <token>"
            )
        try:
            found = await run_in_threadpool(self.registry.verify_token, token.strip())
        except PermissionDenied as exc:
            raise _Refused(401, "PermissionDenied", str(exc)) from None
        if ROLES.index(found.role) < ROLES.index(op.role):
            raise _Refused(
                403,
                "PermissionDenied",
                f"token '{found.name}' has role {found.role}; {op.name} needs {op.role}",
            )
        return found

    async def _arguments(
        self, request: Request, op: Operation, cleanup: ExitStack
    ) -> dict[str, Any]:
        """The keyword arguments of the registry call, converted to the method's types."""
        body = await self._body(request, op, cleanup)
        known = {p.name for p in op.params if p.where in ("body", "query")}
        given = body if op.upload is None else {}
        query = dict(request.query_params)
        for name in [*given, *query]:
            if name not in known:
                expected = ", ".join(sorted(known)) or "none"
                raise _Refused(
                    422, "InvalidInput", f"unknown parameter '{name}' (parameters: {expected})"
                )
        sources = {"path": request.path_params, "query": query, "body": given}
        arguments: dict[str, Any] = {}
        for param in op.params:
            if param.where == "upload":
                arguments[param.name] = body
            elif param.name in sources[param.where]:
                value = sources[param.where][param.name]
                text = param.where != "body"  # path and query values arrive as text
                arguments[param.name] = convert(param.name, value, param.annotation, text)
            elif param.required:
                raise _Refused(422, "InvalidInput", f"parameter '{param.name}' is required")
        return arguments

    async def _body(self, request: Request, op: Operation, cleanup: ExitStack) -> Any:
        """The uploaded file's path (for an upload), else the JSON object sent (or {}).

        An uploaded file lives in a temporary folder that ``cleanup`` removes.
        """
        if op.upload is not None:
            scratch = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="shipyard-"))
            return await self._save_upload(request, Path(scratch) / "bundle.tar.gz")
        if op.method in ("GET", "DELETE"):
            return {}
        raw = await self._read(request, MAX_JSON_BYTES)
        if not raw.strip():
            return {}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _Refused(
                400, "MalformedJSON", f"the request body is not valid JSON: {exc}"
            ) from None
        if not isinstance(body, dict):
            raise _Refused(400, "MalformedJSON", "the request body must be a JSON object")
        return body

    async def _read(self, request: Request, limit: int) -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _Refused(413, "TooLarge", f"the request body is over {limit:,} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _save_upload(self, request: Request, target: Path) -> Path:
        size = 0
        with target.open("wb") as file:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_upload_bytes:
                    raise _Refused(
                        413, "TooLarge", f"the bundle is over {self.max_upload_bytes:,} bytes"
                    )
                file.write(chunk)
        if size == 0:
            raise _Refused(400, "MissingBody", "send the bundle (.tar.gz) as the request body")
        return target


async def _health(_request: Request) -> Response:
    return json_response({"status": "ok"})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    request_id = uuid.uuid4().hex[:16]
    message = exc.detail if exc.status_code != 404 else f"no route {request.url.path}"
    return _error(exc.status_code, "HTTPError", message, request_id)


async def _unexpected(request: Request, exc: Exception) -> Response:
    request_id = uuid.uuid4().hex[:16]
    logger.error("request %s (%s) failed", request_id, request.url.path, exc_info=exc)
    return _internal_error(request_id)


def create_app(
    registry_factory: Callable[[], Registry], *, max_upload_bytes: int = MAX_UPLOAD_BYTES
) -> Starlette:
    """The registry API as an ASGI app; ``registry_factory`` is called once, at startup.

    The registry is closed at shutdown. Routes: ``/api/v1/...`` (see ``OPERATIONS``),
    ``/openapi.json`` and ``/health``.
    """
    api = _Api(registry_factory, max_upload_bytes)
    document = orjson.dumps(openapi(OPERATIONS, __version__))

    async def spec(_request: Request) -> Response:
        return Response(document, media_type="application/json")

    routes = [
        Route("/health", _health, methods=["GET"]),
        Route("/openapi.json", spec, methods=["GET"]),
        *(Route(API_PREFIX + op.path, api.endpoint(op), methods=[op.method]) for op in OPERATIONS),
        *batch_routes(lambda: api.registry),
    ]
    return Starlette(
        routes=routes,
        lifespan=api.lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _unexpected},
    )
