"""API tokens for the registry's HTTP API: ``shy_<id>_<secret>``, stored as sha256(secret).

The id lets verification fetch one row; the secret is compared with
``hmac.compare_digest``, and an unknown id costs the same comparison, so timing tells
nothing about which part was wrong. Roles are ordered: each may do what those before it may.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy.orm import Session

from ..errors import InvalidInput, PermissionDenied
from . import _audit
from ._rows import ApiTokenRow
from ._types import ApiToken

ROLES = ("viewer", "deployer", "admin")
PREFIX = "shy"
_NO_HASH = "0" * 64


def check_role(role: str) -> str:
    """``role``, or InvalidInput when it is not one of ROLES."""
    if role not in ROLES:
        raise InvalidInput(f"role '{role}' is not one of {', '.join(ROLES)}")
    return role


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> tuple[str, str]:
    """A fresh random secret and the hash to store for it."""
    secret = secrets.token_urlsafe(32)
    return secret, _hash(secret)


def token_text(token: ApiTokenRow, secret: str) -> str:
    """What the caller presents: ``shy_<id>_<secret>``."""
    return f"{PREFIX}_{token.id}_{secret}"


def find(session: Session, presented: str) -> ApiTokenRow:
    """The live token row ``presented`` names; PermissionDenied otherwise (never echoing it)."""
    prefix, _, rest = (presented or "").partition("_")
    token_id, _, secret = rest.partition("_")
    found = (
        session.get(ApiTokenRow, int(token_id)) if prefix == PREFIX and token_id.isdigit() else None
    )
    stored = found.secret_hash if found is not None else _NO_HASH
    matches = hmac.compare_digest(_hash(secret), stored)
    if found is None or not matches or found.revoked_at is not None:
        raise PermissionDenied("invalid or revoked API token")
    return found


def require(token: ApiTokenRow, role: str) -> None:
    """PermissionDenied unless ``token``'s role is at least ``role``."""
    if ROLES.index(token.role) < ROLES.index(check_role(role)):
        raise PermissionDenied(f"token '{token.name}' has role {token.role}; this needs {role}")


def info(token: ApiTokenRow) -> ApiToken:
    """The public record of a token."""
    return ApiToken(
        id=token.id,
        name=token.name,
        role=token.role,
        created_at=_audit.utc_text(token.created_at),
        created_by=token.created_by,
        revoked=token.revoked_at is not None,
    )
