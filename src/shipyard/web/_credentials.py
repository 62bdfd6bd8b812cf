"""The credential a request presents: one reading for the registry API and for serving.

The registry API takes an API token as ``Authorization: Bearer <token>``; serving takes an
environment's API key that way or as ``X-API-Key: <key>``. What the credential is worth
(hash, constant-time compare, role) is for the server's own key or token store to say.
"""

from __future__ import annotations

from ._asgi import Scope


def presented_credential(scope: Scope, *, api_key_header: bool = False) -> str | None:
    """The credential in the request's headers, or None when it presents none.

    ``Authorization: Bearer X`` (the scheme in any case); with ``api_key_header``,
    ``X-API-Key: X`` too, which wins when both are sent. Surrounding blanks are dropped.
    """
    authorization: bytes | None = None
    api_key: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            if authorization is None:
                authorization = value
        elif name == b"x-api-key" and api_key_header and api_key is None:
            api_key = value
    if api_key is not None:
        return bytes(api_key).decode("latin-1").strip() or None
    if authorization is not None:
        scheme, _, value = bytes(authorization).decode("latin-1").partition(" ")
        if scheme.lower() == "bearer":
            return value.strip() or None
    return None
