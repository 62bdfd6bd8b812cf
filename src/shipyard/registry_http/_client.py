"""``RegistryClient``: the registry API over HTTP, called like a ``Registry``.

Every operation of the table is a method of the same name taking the same arguments
(``client.promote("demo", "uat")``). Results are the plain JSON data that
``shipyard.registry.to_json`` makes of ``Registry``'s results; failures raise the same
``ShipyardError`` classes, with the same message, that the server's registry raised.
A download (``fetch_bundle``) writes the file into the caller's folder and returns its
``Path``, as the ``Registry`` method does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx
import orjson

from .. import errors
from ..errors import ArtifactError, RegistryError, ShipyardError
from ._files import save_download
from ._openapi import API_PREFIX
from ._operations import OPERATIONS, Operation, by_name

__all__ = ["RegistryClient", "error_from_response"]

_BY_STATUS: dict[int, str] = {
    401: "PermissionDenied",
    403: "PermissionDenied",
    404: "NotFound",
    409: "Conflict",
    422: "InvalidInput",
}


def error_from_response(response: httpx.Response) -> ShipyardError:
    """The ``ShipyardError`` a failed response stands for, with the server's message."""
    try:
        body = orjson.loads(response.content)
        name, message = str(body["error"]), str(body["message"])
        details = body.get("details") or {}
    except (orjson.JSONDecodeError, KeyError, TypeError):
        name, message, details = "", response.text.strip()[:200], {}
        message = f"the registry answered {response.status_code}: {message or 'no message'}"
    cls = getattr(errors, name, None) if name in errors.__all__ else None
    if not (isinstance(cls, type) and issubclass(cls, ShipyardError)):
        cls = getattr(errors, _BY_STATUS.get(response.status_code, "RegistryError"))
    # Rebuild without calling __init__ (whose arguments differ by class): same message,
    # same attributes (event_id, problems, …), same exit code.
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    if isinstance(details, dict):
        error.__dict__.update(details)
    return error


def _text(value: Any) -> str:
    """A query-string value: JSON for containers, true/false for booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value).decode()
    return str(value)


class RegistryClient:
    """The registry at ``url`` (the server's root), authenticated with an API ``token``.

    Methods: those of ``Registry`` listed in the operation table, same arguments, results
    as plain JSON data. Raises the server's ``ShipyardError`` classes; RegistryError when
    the server cannot be reached. ``transport`` is for tests (an httpx transport).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.url + API_PREFIX, headers=headers, timeout=timeout, transport=transport
        )

    def __getattr__(self, name: str) -> Callable[..., Any]:
        operation = by_name(name)
        if operation is None:
            raise AttributeError(f"'RegistryClient' has no operation '{name}'")

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.call(operation, *args, **kwargs)

        call.__name__ = name
        call.__doc__ = operation.summary
        return call

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {op.name for op in OPERATIONS})

    def call(self, operation: Operation, *args: Any, **kwargs: Any) -> Any:
        """Send one operation with arguments given as to the ``Registry`` method."""
        arguments = operation.bind(*args, **kwargs)
        where = {p.name: p.where for p in operation.params}
        missing = [p for p in where if where[p] == "path" and arguments.get(p) is None]
        if missing:
            raise TypeError(f"{operation.name}() over HTTP needs {', '.join(missing)}")
        path = operation.path.format(
            **{k: quote(str(v), safe="") for k, v in arguments.items() if where[k] == "path"}
        )
        query = {k: _text(v) for k, v in arguments.items() if where[k] == "query" and v is not None}
        body = {k: v for k, v in arguments.items() if where[k] == "body"}
        if operation.download is not None:
            return self._download(operation, path, query, arguments[operation.download])
        with self._content(operation, arguments, body) as (content, headers):
            try:
                response = self._http.request(
                    operation.method, path, params=query, content=content, headers=headers
                )
            except httpx.HTTPError as exc:
                raise RegistryError(f"cannot reach the registry at {self.url}: {exc}") from None
        if not response.is_success:
            raise error_from_response(response)
        return None if response.status_code == 204 else orjson.loads(response.content)

    def _download(
        self, operation: Operation, path: str, query: dict[str, str], folder: Any
    ) -> Path:
        """Stream the file a ``download`` operation answers with into ``folder``; its path."""
        try:
            with self._http.stream(operation.method, path, params=query) as response:
                if not response.is_success:
                    response.read()
                    raise error_from_response(response)
                return save_download(response, folder)
        except httpx.HTTPError as exc:
            raise RegistryError(f"cannot reach the registry at {self.url}: {exc}") from None

    @contextlib.contextmanager
    def _content(
        self, operation: Operation, arguments: dict[str, Any], body: dict[str, Any]
    ) -> Iterator[tuple[bytes | IO[bytes] | None, dict[str, str]]]:
        """The request body: the uploaded file (kept open while sent), JSON, or none."""
        if operation.upload is not None:
            path = Path(arguments[operation.upload])
            if not path.is_file():
                raise ArtifactError(f"bundle '{path}' does not exist")
            with path.open("rb") as file:
                yield file, {"Content-Type": "application/gzip"}
        elif operation.method in ("GET", "DELETE"):
            yield None, {}
        else:
            yield orjson.dumps(body), {"Content-Type": "application/json"}

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RegistryClient({self.url!r})"
