"""The routes off the hot path: health, metrics, OpenAPI, and the OIP v2 metadata routes.

    GET /health, /metrics, /openapi.json, /docs
    GET /v2, /v2/health/live, /v2/health/ready                 (Open Inference Protocol v2)
    GET /v2/models/{m}[/versions/{v}], /v2/models/{m}[/versions/{v}]/ready

Starlette routes, built once over the app they describe; every handler reads the app's
current route table, so a swap shows from the next request on. Errors answer in the
style of the route (the protocol's ``{"error": message}`` under /v2), through
``shipyard.web``; the app adds the request id and version headers. A known path asked
with another method is a JSON 405 whose ``Allow`` names every method the path takes
(the predict and infer routes included: the app answers their POST before this).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Match, Route

from .._version import __version__
from ..errors import HttpError
from ..web import (
    JSON_TYPE,
    ErrorStyle,
    Receive,
    Scope,
    Send,
    docs_page,
    error_body,
    error_response,
    send_response,
    swagger_asset,
)
from ._keys import KeyRing
from ._lookup import model_not_found, runner_of
from ._metrics import Metrics
from ._openapi import openapi
from ._payloads import model_metadata
from ._routes import ModelRoute, RouteTable
from ._runner import ModelRunner

logger = logging.getLogger("shipyard.serving")

REQUEST_ID_KEY = "shipyard.request_id"  # where these routes find the request id in the scope
# The routes the app answers on POST itself (our predict route, the protocol's infer).
MODEL_ROUTES = (
    "/api/v1/projects/{project}/environments/{environment}/models/{model}/predict",
    "/v2/models/{model}/infer",
    "/v2/models/{model}/versions/{version}/infer",
    "/invocations",
)


class Served(Protocol):
    """What the routes read of the app they describe, on each request."""

    table: RouteTable
    keys: KeyRing
    draining: bool
    metrics: Metrics
    not_loaded: dict[str, Any] | None
    held_models: bool


def _json(document: Any, status: int = 200, version: str | None = None) -> Response:
    headers = {"x-shipyard-version": version} if version else None
    return Response(orjson.dumps(document), status, headers, media_type="application/json")


class InfoRoutes:
    """An ASGI app answering the routes above for ``served``; unknown routes are JSON 404s.

    The scope must carry the request id under ``REQUEST_ID_KEY``.
    """

    def __init__(self, served: Served) -> None:
        self._served = served
        self._openapi: tuple[RouteTable, bool, bytes] | None = None
        self._routes = [
            Route("/health", self._health),
            Route("/metrics", self._metrics),
            Route("/openapi.json", self._openapi_json),
            Route("/docs", self._docs),
            Route("/docs/assets/{name}", self._docs_asset),
            Route("/v2", self._server_metadata),
            Route("/v2/health/live", self._live),
            Route("/v2/health/ready", self._ready),
            Route("/v2/models/{model}", self._model_metadata),
            Route("/v2/models/{model}/versions/{version}", self._model_metadata),
            Route("/v2/models/{model}/ready", self._model_ready),
            Route("/v2/models/{model}/versions/{version}/ready", self._model_ready),
            # The app answers these itself on POST; here only to answer other methods 405.
            *(Route(path, self._app_answers, methods=["POST"]) for path in MODEL_ROUTES),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        allowed: set[str] = set()
        for route in self._routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                await route.handle({**scope, **child}, receive, send)
                return
            if match is Match.PARTIAL and route.methods:
                allowed |= route.methods
        if allowed:
            await self._method_not_allowed(scope, send, allowed)
        else:
            await self._not_found(scope, receive, send)

    async def _app_answers(self, request: Request) -> Response:
        # Never reached: the app matches every POST these paths match, before this router.
        path = request.url.path
        return _error(request, HttpError(404, "NotFound", f"no route POST {path}"))

    async def _method_not_allowed(self, scope: Scope, send: Send, allowed: set[str]) -> None:
        methods = ", ".join(sorted(allowed))
        error = HttpError(
            405,
            "MethodNotAllowed",
            f"{scope['method']} is not allowed on {scope['path']}: use {methods}",
        )
        headers = [JSON_TYPE, (b"allow", methods.encode())]
        body = error_body(error, scope[REQUEST_ID_KEY], _style(scope))
        await send_response(send, 405, body, headers)

    async def _not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = HttpError(404, "NotFound", f"no route {scope['method']} {scope['path']}")
        body = error_body(error, scope[REQUEST_ID_KEY], _style(scope))
        await send_response(send, 404, body, [JSON_TYPE])

    async def _health(self, _request: Request) -> Response:
        served = self._served
        table = served.table
        document: dict[str, Any] = {
            "status": "draining" if served.draining else "ok",
            "project": table.project,
            "environment": table.environment,
            "revision": table.revision,
            "models": {name: list(route.versions) for name, route in table.models.items()},
            "apps": {name: mount.app.version for name, mount in table.apps.items()},
        }
        if table.pinned:
            document["pinned"] = dict(table.pinned)  # served at that version whatever traffic says
        if served.not_loaded is not None:
            # Still serving what it has; a newer revision was refused (e.g. a revoked key).
            document["not_loaded"] = served.not_loaded
        if not table.models and served.held_models:
            document["status"] = "no_models"
            document["reason"] = (
                "this server held models and its environment now holds none (a rollback or a "
                "removal): every prediction is a 404"
            )
            return _json(document, 503)
        return _json(document)

    async def _metrics(self, _request: Request) -> Response:
        return Response(
            self._served.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def _openapi_json(self, _request: Request) -> Response:
        table, secured = self._served.table, bool(self._served.keys)
        if self._openapi is None or self._openapi[0] is not table or self._openapi[1] != secured:
            self._openapi = (table, secured, orjson.dumps(openapi(table, secured)))
        return Response(self._openapi[2], media_type="application/json")

    async def _docs(self, _request: Request) -> Response:
        return HTMLResponse(docs_page("Shipyard API"))

    async def _docs_asset(self, request: Request) -> Response:
        found = swagger_asset(request.path_params["name"])
        if found is None:
            name = request.path_params["name"]
            return _error(request, HttpError(404, "NotFound", f"no docs asset '{name}'"))
        data, media_type = found
        return Response(data, media_type=media_type, headers={"cache-control": "max-age=86400"})

    async def _server_metadata(self, _request: Request) -> Response:
        return _json(
            {"name": "shipyard", "version": __version__, "extensions": ["binary_tensor_data"]}
        )

    async def _live(self, _request: Request) -> Response:
        return _json({"live": True})

    async def _ready(self, _request: Request) -> Response:
        table = self._served.table
        ready = bool(table.models or table.apps) and not self._served.draining
        # The protocol's schema names this response's field "live" (a quirk of the spec): send both.
        return _json({"ready": ready, "live": True}, 200 if ready else 503)

    def _route_runner(self, request: Request) -> tuple[ModelRoute, ModelRunner]:
        table = self._served.table
        entry = table.models.get(request.path_params["model"])
        if entry is None:
            raise model_not_found(table, request.path_params["model"])
        version = request.path_params.get("version")
        return entry, runner_of(entry, version) if version else entry.primary

    async def _model_metadata(self, request: Request) -> Response:
        try:
            entry, runner = self._route_runner(request)
        except HttpError as exc:
            return _error(request, exc)
        return _json(model_metadata(runner, list(entry.versions)), version=runner.version)

    async def _model_ready(self, request: Request) -> Response:
        try:
            _, runner = self._route_runner(request)
        except HttpError as exc:
            return _error(request, exc)
        ready = not self._served.draining
        return _json(
            {"name": runner.model, "version": runner.version, "ready": ready},
            200 if ready else 503,
            runner.version,
        )


def _style(scope: Scope) -> ErrorStyle:
    """The Open Inference Protocol's error style under /v2, ours elsewhere."""
    return "oip" if scope["path"].startswith("/v2") else "predict"


def _error(request: Request, error: HttpError) -> Response:
    request_id = request.scope[REQUEST_ID_KEY]
    return error_response(error, request_id, "oip", logger, request.url.path)
