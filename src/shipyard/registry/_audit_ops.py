"""Reading and verifying the hash-chained audit log."""

from __future__ import annotations

from sqlalchemy import select

from ..errors import AuditBroken
from . import _audit
from ._core import RegistryCore
from ._rows import (
    AuditEventRow,
)
from ._types import (
    AuditEntry,
    AuditReport,
)


class AuditMixin(RegistryCore):
    """Reading and verifying the hash-chained audit log."""

    def audit_list(
        self, limit: int | None = None, object_prefix: str | None = None
    ) -> list[AuditEntry]:
        """Audit events, newest first; ``object_prefix`` such as ``project/demo`` filters them."""
        with self._read() as session:
            query = select(AuditEventRow).order_by(AuditEventRow.id.desc())
            if object_prefix:
                query = query.where(AuditEventRow.object.startswith(object_prefix, autoescape=True))
            if limit is not None:
                query = query.limit(limit)
            return [_audit.entry(e) for e in session.execute(query).scalars()]

    def audit_verify(self, raise_error: bool = True) -> AuditReport:
        """Check the audit log's hash chain from the first event to the head.

        Raises AuditBroken naming the first broken event (or, with ``raise_error=False``,
        returns a report with ``ok=False``, ``broken_event`` and ``reason``).
        """
        with self._read() as session:
            report = _audit.verify(session)
        if not report.ok and raise_error:
            assert report.broken_event is not None and report.reason is not None
            raise AuditBroken(report.broken_event, report.reason)
        return report
