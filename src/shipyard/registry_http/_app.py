"""The registry HTTP API: a Starlette app over a ``Registry``, one route per operation.

Every request but ``/health``, ``/openapi.json`` and ``/docs`` (Swagger UI, served from
the installed package, never a CDN) needs ``Authorization: Bearer <token>`` (checked by
``Registry.verify_token``: hashed, constant time). Errors are
JSON ``{"error", "message", "details", "request_id"}`` with the status that
``shipyard.web`` maps the error class to; an unexpected exception is logged with its
request id and answered with a 500 that holds no traceback.
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
from starlette.responses import HTMLResponse, Response
from starlette.routing import Match, Route

from .._version import __version__
from ..errors import HttpError, InvalidInput, PermissionDenied
from ..registry import ROLES, ApiToken, Registry, scope_refusal, to_json
from ..web import (
    decode_json,
    docs_page,
    error_response,
    presented_credential,
    read_body,
    swagger_asset,
    too_large,
)
from ._files import file_response
from ._openapi import API_PREFIX, openapi
from ._operations import OPERATIONS, Operation

__all__ = ["create_app"]

logger = logging.getLogger("shipyard.registry_http")

MAX_JSON_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_BYTES = 2 * 1024 * 1024 * 1024
REQUEST_ID = "X-Request-ID"


def _request_id() -> str:
    return uuid.uuid4().hex[:16]


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``data`` as a JSON response (orjson)."""
    body = b"" if status == 204 else orjson.dumps(data)
    media = None if status == 204 else "application/json"
    return Response(body, status_code=status, media_type=media, headers=headers)


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
            request_id = _request_id()
            with ExitStack() as cleanup:
                try:
                    token = await self._authenticate(request, op)
                    arguments = await self._arguments(request, op, cleanup)
                    await self._check_scope(token, op, arguments)
                    registry = self.registry.with_actor(token.name, token.role)
                    result = await run_in_threadpool(getattr(registry, op.name), **arguments)
                    if op.download is not None:  # the file, then its scratch folder goes
                        return file_response(result, cleanup.pop_all(), {REQUEST_ID: request_id})
                    return json_response(to_json(result), op.status, {REQUEST_ID: request_id})
                except Exception as exc:
                    where = f"{op.method} {op.path}"
                    return error_response(exc, request_id, "registry", logger, where)

        handle.__name__ = op.name
        return handle

    async def _authenticate(self, request: Request, op: Operation) -> ApiToken:
        """The token's record; 401 without a valid token, 403 when its role is too low."""
        token = presented_credential(request.scope)
        if token is None:
            raise HttpError(
                401, "PermissionDenied", "send an API token: Authorization: Bearer <token>"
            )
        try:
            found = await run_in_threadpool(self.registry.verify_token, token)
        except PermissionDenied as exc:
            raise HttpError(401, "PermissionDenied", str(exc)) from None
        if ROLES.index(found.role) < ROLES.index(op.role):
            raise HttpError(
                403,
                "PermissionDenied",
                f"token '{found.name}' has role {found.role}; {op.name} needs {op.role}",
            )
        return found

    async def _check_scope(self, token: ApiToken, op: Operation, arguments: dict[str, Any]) -> None:
        """403 when a token limited to projects or environments names anything else.

        The environments a request names are its ``env`` argument, the one a promotion
        writes into (``promotes_to``), and a change request's environment.
        """
        if token.projects is None and token.environments is None:
            return
        project = arguments.get("project")
        environments = [arguments["env"]] if isinstance(arguments.get("env"), str) else []
        if token.environments is not None and isinstance(project, str):
            if op.name == "promote" and environments:
                found = await run_in_threadpool(
                    self.registry.get_environment, project, environments[0]
                )
                if found.promotes_to is not None:
                    environments.append(found.promotes_to)
            elif op.name in ("approve_change", "reject_change", "get_change_request"):
                request = await run_in_threadpool(
                    self.registry.get_change_request, project, arguments["request_id"]
                )
                environments.append(request.environment)
        why = scope_refusal(token, project if isinstance(project, str) else None, environments)
        if why is not None:
            raise HttpError(403, "PermissionDenied", f"{why}; {op.name} refused")

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
                raise InvalidInput(f"unknown parameter '{name}' (parameters: {expected})")
        sources = {"path": request.path_params, "query": query, "body": given}
        arguments: dict[str, Any] = {}
        for param in op.params:
            if param.where == "upload":
                arguments[param.name] = body
            elif param.where == "download":
                scratch = tempfile.TemporaryDirectory(prefix="shipyard-")
                arguments[param.name] = cleanup.enter_context(scratch)
            elif param.name in sources[param.where]:
                arguments[param.name] = param.read(sources[param.where][param.name])
            elif param.required:
                raise InvalidInput(f"parameter '{param.name}' is required")
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
        raw = await read_body(request.scope, request.receive, MAX_JSON_BYTES)
        if not raw.strip():
            return {}
        body = decode_json(raw)
        if not isinstance(body, dict):
            raise HttpError(400, "MalformedJSON", "the request body must be a JSON object")
        return body

    async def _save_upload(self, request: Request, target: Path) -> Path:
        size = 0
        with target.open("wb") as file:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_upload_bytes:
                    raise too_large("the bundle", self.max_upload_bytes)
                file.write(chunk)
        if size == 0:
            raise HttpError(400, "MissingBody", "send the bundle (.tar.gz) as the request body")
        return target


