"""API keys for serving: one set per environment, stored hashed in the registry.

A key reads ``sya_<id>_<secret>`` and is shown once, when it is made; the registry keeps
only sha256 of the whole text (table ``environment_api_keys``). Creating and revoking
a key write one audit event each. A server holds the hashes of its environment's live
keys in a ``KeyRing`` (refreshed as it polls the registry) and compares a presented
key's hash with every one of them in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..registry import NotFound, Registry, _audit, _lookup
from ..registry._db import WRITE
from ..registry._rows import EnvironmentApiKeyRow

PREFIX = "sya"


@dataclass(frozen=True)
class ApiKey:
    """An API key's public record (the key itself is shown once and never stored)."""

    id: int
    project: str
    environment: str
    name: str
    created_at: str
    created_by: str
    revoked: bool


def hash_key(text: str) -> str:
    """The hex sha256 stored for a key."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@contextmanager
def _session(registry: Registry, write: bool) -> Iterator[Session]:
    engine = registry.engine.execution_options(**{WRITE: True}) if write else registry.engine
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def _info(project: str, env: str, row: EnvironmentApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        project=project,
        environment=env,
        name=row.name,
        created_at=_audit.utc_text(row.created_at),
        created_by=row.created_by,
        revoked=row.revoked_at is not None,
    )


def create_api_key(
    registry: Registry, project: str, env: str, name: str = "default"
) -> tuple[ApiKey, str]:
    """Make a key for ``env``; returns its record and the key text, which is shown only now.

    Raises NotFound for an unknown project or environment, InvalidInput for a bad name.
    """
    _lookup.check_name("API key", name)
    with _session(registry, write=True) as session:
        environment = _lookup.environment(session, _lookup.project(session, project), env)
        row = EnvironmentApiKeyRow(
            environment_id=environment.id,
            name=name,
            secret_hash="0" * 64,
            created_at=_lookup.now(),
            created_by=registry.actor,
        )
        session.add(row)
        session.flush()  # gives the id the key text carries
        text = f"{PREFIX}_{row.id}_{secrets.token_urlsafe(32)}"
        row.secret_hash = hash_key(text)
        _audit.append(
            session,
            registry.actor,
            "apikey.create",
            f"project/{project}/environment/{env}/apikey/{row.id}",
            None,
            {"name": name},
        )
        return _info(project, env, row), text


def _rows(session: Session, project: str, env: str) -> list[EnvironmentApiKeyRow]:
    environment = _lookup.environment(session, _lookup.project(session, project), env)
    query = select(EnvironmentApiKeyRow).where(
        EnvironmentApiKeyRow.environment_id == environment.id
    )
    return list(session.execute(query.order_by(EnvironmentApiKeyRow.id)).scalars())


def list_api_keys(registry: Registry, project: str, env: str) -> list[ApiKey]:
    """Every key of ``env`` (revoked ones too), oldest first."""
    with _session(registry, write=False) as session:
        return [_info(project, env, row) for row in _rows(session, project, env)]


def revoke_api_key(registry: Registry, project: str, env: str, key_id: int) -> ApiKey:
    """Revoke a key of ``env``: servers refuse it from their next poll. NotFound otherwise."""
    with _session(registry, write=True) as session:
        row = next((r for r in _rows(session, project, env) if r.id == key_id), None)
        if row is None:
            raise NotFound(f"environment '{env}' has no API key {key_id}")
        if row.revoked_at is None:
            row.revoked_at = _lookup.now()
            _audit.append(
                session,
                registry.actor,
                "apikey.revoke",
                f"project/{project}/environment/{env}/apikey/{row.id}",
                {"revoked": False},
                {"revoked": True},
            )
        return _info(project, env, row)


def live_key_hashes(registry: Registry, project: str, env: str) -> frozenset[str]:
    """The hashes of ``env``'s keys that are not revoked."""
    with _session(registry, write=False) as session:
        return frozenset(r.secret_hash for r in _rows(session, project, env) if not r.revoked_at)


class KeyRing:
    """The hashes of the keys a server accepts; empty means the routes are open."""

    def __init__(self, hashes: Iterable[str] = ()) -> None:
        self.hashes = tuple(sorted(set(hashes)))

    @classmethod
    def from_keys(cls, keys: Iterable[str]) -> KeyRing:
        """A ring from key texts (an ``--api-key-file``: one key per line, blanks ignored)."""
        return cls(hash_key(k.strip()) for k in keys if k.strip())

    def __bool__(self) -> bool:
        return bool(self.hashes)

    def accepts(self, presented: str | None) -> bool:
        """Whether ``presented`` is one of the keys; compares with every hash, in constant time."""
        if not presented:
            return False
        digest = hash_key(presented)
        found = False
        for stored in self.hashes:  # no early exit: the time does not tell which one matched
            found |= hmac.compare_digest(digest, stored)
        return found


def presented_key(authorization: bytes | None, api_key: bytes | None) -> str | None:
    """The key a request sends as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    if api_key:
        return api_key.decode("latin-1").strip()
    if authorization:
        scheme, _, value = authorization.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None
