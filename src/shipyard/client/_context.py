"""The context an app runs in: its project, environment, serving URL, API key and configs.

A server that runs the app (``shipyard serve``) binds one per request with ``bind``; code
running anywhere else (a container from the deploy renders, a test, a script) reads the
environment variables below. A bound context wins whole: no field of it is mixed with
the variables.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from ._errors import ClientError

# The environment variables a deployment sets (the key comes from a Secret).
PROJECT = "SHIPYARD_PROJECT"
ENVIRONMENT = "SHIPYARD_ENV"
APP_NAME = "SHIPYARD_APP_NAME"
SERVING_URL = "SHIPYARD_SERVING_URL"
API_KEY = "SHIPYARD_API_KEY"
APP_CONFIG = "SHIPYARD_APP_CONFIG"
ENVIRONMENT_CONFIG = "SHIPYARD_ENVIRONMENT_CONFIG"


@dataclass(frozen=True)
class AppContext:
    """Where an app runs and what belongs to it there.

    ``serving_url`` is the base URL of the server holding the environment's models;
    ``api_key`` is sent to it as ``Authorization: Bearer`` (None: no key is sent) and is
    left out of ``repr``. ``app_config`` belongs to the app's version (it moves with it on
    promotion); ``environment_config`` to the environment (it stays).
    """

    project: str | None = None
    environment: str | None = None
    app: str | None = None
    serving_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    app_config: Mapping[str, Any] = field(default_factory=dict)
    environment_config: Mapping[str, Any] = field(default_factory=dict)


_BOUND: ContextVar[AppContext | None] = ContextVar("shipyard_app_context", default=None)


class Binding:
    """A bound context: leave it with ``reset()``, or use ``bind(...)`` in a ``with``."""

    def __init__(self, bound: AppContext, token: Token[AppContext | None]) -> None:
        self.context = bound
        self._token: Token[AppContext | None] | None = token

    def reset(self) -> None:
        """Restore the context that was current before ``bind`` (a second call does nothing)."""
        if self._token is not None:
            _BOUND.reset(self._token)
            self._token = None

    def __enter__(self) -> AppContext:
        return self.context

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.reset()


def bind(bound: AppContext) -> Binding:
    """Make ``bound`` the context of the running task (a ContextVar) until it is reset.

    ``with bind(ctx): ...`` or ``binding = bind(ctx); ...; binding.reset()``. Tasks and
    threads started inside inherit it (asyncio tasks and Starlette's thread pool copy
    the context); others are not affected.
    """
    if not isinstance(bound, AppContext):
        raise TypeError(f"bind() takes an AppContext, not {type(bound).__name__}")
    return Binding(bound, _BOUND.set(bound))


def context() -> AppContext:
    """The bound context, else one read from the environment variables.

    Raises ClientError naming the variable when SHIPYARD_APP_CONFIG or
    SHIPYARD_ENVIRONMENT_CONFIG is not a JSON object (its text is not shown: it may
    hold secrets).
    """
    bound = _BOUND.get()
    if bound is not None:
        return bound
    return AppContext(
        project=_variable(PROJECT),
        environment=_variable(ENVIRONMENT),
        app=_variable(APP_NAME),
        serving_url=_variable(SERVING_URL),
        api_key=_variable(API_KEY),
        app_config=_json_object(APP_CONFIG),
        environment_config=_json_object(ENVIRONMENT_CONFIG),
    )


def app_config() -> dict[str, Any]:
    """The app config of this app's version in its environment (a copy: change it freely)."""
    return copy.deepcopy(dict(context().app_config))


def environment_config() -> dict[str, Any]:
    """The config of the environment the app runs in (a copy: change it freely)."""
    return copy.deepcopy(dict(context().environment_config))


def _variable(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _json_object(name: str) -> dict[str, Any]:
    text = os.environ.get(name, "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        # The position only: the text itself may hold a secret.
        raise ClientError(
            f"{name} is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(value, dict):
        raise ClientError(f"{name} must be a JSON object ({{...}}), not a {type(value).__name__}")
    return value