async def _health(_request: Request) -> Response:
    return json_response({"status": "ok"})


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, method not allowed) in the API's shape."""
    assert isinstance(exc, HTTPException)
    message = exc.detail if exc.status_code != 404 else f"no route {request.url.path}"
    error = HttpError(exc.status_code, "HTTPError", message)
    response = error_response(error, _request_id(), "registry", logger, request.url.path)
    if exc.status_code == 405:
        # Starlette names only the first matching route's methods; one path here is
        # several routes (GET and POST /projects), so gather them all.
        allowed: set[str] = set()
        for route in request.app.routes:
            match, _ = route.matches(request.scope)
            methods = getattr(route, "methods", None)
            if match is not Match.NONE and methods:
                allowed |= set(methods)
        response.headers["Allow"] = ", ".join(sorted(allowed))
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    return error_response(exc, _request_id(), "registry", logger, request.url.path)


async def _docs(_request: Request) -> Response:
    return HTMLResponse(docs_page("Shipyard registry API"))


async def _docs_asset(request: Request) -> Response:
    name = request.path_params["file"]
    found = swagger_asset(name)
    if found is None:
        error = HttpError(404, "NotFound", f"no docs asset '{name}'")
        return error_response(error, _request_id(), "registry", logger, request.url.path)
    data, media_type = found
    return Response(data, media_type=media_type, headers={"cache-control": "max-age=86400"})


def _route(path: str, endpoint: Callable[[Request], Awaitable[Response]], method: str) -> Route:
    """A route answering ``method`` only: Starlette adds HEAD to a GET, which the API
    does not document (a HEAD is answered 405 like any other method a path lacks)."""
    route = Route(path, endpoint, methods=[method])
    if method != "HEAD":
        assert route.methods is not None
        route.methods.discard("HEAD")
    return route


def create_app(
    registry_factory: Callable[[], Registry], *, max_upload_bytes: int = MAX_UPLOAD_BYTES
) -> Starlette:
    """The registry API as an ASGI app; ``registry_factory`` is called once, at startup.

    The registry is closed at shutdown. Routes: ``/api/v1/...`` (see ``OPERATIONS``),
    ``/openapi.json``, ``/docs`` (with its assets) and ``/health``.
    """
    api = _Api(registry_factory, max_upload_bytes)
    document = orjson.dumps(openapi(OPERATIONS, __version__))

    async def spec(_request: Request) -> Response:
        return Response(document, media_type="application/json")

    routes = [
        _route("/health", _health, "GET"),
        _route("/openapi.json", spec, "GET"),
        _route("/docs", _docs, "GET"),
        _route("/docs/assets/{file}", _docs_asset, "GET"),
        *(_route(API_PREFIX + op.path, api.endpoint(op), op.method) for op in OPERATIONS),
    ]
    return Starlette(
        routes=routes,
        lifespan=api.lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _unexpected},
    )
