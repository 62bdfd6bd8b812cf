"""Batch job routes of the registry API: submit a job, follow it, list and cancel jobs.

    POST {E}/models/{model}/batch          deployer  {"input", "output", options…} -> 201 job
    GET  {E}/models/{model}/batch/{job_id} viewer    -> job
    GET  /batch-jobs?project=&env=&state=&limit=     viewer  -> [job]
    GET  /batch-jobs/{job_id}              viewer    -> job
    POST /batch-jobs/{job_id}/cancel       deployer  -> job

under ``/api/v1``, ``{E}`` being ``/projects/{project}/environments/{env}``. Options are
those of ``shipyard batch run``: ``format``, ``input_format``, ``id_column``, ``outputs``
(a list), ``chunk_rows``, ``workers``. Jobs are rows of the registry database, run by
``shipyard batch worker`` processes (or a ``Worker`` thread in the server), so a
server restart loses none. Same authentication and error bodies as the other routes.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidInput, NotFound, PermissionDenied, ShipyardError
from ..registry import ROLES, Registry
from ..web import http_status
from ._openapi import API_PREFIX

__all__ = ["batch_routes"]

VIEWER, DEPLOYER, _ADMIN = ROLES
MODEL_PATH = "/projects/{project}/environments/{env}/models/{model}/batch"
MAX_BODY = 1 << 20

Handler = Callable[[Registry, Request, dict[str, Any]], Any]


def _response(data: Any, status: int, request_id: str) -> Response:
    headers = {"X-Request-ID": request_id}
    return Response(orjson.dumps(data), status, media_type="application/json", headers=headers)


def _failure(exc: ShipyardError, request_id: str) -> Response:
    status = http_status(exc)
    body = {"error": type(exc).__name__, "message": str(exc), "request_id": request_id}
    return _response(body, status, request_id)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise InvalidInput(f"the request body is over {MAX_BODY:,} bytes")
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    return body


def _int(value: str, name: str) -> int:
    if not value.isdigit():
        raise InvalidInput(f"parameter '{name}' must be a whole number")
    return int(value)


def batch_routes(registry: Callable[[], Registry]) -> list[Route]:
    """The batch routes (under /api/v1) over the registry ``registry()`` returns.

    ``registry`` is called on each request (give the server's shared registry, e.g.
    ``lambda: api.registry``); requests act as the token's owner.
    """

    def endpoint(role: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            request_id = uuid.uuid4().hex[:16]
            try:
                scheme, _, token = request.headers.get("authorization", "").partition(" ")
                shared = registry()
                try:
                    if scheme.lower() != "bearer" or not token.strip():
                        raise PermissionDenied("send an API token: Authorization: Bearer <token>")
                    owner = await run_in_threadpool(shared.verify_token, token.strip())
                except PermissionDenied as exc:
                    body = {"error": "PermissionDenied", "message": str(exc)}
                    return _response({**body, "request_id": request_id}, 401, request_id)
                if ROLES.index(owner.role) < ROLES.index(role):
                    message = f"token '{owner.name}' has role {owner.role}; this needs {role}"
                    return _failure(PermissionDenied(message), request_id)
                body = await _body(request) if request.method == "POST" else {}
                acting = shared.with_actor(owner.name)
                result = await run_in_threadpool(handler, acting, request, body)
                status = 201 if handler is _submit else 200
                return _response(result, status, request_id)
            except ShipyardError as exc:
                return _failure(exc, request_id)

        return handle

    return [
        Route(API_PREFIX + MODEL_PATH, endpoint(DEPLOYER, _submit), methods=["POST"]),
        Route(API_PREFIX + MODEL_PATH + "/{job_id}", endpoint(VIEWER, _get_one), methods=["GET"]),
        Route(API_PREFIX + "/batch-jobs", endpoint(VIEWER, _list), methods=["GET"]),
        Route(API_PREFIX + "/batch-jobs/{job_id}", endpoint(VIEWER, _get), methods=["GET"]),
        Route(
            API_PREFIX + "/batch-jobs/{job_id}/cancel",
            endpoint(DEPLOYER, _cancel),
            methods=["POST"],
        ),
    ]


def _submit(registry: Registry, request: Request, body: dict[str, Any]) -> Any:
    from ..batch import submit_job

    path = request.path_params
    options = {k: v for k, v in body.items() if k not in ("input", "output")}
    job = submit_job(
        registry,
        path["project"],
        path["env"],
        path["model"],
        body.get("input", ""),
        body.get("output", ""),
        options,
    )
    return job.to_json()


def _get_one(registry: Registry, request: Request, _body: dict[str, Any]) -> Any:
    from ..batch import get_job

    path = request.path_params
    job = get_job(registry, _int(path["job_id"], "job_id"))
    if (job.project, job.environment, job.model) != (path["project"], path["env"], path["model"]):
        raise NotFound(
            f"batch job {job.id} is not a job of model '{path['model']}' in "
            f"environment '{path['env']}' of project '{path['project']}'"
        )
    return job.to_json()


def _get(registry: Registry, request: Request, _body: dict[str, Any]) -> Any:
    from ..batch import get_job

    return get_job(registry, _int(request.path_params["job_id"], "job_id")).to_json()


def _list(registry: Registry, request: Request, _body: dict[str, Any]) -> Any:
    from ..batch import list_jobs

    query = request.query_params
    limit = _int(query["limit"], "limit") if "limit" in query else 50
    jobs = list_jobs(registry, query.get("project"), query.get("env"), query.get("state"), limit)
    return [job.to_json() for job in jobs]


def _cancel(registry: Registry, request: Request, _body: dict[str, Any]) -> Any:
    from ..batch import cancel_job

    return cancel_job(registry, _int(request.path_params["job_id"], "job_id")).to_json()
