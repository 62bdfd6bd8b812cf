"""Serving API keys: one set per environment, shown once, stored as a digest, audited.

A key reads ``sya_<id>_<secret>`` (the registry's one credential scheme, see
``_credentials``): only sha256 of the secret is stored. Keys made before migration 0004
keep sha256 of their whole text and verify by that rule until revoked. A server does
not query the database per request: it reads ``api_key_digests`` as it polls and checks
presented keys in memory.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import NotFound
from . import _audit, _lookup
from ._core import RegistryCore
from ._credentials import SECRET, Credential, aware, expires_at, new_secret
from ._rows import EnvironmentApiKeyRow
from ._types import ApiKey, ApiKeyDigest

PREFIX = "sya"


def _object(project: str, env: str, key_id: int) -> str:
    """The audit object of a key."""
    return f"project/{project}/environment/{env}/apikey/{key_id}"


def _info(project: str, env: str, row: EnvironmentApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        project=project,
        environment=env,
        name=row.name,
        created_at=_audit.utc_text(row.created_at),
        created_by=row.created_by,
        revoked=row.revoked_at is not None,
        expires_at=_audit.utc_text(row.expires_at) if row.expires_at else None,
    )


def _rows(session: Session, project: str, env: str) -> list[EnvironmentApiKeyRow]:
    """Every key row of ``env``, oldest first; NotFound for an unknown project or environment."""
    environment = _lookup.environment(session, _lookup.project(session, project), env)
    query = select(EnvironmentApiKeyRow).where(
        EnvironmentApiKeyRow.environment_id == environment.id
    )
    return list(session.execute(query.order_by(EnvironmentApiKeyRow.id)).scalars())


class ApiKeysMixin(RegistryCore):
    """Serving API keys: one set per environment, shown once, stored as a digest, audited."""

    def create_api_key(
        self, project: str, env: str, name: str = "default", expires_in_days: int | None = None
    ) -> tuple[ApiKey, str]:
        """Make an API key for serving ``env``; returns its record and the key, shown only now.

        The key reads ``sya_<id>_<secret>``; only sha256 of the secret is stored.
        ``expires_in_days`` (1 to 3650): servers following the environment stop accepting
        it then, from their next poll. Raises NotFound for an unknown project or
        environment, InvalidInput for a bad name or expiry.
        """
        _lookup.check_name("API key", name)
        expiry = expires_at(expires_in_days)
        secret, secret_hash = new_secret()
        with self._write() as session:
            environment = _lookup.environment(session, _lookup.project(session, project), env)
            row = EnvironmentApiKeyRow(
                environment_id=environment.id,
                name=name,
                secret_hash=secret_hash,
                hash_scheme=SECRET,
                created_at=_lookup.now(),
                created_by=self.actor,
                expires_at=expiry,
            )
            session.add(row)
            session.flush()  # gives the id the key text carries
            self._record(
                session, "apikey.create", _object(project, env, row.id), None, {"name": name}
            )
            return _info(project, env, row), Credential.make(PREFIX, row.id, secret)

    def list_api_keys(self, project: str, env: str) -> list[ApiKey]:
        """Every API key of ``env`` (revoked ones too), oldest first; never the key itself."""
        with self._read() as session:
            return [_info(project, env, row) for row in _rows(session, project, env)]

    def revoke_api_key(self, project: str, env: str, key_id: int) -> ApiKey:
        """Revoke an API key of ``env``: servers refuse it from their next poll.

        Revoking a revoked key changes nothing. NotFound when ``env`` has no such key.
        """
        with self._write() as session:
            environment = _lookup.environment(session, _lookup.project(session, project), env)
            query = select(EnvironmentApiKeyRow).where(
                EnvironmentApiKeyRow.environment_id == environment.id,
                EnvironmentApiKeyRow.id == key_id,
            )
            row = _lookup.one(session, query, lock=True)
            if row is None:
                raise NotFound(f"environment '{env}' has no API key {key_id}")
            if row.revoked_at is None:
                row.revoked_at = _lookup.now()
                session.flush()
                self._record(
                    session,
                    "apikey.revoke",
                    _object(project, env, row.id),
                    {"revoked": False},
                    {"revoked": True},
                )
            return _info(project, env, row)

    def api_key_digests(self, project: str, env: str) -> list[ApiKeyDigest]:
        """The digests of ``env``'s live API keys: what a server checks presented keys against.

        Each names its key's id and hash scheme; revoked and expired keys are left out.
        """
        moment = _lookup.now()
        with self._read() as session:
            return [
                ApiKeyDigest(id=row.id, scheme=row.hash_scheme, digest=row.secret_hash)
                for row in _rows(session, project, env)
                if row.revoked_at is None
                and (row.expires_at is None or aware(row.expires_at) > moment)
            ]
