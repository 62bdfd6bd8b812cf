"""``ServingApp``: the ASGI app that serves a route table.

The two model routes (our predict route and the Open Inference Protocol's infer route)
are matched by hand and answered on raw ASGI: read the body (bounded), decode the JSON
once with orjson, validate into numpy columns, run the executor, encode. Everything
else (health, metadata, metrics, OpenAPI) goes to ``InfoRoutes``, a Starlette router.
Errors become statuses and bodies through ``shipyard.web``, like the registry API's.

Requests under ``/apps/NAME/`` go to the app components of the table (``_apps``), each
with its ``shipyard.client`` context bound. When the routes are guarded by API keys, the
server also accepts the key it holds for its own apps (``internal_key``: made at start,
never logged or shown; only the apps' context holds it).

A request reads ``self.table`` once, at its start: ``swap`` replaces the reference, so
requests in flight finish on the versions they started with. Requests of up to
``inline_rows`` rows run on the event loop (a thread hand-off would cost more than the
model); bigger ones run in a thread so that they do not hold up the small ones.
``low_latency`` runs every request on the event loop.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import os
import random
import re
import time
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool

from ..errors import ClientGone, HttpError, SchemaError
from ..web import (
    JSON_TYPE,
    REQUEST_ID_HEADER,
    Receive,
    Scope,
    Send,
    decode_json,
    error_body,
    error_headers,
    header,
    http_error,
    presented_credential,
    read_body,
    send_response,
)
from ._apps import PREFIX as APPS_PREFIX
from ._apps import app_name, own_url, request_context, serve_app
from ._capture import CallRecords, Capture, CaptureRecord
from ._info_routes import REQUEST_ID_KEY, InfoRoutes
from ._keys import KeyRing
from ._logs import ComponentLogs
from ._lookup import model_not_found, runner_of
from ._metrics import Metrics
from ._payloads import (
    Decoded,
    decode_infer,
    decode_invocations,
    decode_predict,
    encode_infer,
    encode_predict,
    split_binary,
)
from ._routes import RouteTable
from ._runner import ModelRunner
from ._shadow import Shadow

logger = logging.getLogger("shipyard.serving")

MAX_BODY_BYTES = 5 * 1024 * 1024
VERSION_HEADER = b"x-shipyard-version"
NO_VERSION = b"none"  # what X-Shipyard-Version says when no model answered
_GOOD_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")
_KEY_IN_QUERY = re.compile(rb"(^|&)(api[_-]?key|key|token|access[_-]?token)=", re.IGNORECASE)


class Background(Protocol):
    """Something the app starts with the server and stops (drained) at shutdown."""

    def start(self) -> None: ...

    def stop(self, timeout: float = ...) -> Any: ...


class ServingApp:
    """An ASGI app serving the models of one ``RouteTable``.

    Everything comes in through the constructor: the table, the API keys (an empty
    ring leaves the model routes open), the metrics, capture and shadow workers, other
    background workers (the registry follower), the body limit, and the seed of the
    random draws that route A/B traffic and sample capture (None: unpredictable).

    Apps: ``logs`` holds the component logs; ``internal_key`` is the key the apps'
    context carries to the model routes; ``serving_url`` is where the apps reach the
    models (None: the address each request came in on); ``bind_apps`` False binds no
    context (the app reads the deploy's ``SHIPYARD_*`` variables: ``serve --app``).
    """

    def __init__(
        self,
        table: RouteTable,
        *,
        keys: KeyRing | None = None,
        metrics: Metrics | None = None,
        capture: Capture | None = None,
        shadow: Shadow | None = None,
        background: Sequence[Background] = (),
        max_body_bytes: int = MAX_BODY_BYTES,
        inline_rows: int = 64,
        low_latency: bool = False,
        seed: int | None = None,
        drain_seconds: float = 30.0,
        strict: bool = False,
        logs: ComponentLogs | None = None,
        internal_key: str | None = None,
        serving_url: str | None = None,
        bind_apps: bool = True,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.logs = logs
        self._internal_key = internal_key
        self.serving_url = serving_url
        self.bind_apps = bind_apps
        self.keys = keys or KeyRing()
        self._warned_closed = False
        self.capture = capture
        self.shadow = shadow or Shadow(self.metrics)
        self.background = [*background, self.shadow, *([capture] if capture else [])]
        self.max_body_bytes = max_body_bytes
        self.inline_rows = inline_rows
        # The strict_inputs setting: a column no input table declares is a 422, not ignored.
        self.strict = strict
        self.low_latency = low_latency
        self.drain_seconds = drain_seconds
        self._draw = random.Random(seed).random
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(4).hex() + "-"
        self.in_flight = 0
        self.draining = False
        # The newest revision the follower could not load, and why (shown by /health).
        self.not_loaded: dict[str, Any] | None = None
        # Whether any table served so far held a model: an environment emptied later (a
        # rollback or removal) is then unhealthy, not "ok" with no models.
        self.held_models = False
        self.table = table
        self.swap(table)
        self._info = InfoRoutes(self)

    # -- the table ----------------------------------------------------------------------

    def refused(self, revision: int, reason: str) -> None:
        """Note that ``revision`` could not be loaded: /health says so until a swap."""
        self.not_loaded = {"revision": revision, "reason": reason}

    def swap(self, table: RouteTable) -> None:
        """Serve ``table`` from the next request on (requests in flight keep the old one)."""
        previous, self.table = self.table, table
        self.not_loaded = None
        self.held_models = self.held_models or bool(table.models)
        if self.capture is not None:
            if table.capture_rate is not None:
                self.capture.rate = table.capture_rate
            if table.llm_calls is not None:
                self.capture.llm_calls = table.llm_calls
            if table.llm_prompts is not None:
                self.capture.llm_prompts = table.llm_prompts
        if table is not previous:
            self.metrics.swaps.labels("done").inc()
        self.metrics.set_loaded(
            {(r.model, r.version, r.digest[:12], role) for role, r in table.runners()}
        )
        if table.revision is not None:
            self.metrics.revision.set(table.revision)
        served = [f"{r.model} {r.version} ({role})" for role, r in table.runners()]
        served += [f"app {m.app.name} {m.app.version}" for m in table.apps.values()]
        logger.info(
            "serving %s/%s revision %s: %s",
            table.project,
            table.environment,
            table.revision if table.revision is not None else "-",
            ", ".join(served) or "nothing",
        )

    def set_keys(self, keys: KeyRing) -> None:
        """Accept these API keys from the next request on.

        Once the routes were guarded by keys, revoking the last one must not open them:
        an empty ring then refuses every request until a new key is made.
        """
        if not keys and self.keys:
            if not self._warned_closed:
                logger.warning("every API key of this environment was revoked: refusing all")
                self._warned_closed = True
            keys = KeyRing.refusing_all()
        else:
            self._warned_closed = False
        self.keys = keys

    # -- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind in ("http", "websocket") and scope["path"].startswith(APPS_PREFIX):
            await self._app_request(scope, receive, send)
            return
        if kind == "http":
            if scope["method"] == "POST":
                parts = scope["path"].split("/")
                if _is_predict(parts):
                    await self._model_request(scope, receive, send, parts[8], None, False, parts)
                    return
                if scope["path"] == "/invocations":
                    await self._invocations(scope, receive, send)
                    return
                if parts[-1] == "infer" and parts[1:3] == ["v2", "models"]:
                    if len(parts) == 5:
                        await self._model_request(scope, receive, send, parts[3], None, True)
                        return
                    if len(parts) == 7 and parts[4] == "versions":
                        await self._model_request(scope, receive, send, parts[3], parts[5], True)
                        return
            await self._cold(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        """MLflow's scoring route: the one model of the environment, in MLflow's formats.

        MLflow's clients and scripts call exactly ``POST /invocations``; with several models
        the request cannot say which, so it is a 400 naming them (use the predict route),
        once the caller's key is checked: the names are not for anyone without one.
        """
        names = sorted(self.table.models)
        if len(names) == 1:
            await self._model_request(scope, receive, send, names[0], None, False, mlflow=True)
            return
        request_id = self._request_id(scope)
        try:
            self._check_key(scope)
        except HttpError as refused:
            await self._send_error(send, refused, request_id, None, False)
            return
        detail = (
            f"it serves {len(names)} models ({', '.join(names)}): call one's predict route, "
            f"/api/v1/projects/{self.table.project}/environments/{self.table.environment}"
            "/models/MODEL/predict"
            if names
            else "it serves no model"
        )
        error = HttpError(400, "AmbiguousModel", f"/invocations needs exactly one model; {detail}")
        await self._send_error(send, error, request_id, None, False)

    async def _app_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A request under ``/apps/NAME/``: to that app, with its context bound."""
        table = self.table
        request_id = self._request_id(scope)
        name, rest = app_name(scope["path"])
        mount = table.apps.get(name)
        if mount is None:
            if scope["type"] != "http":
                await send({"type": "websocket.close", "code": 1008})
                return
            served = ", ".join(sorted(table.apps)) or "none"
            error = HttpError(404, "NotFound", f"no app {name!r} here (apps: {served})")
            await self._send_error(send, error, request_id, None, False)
            return
        if not rest and scope["type"] == "http":
            # /apps/NAME is the app's root: /apps/NAME/, as a browser's links then resolve.
            query = scope.get("query_string", b"")
            location = scope["path"].encode() + b"/" + (b"?" + query if query else b"")
            headers = [(b"location", location), (REQUEST_ID_HEADER, request_id.encode())]
            await send_response(send, 307, b"", headers)
            return
        context = None
        if self.bind_apps:
            url = self.serving_url or own_url(scope)
            context = request_context(
                mount, table.project, table.environment, url, self._internal_key
            )
        await serve_app(
            mount, scope, receive, send, context=context, request_id=request_id, logs=self.logs
        )

    def _request_id(self, scope: Scope) -> str:
        given = header(scope, REQUEST_ID_HEADER)
        if given is not None and _GOOD_ID.match(given):
            return given.decode()
        return f"{self._id_prefix}{next(self._ids):x}"

    def _check_key(self, scope: Scope) -> None:
        keys = self.keys
        if not keys:
            return
        if _KEY_IN_QUERY.search(scope.get("query_string", b"")):
            raise HttpError(
                401,
                "Unauthorized",
                "API keys are not accepted in the query string: send 'Authorization: Bearer "
                "KEY' or 'X-API-Key: KEY'",
            )
        presented = presented_credential(scope, api_key_header=True)
        internal = self._internal_key
        if internal and presented and hmac.compare_digest(presented.encode(), internal.encode()):
            return  # one of this server's own apps
        if not keys.accepts(presented):
            raise HttpError(
                401,
                "Unauthorized",
                "a valid API key is required: 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
            )

    async def _model_request(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        model: str,
        version: str | None,
        oip: bool,
        parts: list[str] | None = None,
        *,
        mlflow: bool = False,
    ) -> None:
        """Answer a predict (``oip`` False) or infer request; every outcome is counted.

        ``mlflow``: the body must be one of MLflow's payloads (``/invocations``).
        """
        started = time.perf_counter()
        table = self.table
        request_id = self._request_id(scope)
        route = "infer" if oip else "invocations" if mlflow else "predict"
        runner: ModelRunner | None = None
        calls: list[dict[str, Any]] | None = None  # the llm calls made, when the plan has any
        status = 200
        self.in_flight += 1
        self.metrics.in_flight.inc()
        try:
            self._check_key(scope)
            entry = table.models.get(model)
            if parts is not None and (parts[4], parts[6]) != (table.project, table.environment):
                raise model_not_found(table, model, (parts[4], parts[6]))
            if entry is None:
                raise model_not_found(table, model)
            runner = entry.pick(self._draw()) if version is None else runner_of(entry, version)
            body = await read_body(scope, receive, self.max_body_bytes)
            bool_free = b"true" not in body and b"false" not in body
            decoded = self._decode(scope, body, runner, oip, bool_free, mlflow)
            if self.strict:
                _refuse_undeclared(runner, decoded)
            plan = runner.plan_for(decoded.outputs)
            if runner.calls_endpoint(plan):
                # An llm call waits on the network: never on the event loop. Every call
                # is recorded for audit, sampled or not.
                calls = []
                values = await run_in_threadpool(
                    runner.run_recorded, decoded.tables, decoded.rows, plan, calls
                )
            elif self.low_latency or decoded.rows <= self.inline_rows:
                values = runner.run(decoded.tables, decoded.rows, plan)
            else:
                values = await run_in_threadpool(runner.run, decoded.tables, decoded.rows, plan)
            headers = [
                (VERSION_HEADER, runner.version.encode()),
                (REQUEST_ID_HEADER, request_id.encode()),
            ]
            if oip:
                payload, head = encode_infer(runner, decoded, values)
                if head is None:
                    headers.append(JSON_TYPE)
                else:
                    headers.append((b"content-type", b"application/octet-stream"))
                    headers.append((b"inference-header-content-length", str(head).encode()))
            else:
                payload = encode_predict(runner, decoded, values)
                headers.append(JSON_TYPE)
            await send_response(send, 200, payload, headers)
        except ClientGone:
            status = 499  # nginx's "client closed request": nothing to answer
            return
        except Exception as exc:
            where = f"{runner.model} {runner.version}" if runner else model
            error = http_error(exc, request_id, logger, where)
            status = error.status
            if status >= 500 and self.logs is not None and runner is not None:
                self.logs.error(runner.model, f"{where}: {route} request {request_id} failed", exc)
            await self._send_error(send, error, request_id, runner, oip)
            if calls and runner is not None:
                self._offer_calls(runner, request_id, calls)  # the failed call too
            return
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            self.metrics.observe(
                runner.model if runner else "(unknown)",
                runner.version if runner else "none",
                route,
                status,
                elapsed,
            )
        # The answer is sent: what follows is off the response path.
        capture = self.capture
        sampled = capture is not None and capture.sampled()
        if entry.shadow is not None and entry.shadow is not runner:
            # A sampled request's shadow answer is captured too, to compare with the live
            # one; the shadow's llm calls are kept whether sampled or not.
            self.shadow.offer(entry.shadow, decoded, request_id, capture, sampled)
        if calls:
            self._offer_calls(runner, request_id, calls)
        if capture is not None and sampled:
            record = _capture_record(runner, request_id, decoded, values, elapsed * 1000.0)
            capture.offer(record)

    def _offer_calls(
        self, runner: ModelRunner, request_id: str, calls: list[dict[str, Any]]
    ) -> None:
        if self.capture is not None:
            record = CallRecords(runner.model, runner.version, request_id, time.time(), calls)
            self.capture.offer_calls(record)

    def _decode(
        self,
        scope: Scope,
        body: bytes,
        runner: ModelRunner,
        oip: bool,
        bool_free: bool,
        mlflow: bool = False,
    ) -> Decoded:
        if oip:
            head, binary = split_binary(body, header(scope, b"inference-header-content-length"))
            return decode_infer(decode_json(head), binary, runner, bool_free)
        decode = decode_invocations if mlflow else decode_predict
        decoded = decode(decode_json(body), runner, bool_free)
        query = scope.get("query_string")
        if query:
            wanted = parse_qs(query.decode("latin-1")).get("outputs")
            if wanted:
                names = tuple(n for part in wanted for n in part.split(",") if n)
                decoded = Decoded(decoded.tables, decoded.rows, decoded.style, decoded.given, names)
        return decoded

    async def _send_error(
        self, send: Send, error: HttpError, request_id: str, runner: ModelRunner | None, oip: bool
    ) -> None:
        runner_name = runner.model if runner else "(unknown)"
        self.metrics.errors.labels(
            runner_name, runner.version if runner else "none", error.kind
        ).inc()
        headers = [
            (VERSION_HEADER, runner.version.encode() if runner else NO_VERSION),
            *error_headers(error, request_id),
        ]
        body = error_body(error, request_id, "oip" if oip else "predict")
        await send_response(send, error.status, body, headers)

    # -- everything else: InfoRoutes, a Starlette router ---------------------------------

    async def _cold(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = self._request_id(scope).encode()

        async def send_with_ids(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                if VERSION_HEADER not in names:
                    headers.append((VERSION_HEADER, NO_VERSION))
                if REQUEST_ID_HEADER not in names:  # an error response names it already
                    headers.append((REQUEST_ID_HEADER, request_id))
                message = {**message, "headers": headers}
            await send(message)

        await self._info({**scope, REQUEST_ID_KEY: request_id.decode()}, receive, send_with_ids)

    # -- lifespan: start the background workers, drain at shutdown ----------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for worker in self.background:
                        worker.start()
                except Exception as exc:
                    logger.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.drain()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def drain(self) -> None:
        """Stop being ready, wait for requests in flight (up to ``drain_seconds``), stop workers.

        Uvicorn has already stopped accepting connections and waited for its tasks when
        it runs the lifespan shutdown; this also covers servers that do not.
        """
        self.draining = True
        deadline = time.monotonic() + self.drain_seconds
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self.in_flight:
            logger.warning("shutting down with %d requests still in flight", self.in_flight)
        for worker in self.background:
            await run_in_threadpool(worker.stop, self.drain_seconds)
        self.metrics.close()
        if self.logs is not None:
            self.logs.close()


def _is_predict(parts: list[str]) -> bool:
    """``/api/v1/projects/P/environments/E/models/M/predict``, split on '/'."""
    return (
        len(parts) == 10
        and parts[9] == "predict"
        and parts[1:4] == ["api", "v1", "projects"]
        and parts[5] == "environments"
        and parts[7] == "models"
    )


def _capture_record(
    runner: ModelRunner,
    request_id: str,
    decoded: Decoded,
    values: dict[str, Any],
    latency_ms: float | None = None,
) -> CaptureRecord:
    inputs = {
        f"{table}.{column}": (runner.tables[table].columns[column].type, array)
        for table, columns in decoded.tables.items()
        for column, array in columns.items()
    }
    outputs = {name: (runner.executor.dtype(name), array) for name, array in values.items()}
    return CaptureRecord(
        runner.model, runner.version, request_id, time.time(), inputs, outputs, "live", latency_ms
    )


def _refuse_undeclared(runner: ModelRunner, decoded: Decoded) -> None:
    """SchemaError (422) naming the columns of a request that no input table declares."""
    tables = runner.executor.tables
    given = decoded.given
    if not isinstance(given, dict):
        return
    if len(tables) == 1:
        [(name, spec)] = tables.items()
        # The dict format names the table; MLflow's and OIP's give the columns themselves.
        columns = given[name] if isinstance(given.get(name), dict) else given
        extra = sorted(str(c) for c in columns if c not in spec.columns)
    else:
        name = None
        extra = sorted(
            f"{t}.{c}"
            for t, columns in given.items()
            if t in tables and isinstance(columns, dict)
            for c in columns
            if c not in tables[t].columns
        )
    if extra:
        raise SchemaError(
            f"unknown column(s) {', '.join(extra)}: this environment takes only the declared "
            "columns (setting strict_inputs)",
            name,
        )
