"""Trusted signing keys: the public keys whose signatures the signature policy accepts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import Conflict, InvalidInput, NotFound, SignatureError
from . import _audit, _signing
from ._core import RegistryCore
from ._lookup import check_name, listing, now
from ._rows import TrustedKeyRow
from ._types import TrustedKey


def _info(row: TrustedKeyRow) -> TrustedKey:
    return TrustedKey(
        name=row.name,
        key_id=row.key_id,
        public_key=row.public_key,
        created_at=_audit.utc_text(row.created_at),
        created_by=row.created_by,
        revoked=row.revoked_at is not None,
        revoked_at=_audit.utc_text(row.revoked_at) if row.revoked_at else None,
        revoked_by=row.revoked_by,
    )


class TrustedKeysMixin(RegistryCore):
    """Trusted signing keys: trust, list and revoke (admin only, each audited)."""

    def trust_key(self, name: str, public_key: str) -> TrustedKey:
        """Trust an Ed25519 public key (PEM text) under ``name``; returns its record.

        Needs the admin role. Raises InvalidInput for a text that is not a public key and
        Conflict when the name or the key is already known (a revoked key stays revoked:
        trust it again under a new key pair, not the same one).
        """
        self._require_role("admin", "trusting a signing key")
        check_name("key", name)
        if not isinstance(public_key, str) or "-----BEGIN PUBLIC KEY-----" not in public_key:
            raise InvalidInput("the key must be an Ed25519 public key in PEM form")
        try:
            key_id = _signing.public_key_id(public_key)
        except SignatureError as exc:
            raise InvalidInput(f"not a usable public key: {exc}") from None
        with self._write() as session:
            for row in session.execute(select(TrustedKeyRow)).scalars():
                if row.name == name:
                    raise Conflict(f"a key named '{name}' is already trusted")
                if row.key_id == key_id:
                    state = "revoked" if row.revoked_at else "trusted"
                    raise Conflict(f"this key is already {state} as '{row.name}' ({key_id})")
            row = TrustedKeyRow(
                name=name,
                key_id=key_id,
                public_key=public_key.strip() + "\n",
                created_at=now(),
                created_by=self.actor,
            )
            session.add(row)
            session.flush()
            self._record(session, "key.trust", f"key/{name}", None, {"key_id": key_id})
            return _info(row)

    def list_trusted_keys(self) -> list[TrustedKey]:
        """Every trusted key, revoked ones included, oldest first."""
        with self._read() as session:
            rows = session.execute(select(TrustedKeyRow).order_by(TrustedKeyRow.id)).scalars()
            return [_info(row) for row in rows]

    def revoke_trusted_key(self, name: str) -> TrustedKey:
        """Stop trusting a key (by name or key id); returns its record. Needs the admin role.

        Versions it signed can no longer enter an environment that requires signatures,
        and serving processes refuse new revisions that hold them. Raises NotFound.
        """
        self._require_role("admin", "revoking a signing key")
        with self._write() as session:
            row = self._trusted_key(session, name)
            if row.revoked_at is None:
                row.revoked_at, row.revoked_by = now(), self.actor
                session.flush()
                self._record(
                    session,
                    "key.revoke",
                    f"key/{row.name}",
                    {"revoked": False},
                    {"revoked": True, "key_id": row.key_id},
                )
            return _info(row)

    def _trusted_key(self, session: Session, name: str) -> TrustedKeyRow:
        rows = list(session.execute(select(TrustedKeyRow)).scalars())
        for row in rows:
            if name in (row.name, row.key_id):
                return row
        raise NotFound(f"no trusted key '{name}' (keys: {listing([r.name for r in rows])})")
