"""The audit log: append-only and hash-chained.

Event ``n`` stores ``hash = sha256(prev_hash + canonical JSON of (id, at, actor, action,
object, before, after))`` where ``prev_hash`` is event ``n-1``'s hash (64 zeros for the
first). The ``audit_head`` row names the last event; appending locks it (``SELECT … FOR
UPDATE``), so concurrent writers extend the chain one after the other, with ids 1, 2, 3 ….

``verify`` walks the chain and reports the first event that fails: an edited event (its
hash no longer matches), a deleted one (a gap in the ids, or a head pointing past the
end), a reordered or replaced one (its ``prev_hash`` no longer matches its predecessor).
Anyone able to rewrite every row and the head can forge a consistent chain: record the
head hash outside the database (``AuditReport.head_hash``) to detect that too.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ._rows import AuditEventRow, AuditHeadRow
from ._types import AuditAnchor, AuditEntry, AuditReport

GENESIS_HASH = "0" * 64


def utc_text(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds; a naive time (SQLite) is taken as UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "Z"


def as_json_data(value: Any) -> Any:
    """``value`` as the database will give it back (tuples become lists, keys strings)."""
    return None if value is None else json.loads(json.dumps(value))


def _event_hash(prev_hash: str, event: AuditEventRow) -> str:
    body = {
        "id": event.id,
        "at": utc_text(event.at),
        "actor": event.actor,
        "action": event.action,
        "object": event.object,
        "before": event.before,
        "after": event.after,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


def append(
    session: Session, actor: str, action: str, object: str, before: Any, after: Any
) -> AuditEventRow:
    """Add one event at the end of the chain, in the caller's transaction.

    Call it last in a transaction: it locks the head row until commit.
    """
    head = session.execute(
        select(AuditHeadRow)
        .where(AuditHeadRow.id == 1)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    event = AuditEventRow(
        id=head.last_id + 1,
        at=datetime.now(UTC),
        actor=actor,
        action=action,
        object=object,
        before=as_json_data(before),
        after=as_json_data(after),
        prev_hash=head.last_hash,
    )
    event.hash = _event_hash(head.last_hash, event)
    session.add(event)
    head.last_id = event.id
    head.last_hash = event.hash
    session.flush()
    return event


def entry(event: AuditEventRow) -> AuditEntry:
    """The public form of an event."""
    return AuditEntry(
        id=event.id,
        at=utc_text(event.at),
        actor=event.actor,
        action=event.action,
        object=event.object,
        before=event.before,
        after=event.after,
        hash=event.hash,
    )


def verify(session: Session) -> AuditReport:
    """Walk the whole chain; the report names the first broken event and why."""
    expected_id = 1
    prev_hash = GENESIS_HASH

    def broken(event_id: int, reason: str) -> AuditReport:
        return AuditReport(
            ok=False,
            events=expected_id - 1,
            head_hash=prev_hash,
            broken_event=event_id,
            reason=reason,
        )

    events = session.execute(
        select(AuditEventRow).order_by(AuditEventRow.id).execution_options(yield_per=500)
    ).scalars()
    for event in events:
        if event.id != expected_id:
            missing = (
                f"{expected_id}"
                if event.id == expected_id + 1
                else (f"{expected_id} to {event.id - 1}")
            )
            return broken(expected_id, f"event {missing} is missing (deleted?)")
        if event.prev_hash != prev_hash:
            return broken(
                event.id,
                "it does not follow the event before it (replaced, reordered or re-hashed?)",
            )
        if _event_hash(prev_hash, event) != event.hash:
            return broken(event.id, "its content does not match its hash (edited?)")
        prev_hash = event.hash
        expected_id += 1
    head = session.get(AuditHeadRow, 1)
    last = expected_id - 1
    if head is None:
        return broken(last + 1, "the audit head row is missing")
    if head.last_id > last:
        missing = f"{last + 1}" if head.last_id == last + 1 else f"{last + 1} to {head.last_id}"
        return broken(last + 1, f"event {missing} is missing (log truncated?)")
    if head.last_id < last:
        return broken(
            head.last_id + 1, f"it was added outside the registry (the head ends at {head.last_id})"
        )
    if head.last_hash != prev_hash:
        return broken(last, "the audit head's hash does not match this last event")
    return AuditReport(ok=True, events=last, head_hash=prev_hash)


def head(session: Session) -> AuditAnchor:
    """The chain's head as an anchor: last event id, its hash and time (0 and zeros if empty)."""
    row = session.get(AuditHeadRow, 1)
    if row is None or row.last_id == 0:
        return AuditAnchor(0, GENESIS_HASH, utc_text(datetime.now(UTC)))
    event = session.get(AuditEventRow, row.last_id)
    at = utc_text(event.at) if event is not None else utc_text(datetime.now(UTC))
    return AuditAnchor(row.last_id, row.last_hash, at)


def check_anchors(session: Session, report: AuditReport, anchors: dict[int, str]) -> AuditReport:
    """``report`` (of an intact chain), or a broken one naming the first anchored event
    whose hash the log no longer has, or that the log no longer holds."""
    for sequence in sorted(anchors):
        if sequence == 0:
            continue
        event = session.get(AuditEventRow, sequence)
        if event is None:
            reason = f"an anchor records event {sequence}, which the log no longer holds"
        elif event.hash != anchors[sequence]:
            reason = "its hash differs from the one anchored outside the database (rewritten?)"
        else:
            continue
        return AuditReport(
            ok=False,
            events=report.events,
            head_hash=report.head_hash,
            broken_event=sequence,
            reason=reason,
        )
    return report
