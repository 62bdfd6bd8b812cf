"""API tokens for the registry's HTTP API: ``shy_<id>_<secret>``, stored as sha256(secret).

The scheme is the registry's one credential scheme (``_credentials``): the id lets
verification fetch one row; the secret is compared in constant time, and an unknown id
costs the same comparison. Roles are ordered: each may do what those before it may.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..errors import InvalidInput, PermissionDenied
from . import _audit
from ._credentials import SECRET, Credential, aware
from ._lookup import now
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
    if found.expires_at is not None and aware(found.expires_at) <= now():
        raise PermissionDenied(
            f"API token '{found.name}' expired at {_audit.utc_text(found.expires_at)}"
        )
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
        projects=list(token.projects) if token.projects is not None else None,
        environments=list(token.environments) if token.environments is not None else None,
        expires_at=_audit.utc_text(token.expires_at) if token.expires_at else None,
    )


def scope_refusal(token: ApiToken, project: str | None, environments: list[str]) -> str | None:
    """Why ``token`` may not act on ``project`` and ``environments``, or None when it may.

    ``project`` None: the operation names no project, which a token limited to projects
    may not call (it could reach any project's data).
    """
    if token.projects is None and token.environments is None:
        return None
    if token.projects is not None:
        limited = ", ".join(token.projects)
        if project is None:
            return f"token '{token.name}' is limited to project(s) {limited}; this names none"
        if project not in token.projects:
            return f"token '{token.name}' is limited to project(s) {limited}, not '{project}'"
    if token.environments is not None:
        outside = [e for e in environments if e not in token.environments]
        if outside:
            return (
                f"token '{token.name}' is limited to environment(s) "
                f"{', '.join(token.environments)}, not '{outside[0]}'"
            )
    return None
