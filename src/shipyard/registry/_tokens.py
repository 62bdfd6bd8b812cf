"""API tokens for the registry's HTTP API: ``shy_<id>_<secret>``, stored as sha256(secret).

The scheme is the registry's one credential scheme (``_credentials``): the id lets
verification fetch one row; the secret is compared in constant time, and an unknown id
costs the same comparison. Roles are ordered: each may do what those before it may.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..errors import InvalidInput, PermissionDenied
from . import _audit
from ._credentials import SECRET, Credential
from ._rows import ApiTokenRow
from ._types import ApiToken

ROLES = ("viewer", "deployer", "admin")
PREFIX = "shy"


def check_role(role: str) -> str:
    """``role``, or InvalidInput when it is not one of ROLES."""
    if role not in ROLES:
        raise InvalidInput(f"role '{role}' is not one of {', '.join(ROLES)}")
    return role


def token_text(token: ApiTokenRow, secret: str) -> str:
    """What the caller presents: ``shy_<id>_<secret>``."""
    return Credential.make(PREFIX, token.id, secret)


def find(session: Session, presented: str) -> ApiTokenRow:
    """The live token row ``presented`` names; PermissionDenied otherwise (never echoing it)."""
    credential = Credential.parse(presented)
    found = (
        session.get(ApiTokenRow, credential.id)
        if credential.prefix == PREFIX and credential.id is not None
        else None
    )
    matches = credential.matches(SECRET, found.secret_hash if found is not None else None)
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
