"""The audit log: one event per change, hash-chained; tampering is found and named."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shipyard.registry import AuditBroken, Registry, _audit
from shipyard.registry._rows import AuditEventRow

from .conftest import MODEL


@pytest.fixture()
def registry(bare_registry: Registry) -> Registry:
    """A registry trusting no key: these tests count and number every event from the first."""
    return bare_registry


@pytest.fixture()
def history(demo: Registry) -> Registry:
    """The demo project after a few changes: 1 project + 6 model + 3 environment events."""
    demo.add_component("demo", "integration", MODEL, "v1")
    demo.promote("demo", "integration")
    demo.set_setting("replicas", 2, "demo")
    return demo


def test_every_change_is_one_event_with_before_and_after(history: Registry) -> None:
    events = history.audit_list()
    assert [e.action for e in reversed(events)] == [
        "project.create",
        "model.register",
        "model.tag",
        "model.register",
        "model.tag",
        "model.register",
        "model.tag",
        "component.add",
        "environment.promote",
        "setting.set",
    ]
    assert [e.id for e in events] == list(range(10, 0, -1))
    promote = events[1]
    assert promote.object == "project/demo/environment/uat"
    assert promote.actor == "alice"
    assert promote.before["components"] == {}
    assert promote.after["components"] == {MODEL: {"version": "v1", "app_config": {}}}
    assert (events[0].before, events[0].after) == ({"replicas": None}, {"replicas": 2})
    json.dumps([e.__dict__ for e in events])  # JSON all the way down


def test_reads_and_refused_changes_write_nothing(history: Registry) -> None:
    count = len(history.audit_list())
    history.status("demo", "uat")
    history.apply_component_config(
        "demo", "integration", history.save_component_config("demo", "integration")
    )
    with pytest.raises(Exception, match="cycle"):
        history.set_promotes_to("demo", "production", "integration")
    assert len(history.audit_list()) == count


def test_audit_list_filters_and_limits(history: Registry) -> None:
    assert [e.action for e in history.audit_list(limit=2)] == ["setting.set", "environment.promote"]
    models = history.audit_list(object_prefix="project/demo/model/")
    assert {e.action for e in models} == {"model.register", "model.tag"}


def test_an_intact_log_verifies(history: Registry) -> None:
    report = history.audit_verify()
    assert (report.ok, report.events, report.broken_event) == (True, 10, None)
    assert report.head_hash == history.audit_list(limit=1)[0].hash


def test_an_empty_log_verifies(registry: Registry) -> None:
    assert registry.audit_verify().events == 0


def tamper(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text(statement), params)


def broken(registry: Registry) -> AuditBroken:
    with pytest.raises(AuditBroken) as failure:
        registry.audit_verify()
    report = registry.audit_verify(raise_error=False)
    assert (report.ok, report.broken_event) == (False, failure.value.event_id)
    return failure.value


def test_an_edited_event_is_named(history: Registry, engine: Engine) -> None:
    tamper(engine, "UPDATE audit_events SET actor = 'mallory' WHERE id = 4")
    failure = broken(history)
    assert failure.event_id == 4
    assert "audit log broken at event 4: its content does not match its hash" in str(failure)


def test_an_edited_and_rehashed_event_breaks_the_next_link(
    history: Registry, engine: Engine
) -> None:
    # A careful forger recomputes the edited event's own hash: the next event's link fails.
    with Session(engine) as session, session.begin():
        event = session.get(AuditEventRow, 6)
        assert event is not None
        event.actor = "mallory"
        event.hash = _audit._event_hash(event.prev_hash, event)
    failure = broken(history)
    assert failure.event_id == 7
    assert "does not follow the event before it" in str(failure)


def test_a_deleted_event_is_named(history: Registry, engine: Engine) -> None:
    tamper(engine, "DELETE FROM audit_events WHERE id = 5")
    failure = broken(history)
    assert failure.event_id == 5
    assert "event 5 is missing" in str(failure)


def test_a_deleted_last_event_is_found_by_the_head(history: Registry, engine: Engine) -> None:
    tamper(engine, "DELETE FROM audit_events WHERE id = 10")
    failure = broken(history)
    assert (failure.event_id, failure.reason) == (10, "event 10 is missing (log truncated?)")


def test_reordered_events_are_found(history: Registry, engine: Engine) -> None:
    # Swap the contents of events 3 and 4, keeping each row's id.
    columns = ["at", "actor", "action", "object", "before", "after", "prev_hash", "hash"]
    with engine.begin() as connection:
        rows = {
            row.id: row
            for row in connection.execute(
                sa.text(f"SELECT id, {', '.join(columns)} FROM audit_events WHERE id IN (3, 4)")
            )
        }
    for target, source in ((3, 4), (4, 3)):
        values = {c: getattr(rows[source], c) for c in columns}
        for c in ("before", "after"):
            values[c] = json.dumps(values[c])
        assignments = ", ".join(f"{c} = :{c}" for c in columns)
        tamper(engine, f"UPDATE audit_events SET {assignments} WHERE id = :id", id=target, **values)
    assert broken(history).event_id == 3


def test_the_chain_continues_after_verification(history: Registry) -> None:
    history.audit_verify()
    history.set_setting("replicas", 3, "demo")
    assert history.audit_verify().events == 11


def test_the_actor_is_recorded_in_events_and_revisions(history: Registry) -> None:
    history.add_component("demo", "integration", MODEL, "v2")
    revision = history.with_actor("bob").promote("demo", "integration")
    assert revision.actor == "bob"
    latest = history.audit_list(limit=1)[0]
    assert (latest.actor, latest.action, latest.object) == (
        "bob",
        "environment.promote",
        "project/demo/environment/uat",
    )
