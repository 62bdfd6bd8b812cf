"""Apps served beside the models: each app component of the environment under ``/apps/NAME/``.

``load_app`` takes an app bundle that the loader has already checked exactly as a model
bundle (sha256 against the registry's digest, manifest, signature and trust policy),
extracts it into a private temporary folder (verified again as it is written) and imports
its ``entry`` under a private package name (``_app_modules``: two apps both named ``app``
never meet). Importing runs the app's code, so nothing is imported before those checks.

``AppMount`` is a loaded app as one revision serves it, with that revision's app config
and environment config; ``serve_app`` answers one request with it. The app sees the
ASGI ``root_path`` ``/apps/NAME`` and the whole ``path``, as Starlette's ``Mount`` gives a
mounted app (Starlette and FastAPI route under it). While the request runs, the app's
``shipyard.client`` context is bound: the server's own URL (models are called over
loopback HTTP, like any client), the key the server holds for its apps, and the configs.
Every answer carries ``X-Request-Id``; an exception that escapes the app is written with
its traceback and that id to the app's component log (``_logs``), and answered with a 500
naming the id if the app sent nothing (Starlette's own error page, if it did).

Limits: an app's lifespan events (startup, shutdown handlers) are not run; the client's
``predict`` blocks, so an app calls it from a plain ``def`` endpoint (run in a thread) and
not from an ``async def`` one, which would hold the event loop the answer needs.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..apps import AppBundle
from ..client import AppContext, bind
from ..errors import AppError, HttpError
from ..web import JSON_TYPE, REQUEST_ID_HEADER, Receive, Scope, Send, error_body, send_response
from ._app_modules import AppModules
from ._logs import ComponentLogs

logger = logging.getLogger("shipyard.serving")

PREFIX = "/apps/"
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(eq=False)
class LoadedApp:
    """One version of an app, imported: its ASGI app, and the folder and modules it holds."""

    name: str
    version: str
    digest: str
    entry: str
    asgi: ASGIApp
    modules: AppModules
    folder: tempfile.TemporaryDirectory[str] = field(repr=False)
    logs: ComponentLogs | None = field(default=None, repr=False)

    def unload(self) -> None:
        """Forget its modules, stop logging them, and remove its folder."""
        self.modules.unload()
        if self.logs is not None:
            self.logs.detach(self.modules.package)
        self.folder.cleanup()


@dataclass(frozen=True)
class AppMount:
    """A loaded app as one revision serves it: with its app config and environment config."""

    app: LoadedApp
    app_config: Mapping[str, Any]
    environment_config: Mapping[str, Any]


def load_app(
    bundle: AppBundle,
    name: str,
    version: str,
    digest: str,
    *,
    public_key: bytes | None = None,
    logs: ComponentLogs | None = None,
) -> LoadedApp:
    """Extract ``bundle`` (already checked as the loader checks every bundle) and import it.

    ``public_key``: the trusted key that signed it, checked again as it is extracted.
    Raises AppError naming the app when its entry cannot be imported or is not callable
    (its traceback goes to the app's component log), and what extracting raises.
    """
    folder = tempfile.TemporaryDirectory(prefix=f"shipyard-app-{name}-")
    try:
        spec = bundle.spec
        root = bundle.extract(Path(folder.name) / "app", public_key)
        modules = AppModules(root)
        if logs is not None:
            logs.attach(name, modules.package)
        try:
            asgi = modules.load(spec.entry)
        except Exception as exc:
            modules.unload()
            if logs is not None:
                logs.detach(modules.package)
                logs.error(name, f"app {name} {version}: importing {spec.entry} failed", exc)
            # Named as the app's folder names its modules, not by their private package.
            said = str(exc).replace(f"{modules.package}.", "")
            raise AppError(
                f"app {name} {version}: importing its entry {spec.entry} failed: "
                f"{type(exc).__name__}: {said}"
            ) from exc
        if not callable(asgi):
            modules.unload()
            raise AppError(
                f"app {name} {version}: its entry {spec.entry} is a {type(asgi).__name__}, "
                "not an ASGI app"
            )
    except BaseException:
        folder.cleanup()
        raise
    return LoadedApp(name, version, digest, spec.entry, asgi, modules, folder, logs)


def app_name(path: str) -> tuple[str, str]:
    """``(name, rest)`` of a path under ``/apps/``: ``/apps/ui/health`` -> ``("ui", "/health")``."""
    name, slash, rest = path[len(PREFIX) :].partition("/")
    return name, slash + rest


def own_url(scope: Scope) -> str:
    """The base URL a request came in on (the socket's own address): where the models are."""
    server = scope.get("server")
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    if not server or server[1] is None:
        return f"{scheme}://127.0.0.1"
    host = str(server[0])
    return f"{scheme}://[{host}]:{server[1]}" if ":" in host else f"{scheme}://{host}:{server[1]}"


async def serve_app(
    mount: AppMount,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    context: AppContext | None,
    request_id: str,
    logs: ComponentLogs | None,
) -> None:
    """Answer one request (or websocket) to ``mount``'s app under ``/apps/NAME/``.

    ``context`` is bound while the app runs (None binds nothing: the app reads the
    deploy's environment variables).
    """
    loaded = mount.app
    started = False
    id_bytes = request_id.encode()

    async def watched(message: Any) -> None:
        nonlocal started
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if all(k.lower() != REQUEST_ID_HEADER for k, _ in headers):
                # What to look for in the app's component log.
                message = {**message, "headers": [*headers, (REQUEST_ID_HEADER, id_bytes)]}
        if message["type"] in ("http.response.start", "websocket.accept", "websocket.close"):
            started = True
        await send(message)

    child = {**scope, "root_path": scope.get("root_path", "") + PREFIX + loaded.name}
    binding = None
    if context is not None:
        binding = bind(context)
    try:
        await loaded.asgi(child, receive, watched)
    except Exception as exc:
        where = f"app {loaded.name} {loaded.version}"
        what = f"{scope.get('method', 'WEBSOCKET')} {scope['path']}"
        if logs is not None:
            logs.error(loaded.name, f"{where}: {what} failed (request {request_id})", exc)
        logger.error(
            "%s: %s raised %s (request %s); its traceback is in the app's component log",
            where,
            what,
            type(exc).__name__,
            request_id,
        )
        if not started and scope["type"] == "http":
            error = HttpError(
                500,
                "AppError",
                f"the app {loaded.name} failed; request id {request_id} is in its log",
            )
            body = error_body(error, request_id, "predict")
            await send_response(
                send, 500, body, [JSON_TYPE, (REQUEST_ID_HEADER, request_id.encode())]
            )
    finally:
        if binding is not None:
            binding.reset()


def request_context(
    mount: AppMount, project: str, environment: str, serving_url: str, api_key: str | None
) -> AppContext:
    """The ``shipyard.client`` context of one request to ``mount`` (configs copied: the app
    may change what it is given without changing the next request's)."""
    return AppContext(
        project=project,
        environment=environment,
        app=mount.app.name,
        serving_url=serving_url,
        api_key=api_key,
        app_config=copy.deepcopy(dict(mount.app_config)),
        environment_config=copy.deepcopy(dict(mount.environment_config)),
    )
