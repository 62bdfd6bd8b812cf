"""Reading and verifying the hash-chained audit log."""

from __future__ import annotations

from sqlalchemy import select

from ..errors import AuditBroken, InvalidInput
from . import _audit
from ._core import RegistryCore
from ._db import MAX_ID
from ._rows import (
    AuditEventRow,
)
from ._types import (
    AuditAnchor,
    AuditEntry,
    AuditReport,
)


def _event_id(key: object) -> int | None:
    """The event id an anchor's key names (0 is the chain's start), or None if none can."""
    digits = str(key)
    if digits.isascii() and digits.isdigit() and len(digits) <= 10 and int(digits) <= MAX_ID:
        return int(digits)
    return None


class AuditMixin(RegistryCore):
    """Reading and verifying the hash-chained audit log."""

    def audit_list(
        self, limit: int | None = None, object_prefix: str | None = None
    ) -> list[AuditEntry]:
        """Audit events, newest first; ``object_prefix`` such as ``project/demo`` filters them.

        ``limit`` (0 or more) keeps the newest that many; InvalidInput when it is negative.
        """
        if limit is not None and limit < 0:
            raise InvalidInput(f"limit must be 0 or more, not {limit}")
        with self._read() as session:
            query = select(AuditEventRow).order_by(AuditEventRow.id.desc())
            if object_prefix:
                query = query.where(AuditEventRow.object.startswith(object_prefix, autoescape=True))
            if limit is not None:
                # No log holds more events than an id can count; PostgreSQL refuses a
                # LIMIT beyond a BIGINT.
                query = query.limit(min(limit, MAX_ID))
            return [_audit.entry(e) for e in session.execute(query).scalars()]

    def audit_verify(
        self, raise_error: bool = True, anchors: dict[str, str] | None = None
    ) -> AuditReport:
        """Check the audit log's hash chain from the first event to the head.

        ``anchors`` (``{event id: hash}``, as read from a witness by ``audit verify
        --anchors``) must agree with the chain too: a chain rewritten consistently in the
        database still disagrees with what was anchored outside it. Raises AuditBroken
        naming the first broken event (or, with ``raise_error=False``, returns a report
        with ``ok=False``, ``broken_event`` and ``reason``).
        """
        expected = {}
        for key, value in (anchors or {}).items():
            event = _event_id(key)
            if event is None or not isinstance(value, str):
                raise InvalidInput(f"anchors must map event ids to hashes (ids 0 to {MAX_ID})")
            expected[event] = value
        with self._read() as session:
            report = _audit.verify(session)
            if report.ok and expected:
                report = _audit.check_anchors(session, report, expected)
        if not report.ok and raise_error:
            assert report.broken_event is not None and report.reason is not None
            raise AuditBroken(report.broken_event, report.reason)
        return report

    def audit_head(self) -> AuditAnchor:
        """The audit chain's head now (last event id, hash, time): what an anchor records."""
        with self._read() as session:
            return _audit.head(session)

    def audit_anchor(self) -> AuditAnchor:
        """Write the audit head to the registry's witness ($SHIPYARD_AUDIT_ANCHORS).

        Raises InvalidInput when the registry has no witness configured, AuditBroken when
        the witness already holds a different hash for that event, StoreError when it
        cannot be written.
        """
        if self.witness is None:
            raise InvalidInput(
                "this registry has no audit witness: set SHIPYARD_AUDIT_ANCHORS (a folder or "
                "s3://bucket/prefix) where it runs, or use `audit anchor --to LOCATION`"
            )
        with self._read() as session:
            anchor = _audit.head(session)
        self.witness.write(anchor)
        return anchor
