"""``predict``: call a model of the app's own environment by name, over HTTP.

The rows go to the serving server's predict route as MLflow's ``dataframe_records``
(one object a row), and its answer, ``{"predictions": [records]}``, comes back as a
list of dicts. Standard library only (urllib).

What the key must never do: travel to another address. So the request ignores the
proxy variables (the serving URL is the environment's own server) and follows no
redirect; errors name the model, the status and the server's reason, never the key.
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from ._context import API_KEY, ENVIRONMENT, PROJECT, SERVING_URL, AppContext, context
from ._errors import ClientError

_MAX_ERROR_BODY = 64 * 1024  # what is read of an error answer to find its reason


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: the Authorization header would go along with it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


def predict(
    model: str, rows: Sequence[Mapping[str, Any]], *, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Score ``rows`` (records: ``[{column: value}, ...]``) with ``model`` of this environment.

    Returns one dict of outputs per row, in order (``[{"p_malignant": 0.93, ...}]``).
    numpy scalars and arrays, dates and datetimes in ``rows`` are sent as plain JSON values.
    ``timeout`` is in seconds, for connecting and for the answer.
    Raises ClientError naming the model and the status and reason: the context lacks a
    serving URL, project or environment; the server is unreachable or too slow; it
    refuses the key (401), does not serve the model (404) or rejects the rows (422).
    """
    if not isinstance(model, str) or not model:
        raise ClientError(f"predict(): the model must be a name, not {model!r}")
    records = _records(model, rows)
    if not records:
        return []
    where = context()
    url = _predict_url(model, where)
    body = _encode(model, records)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if where.api_key:
        headers["Authorization"] = f"Bearer {where.api_key}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            document = _decode(model, answer.read())
    except urllib.error.HTTPError as exc:
        refused = _refused(model, exc, where)
        exc.close()
        raise refused from None
    except TimeoutError:
        raise ClientError(
            f"predict {model!r}: no answer from {_shown(where)} within {timeout:g} s", model=model
        ) from None
    except urllib.error.URLError as exc:
        raise ClientError(
            f"predict {model!r}: cannot reach the serving server at {_shown(where)}: "
            f"{_reason(exc.reason)}",
            model=model,
        ) from None
    except (http.client.HTTPException, OSError) as exc:
        raise ClientError(
            f"predict {model!r}: the connection to {_shown(where)} failed: {_reason(exc)}",
            model=model,
        ) from None
    predictions = document.get("predictions") if isinstance(document, dict) else None
    if not isinstance(predictions, list) or not all(isinstance(p, dict) for p in predictions):
        raise ClientError(
            f"predict {model!r}: {_shown(where)} answered without a predictions list "
            "(is SHIPYARD_SERVING_URL a shipyard serve?)",
            model=model,
        )
    return predictions


def _records(model: str, rows: Any) -> list[Mapping[str, Any]]:
    if isinstance(rows, Mapping | str | bytes) or not isinstance(rows, Sequence):
        raise ClientError(
            f"predict {model!r}: rows must be a list of records ([{{column: value}}, ...]), "
            f"not a {type(rows).__name__}",
            model=model,
        )
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ClientError(
                f"predict {model!r}: row {i} is a {type(row).__name__}, not a record "
                "({column: value})",
                model=model,
            )
    return list(rows)


def _predict_url(model: str, where: AppContext) -> str:
    """The predict route of ``model`` in the context's environment; ClientError when the
    context cannot say where that is."""
    for value, variable, what in (
        (where.serving_url, SERVING_URL, "serving URL"),
        (where.project, PROJECT, "project"),
        (where.environment, ENVIRONMENT, "environment"),
    ):
        if not value:
            raise ClientError(
                f"predict {model!r}: no {what}: set {variable} (shipyard serve and the "
                "deploy renders set it for an app)",
                model=model,
            )
    assert where.serving_url and where.project and where.environment
    base = urllib.parse.urlsplit(where.serving_url)
    if base.scheme not in ("http", "https") or not base.hostname:
        raise ClientError(
            f"predict {model!r}: {SERVING_URL} must be an http:// or https:// URL with a host",
            model=model,
        )
    parts = [
        "api/v1/projects",
        urllib.parse.quote(where.project, safe=""),
        "environments",
        urllib.parse.quote(where.environment, safe=""),
        "models",
        urllib.parse.quote(model, safe=""),
        "predict",
    ]
    return where.serving_url.rstrip("/") + "/" + "/".join(parts)


def _plain(value: Any) -> Any:
    """What JSON cannot hold natively, as JSON: numpy values, dates, sets."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy arrays and scalars (a scalar's tolist is its item)
        return value.tolist()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"a {type(value).__name__} cannot be sent as JSON")


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities (which JSON cannot carry) as None: a missing value."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _encode(model: str, records: list[Mapping[str, Any]]) -> bytes:
    try:
        plain = json.loads(json.dumps(list(map(dict, records)), default=_plain))
    except (TypeError, ValueError) as exc:
        raise ClientError(
            f"predict {model!r}: the rows cannot be sent: {exc}", model=model
        ) from None
    rows = [{column: _finite(v) for column, v in row.items()} for row in plain]
    return json.dumps({"dataframe_records": rows}, allow_nan=False).encode("utf-8")


def _decode(model: str, body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise ClientError(f"predict {model!r}: the answer is not JSON", model=model) from None


def _refused(model: str, error: urllib.error.HTTPError, where: AppContext) -> ClientError:
    """The ClientError of an error answer: its status, the server's error kind and reason."""
    status = error.code
    kind, reason = None, error.reason
    try:
        document = json.loads(error.read(_MAX_ERROR_BODY))
    except (ValueError, OSError):
        document = None
    if isinstance(document, dict):
        kind = document.get("error") if isinstance(document.get("error"), str) else None
        message = document.get("message")
        reason = message if isinstance(message, str) else (kind or reason)
    if 300 <= status < 400:
        reason = (
            "the server redirects, and the client follows no redirect (the API key would "
            f"go along): set {SERVING_URL} to the server's own address"
        )
    elif status == 401:
        reason = (
            f"{reason} (the API key given was refused)"
            if where.api_key
            else f"{reason} (no API key is set: set {API_KEY})"
        )
    shown = f"{status} {kind}" if kind else str(status)
    text = _without_key(f"predict {model!r}: {shown}: {reason}", where.api_key)
    return ClientError(text, model=model, status=status, kind=kind)


def _shown(where: AppContext) -> str:
    """The serving URL as errors show it: without any user or password in it."""
    url = urllib.parse.urlsplit(where.serving_url or "")
    host = url.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{url.port}" if url.port else host
    return urllib.parse.urlunsplit((url.scheme, netloc, url.path, "", ""))


def _reason(reason: object) -> str:
    return str(reason) or type(reason).__name__


def _without_key(text: str, key: str | None) -> str:
    # The server never echoes a key; this holds even for one that would.
    return text.replace(key, "***") if key else text
