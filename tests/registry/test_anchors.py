"""Audit anchors: a rewrite of the whole chain verifies alone, and fails against its anchors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shipyard.registry import AuditAnchor, AuditBroken, FolderWitness, Registry, S3Witness, _audit
from shipyard.registry._rows import AuditEventRow, AuditHeadRow

from .conftest import MODEL
from .test_store import s3_client, s3_endpoint  # noqa: F401  (fixtures used here)


@pytest.fixture()
def witnessed(demo: Registry, tmp_path: Path) -> Registry:
    """The demo registry anchoring to a folder after each promotion and rollback."""
    return Registry(demo.engine, demo.store, demo.actor, witness=FolderWitness(tmp_path / "w"))


def rewrite_whole_chain(engine: Engine, actor: str) -> None:
    """Put ``actor`` on every event and re-hash the chain and the head, as an attacker with
    write access to the database could: the chain stays consistent in itself."""
    with Session(engine) as session, session.begin():
        prev = _audit.GENESIS_HASH
        events = session.execute(sa.select(AuditEventRow).order_by(AuditEventRow.id)).scalars()
        for event in events:
            event.actor = actor
            event.prev_hash = prev
            event.hash = _audit._event_hash(prev, event)
            prev = event.hash
        session.execute(sa.update(AuditHeadRow).values(last_hash=prev).where(AuditHeadRow.id == 1))


def anchors_in(folder: Path) -> dict[str, str]:
    found = {}
    for path in sorted(folder.glob("anchor-*.json")):
        body = json.loads(path.read_text())
        found[str(body["sequence"])] = body["hash"]
    return found


def test_promotion_and_rollback_anchor_the_head(witnessed: Registry, tmp_path: Path) -> None:
    witnessed.add_component("demo", "integration", MODEL, "v1")
    witnessed.promote("demo", "integration")
    head = witnessed.audit_head()
    files = sorted((tmp_path / "w").glob("anchor-*.json"))
    assert [p.name for p in files] == [f"anchor-{head.sequence:012d}.json"]
    assert json.loads(files[0].read_text())["hash"] == head.hash
    assert not os.access(files[0], os.W_OK) or os.geteuid() == 0  # written read-only
    witnessed.rollback("demo", "uat", allow_empty=True)
    assert len(anchors_in(tmp_path / "w")) == 2
    report = witnessed.audit_verify(anchors=anchors_in(tmp_path / "w"))
    assert report.ok and report.events == witnessed.audit_head().sequence


def test_a_consistently_rewritten_chain_fails_against_its_anchors(
    witnessed: Registry, engine: Engine, tmp_path: Path
) -> None:
    witnessed.add_component("demo", "integration", MODEL, "v1")
    witnessed.promote("demo", "integration")
    anchored = witnessed.audit_head().sequence
    witnessed.set_environment_config("demo", "uat", {"reports": "/r"})
    rewrite_whole_chain(engine, "mallory")
    assert witnessed.audit_verify().ok  # the chain alone cannot tell
    with pytest.raises(AuditBroken) as broken:
        witnessed.audit_verify(anchors=anchors_in(tmp_path / "w"))
    assert broken.value.event_id == anchored
    assert "differs from the one anchored outside the database" in str(broken.value)


def test_a_truncated_log_fails_against_its_anchors(
    witnessed: Registry, engine: Engine, tmp_path: Path
) -> None:
    witnessed.add_component("demo", "integration", MODEL, "v1")
    witnessed.promote("demo", "integration")
    last = witnessed.audit_head().sequence
    with Session(engine) as session, session.begin():
        session.execute(sa.delete(AuditEventRow).where(AuditEventRow.id == last))
        previous = session.get(AuditEventRow, last - 1)
        assert previous is not None
        session.execute(
            sa.update(AuditHeadRow)
            .values(last_id=last - 1, last_hash=previous.hash)
            .where(AuditHeadRow.id == 1)
        )
    assert witnessed.audit_verify().ok
    report = witnessed.audit_verify(raise_error=False, anchors=anchors_in(tmp_path / "w"))
    assert (report.ok, report.broken_event) == (False, last)
    assert "no longer holds" in (report.reason or "")


def test_an_anchor_is_written_once_and_never_replaced(demo: Registry, tmp_path: Path) -> None:
    witness = FolderWitness(tmp_path / "once")
    registry = Registry(demo.engine, demo.store, demo.actor, witness=witness)
    first = registry.audit_anchor()
    assert registry.audit_anchor() == first or registry.audit_anchor().sequence == first.sequence
    forged = type(first)(first.sequence, "f" * 64, first.at)
    with pytest.raises(AuditBroken, match="the chain was rewritten"):
        witness.write(forged)
    assert anchors_in(tmp_path / "once") == {str(first.sequence): first.hash}


def test_anchoring_needs_a_witness(demo: Registry) -> None:
    from shipyard.errors import InvalidInput

    with pytest.raises(InvalidInput, match="SHIPYARD_AUDIT_ANCHORS"):
        demo.audit_anchor()
    with pytest.raises(InvalidInput, match="anchors must map event ids to hashes"):
        demo.audit_verify(anchors={"one": "x"})


def test_an_s3_witness_writes_each_anchor_once_on_a_real_s3_endpoint(
    s3_client: Any,  # noqa: F811  (the fixture imported above)
) -> None:
    witness = S3Witness(f"s3://{s3_client.bucket}/audit", client=s3_client)
    first = AuditAnchor(3, "a" * 64, "2026-12-01T00:00:00.000000Z")
    witness.write(first)
    witness.write(first)  # the same anchor again: harmless
    with pytest.raises(AuditBroken, match="the chain was rewritten"):
        witness.write(AuditAnchor(3, "b" * 64, first.at))
    witness.write(AuditAnchor(7, "c" * 64, first.at))
    assert [(a.sequence, a.hash[0]) for a in witness.read_all()] == [(3, "a"), (7, "c")]
