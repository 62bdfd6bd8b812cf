"""The one error the client raises."""

from __future__ import annotations


class ClientError(Exception):
    """A call to the environment's models failed, or the app's context is unusable.

    ``model`` is the model called (None for a context error), ``status`` the HTTP status
    the server answered with (None when none came: unreachable, timed out, misconfigured),
    ``kind`` the server's error kind (``NotFound``, ``Unauthorized``, ``SchemaError``...).
    The message never holds the API key.
    """

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        status: int | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(message)
        self.model = model
        self.status = status
        self.kind = kind
