"""API tokens for the registry's HTTP API, with roles."""

from __future__ import annotations

from sqlalchemy import select

from ..errors import InvalidInput, NotFound
from . import _audit, _tokens
from ._core import RegistryCore
from ._credentials import expires_at, new_secret
from ._db import storable_id
from ._lookup import check_name, now
from ._rows import ApiTokenRow
from ._types import ApiToken


class TokensMixin(RegistryCore):
    """API tokens for the registry's HTTP API, with roles."""

    def create_token(
        self,
        name: str,
        role: str,
        projects: list[str] | None = None,
        environments: list[str] | None = None,
        expires_in_days: int | None = None,
    ) -> tuple[ApiToken, str]:
        """Create an API token; returns its record and the token text, shown only now.

        ``role`` is viewer, deployer or admin. Only a sha256 of the secret is stored.
        ``projects`` / ``environments`` limit what its requests may name (a server refuses
        anything else with 403); ``expires_in_days`` (1 to 3650) makes it stop verifying
        then (401 naming the token and the time).
        """
        check_name("token", name)
        _tokens.check_role(role)
        scope = {
            what: [check_name(what[:-1], n) for n in names] if names is not None else None
            for what, names in (("projects", projects), ("environments", environments))
        }
        for what, names in scope.items():
            if names is not None and not names:
                raise InvalidInput(f"{what}: give at least one name, or none to allow any")
        expiry = expires_at(expires_in_days)
        secret, secret_hash = new_secret()
        with self._write() as session:
            token = ApiTokenRow(
                name=name,
                role=role,
                secret_hash=secret_hash,
                created_at=now(),
                created_by=self.actor,
                projects=scope["projects"],
                environments=scope["environments"],
                expires_at=expiry,
            )
            session.add(token)
            session.flush()
            recorded = {"name": name, "role": role, **scope}
            recorded["expires_at"] = _audit.utc_text(expiry) if expiry else None
            self._record(session, "token.create", f"token/{token.id}", None, recorded)
            return _tokens.info(token), _tokens.token_text(token, secret)

    def verify_token(self, token: str, role: str = "viewer") -> ApiToken:
        """The token's record if it is valid and its role is at least ``role``.

        Compares in constant time. Raises PermissionDenied (the message never echoes the
        token) when it is malformed, unknown, revoked, or its role is too low.
        """
        _tokens.check_role(role)
        with self._read() as session:
            found = _tokens.find(session, token)
        _tokens.require(found, role)
        return _tokens.info(found)

    def list_tokens(self) -> list[ApiToken]:
        """Every API token's public record (never the secret)."""
        with self._read() as session:
            tokens = session.execute(select(ApiTokenRow).order_by(ApiTokenRow.id)).scalars()
            return [_tokens.info(t) for t in tokens]

    def revoke_token(self, token_id: int) -> ApiToken:
        """Revoke a token: it stops verifying at once. NotFound for an unknown id."""
        with self._write() as session:
            token = (
                session.get(ApiTokenRow, token_id, with_for_update=True)
                if storable_id(token_id)
                else None
            )
            if token is None:
                raise NotFound(f"API token {token_id} does not exist")
            if token.revoked_at is None:
                token.revoked_at = now()
                session.flush()
                self._record(
                    session,
                    "token.revoke",
                    f"token/{token.id}",
                    {"revoked": False},
                    {"revoked": True},
                )
            return _tokens.info(token)
