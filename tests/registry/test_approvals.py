"""Four-eyes changes: promotions and rollbacks into an environment needing approval wait for
another person, then apply in one transaction (on SQLite and PostgreSQL, and over HTTP)."""

from __future__ import annotations

import pytest

from shipyard.errors import ApprovalRequired, Conflict, InvalidSetting, PermissionDenied
from shipyard.registry import Registry
from shipyard.registry_http import RegistryClient, create_app

from ..conftest import serving
from .conftest import MODEL


def _ready(demo: Registry, approvals: int = 1) -> None:
    """v1 in production, v2 in uat, production needing ``approvals`` (its revision 3)."""
    demo.add_component("demo", "uat", MODEL, "v1")
    demo.promote("demo", "uat")
    demo.add_component("demo", "uat", MODEL, "v2")
    demo.set_setting("approvals_required", approvals, "demo", "production")


def _production(demo: Registry) -> tuple[int, list[str | None]]:
    status = demo.status("demo", "production")
    return status.revision, [c.tag for c in status.components]


def test_a_promotion_waits_for_another_persons_approval_then_applies(demo: Registry) -> None:
    _ready(demo)
    with pytest.raises(ApprovalRequired, match=r"change request \d+ \(promote uat") as caught:
        demo.promote("demo", "uat")
    request = caught.value.change_request
    assert caught.value.environment == "production"
    assert _production(demo) == (3, ["v1"])  # nothing applied yet

    [pending] = demo.list_change_requests("demo", "production", state="pending")
    assert (pending.action, pending.source, pending.base_revision) == ("promote", "uat", 3)
    with pytest.raises(PermissionDenied, match=f"alice asked for change request {request}"):
        demo.approve_change("demo", request)

    bob = demo.with_actor("bob", "deployer")
    approved = bob.approve_change("demo", request)
    assert (approved.state, approved.result_revision) == ("applied", 4)
    assert [a.actor for a in approved.approvals] == ["bob"]
    assert _production(demo) == (4, ["v2"])
    revision = demo.get_revision("demo", "production")
    assert revision.actor == "bob" and f"change request {request} by alice, approved by bob" in (
        revision.reason
    )
    actions = [e.action for e in demo.audit_list(limit=3)]
    assert actions == ["environment.promote", "change.approve", "change.request"]


def test_two_approvals_need_two_other_people(demo: Registry) -> None:
    _ready(demo, approvals=2)
    with pytest.raises(ApprovalRequired) as caught:
        demo.promote("demo", "uat")
    request = caught.value.change_request
    bob, carol = demo.with_actor("bob", "deployer"), demo.with_actor("carol", "deployer")
    assert bob.approve_change("demo", request).state == "pending"
    with pytest.raises(Conflict, match=f"bob has already approved change request {request}"):
        bob.approve_change("demo", request)
    assert _production(demo) == (3, ["v1"])
    assert carol.approve_change("demo", request).state == "applied"
    assert _production(demo) == (4, ["v2"])


def test_a_rollback_needs_approval_too_and_a_viewer_cannot_approve(demo: Registry) -> None:
    _ready(demo)
    with pytest.raises(ApprovalRequired) as caught:
        demo.rollback("demo", "production", to=1, allow_empty=True)
    request = caught.value.change_request
    with pytest.raises(PermissionDenied, match="needs the deployer role"):
        demo.with_actor("vic", "viewer").approve_change("demo", request)
    applied = demo.with_actor("bob", "deployer").approve_change("demo", request)
    assert (applied.action, applied.to_revision, applied.state) == ("rollback", 1, "applied")
    assert _production(demo) == (4, [])


def test_a_refused_rollback_is_refused_at_once_not_when_approved(demo: Registry) -> None:
    _ready(demo)
    with pytest.raises(Conflict, match="would remove every component"):
        demo.rollback("demo", "production", to=1)
    assert demo.list_change_requests("demo") == []


def test_a_request_applies_only_onto_the_revision_it_was_asked_against(demo: Registry) -> None:
    _ready(demo)
    with pytest.raises(ApprovalRequired) as caught:
        demo.promote("demo", "uat")
    request = caught.value.change_request
    demo.set_setting("replicas", 2, "demo", "production")  # production moves on: revision 4
    stale = demo.with_actor("bob", "deployer").approve_change("demo", request)
    assert stale.state == "stale" and "is at revision 4, not 3" in stale.note
    assert _production(demo) == (4, ["v1"])
    with pytest.raises(Conflict, match=f"change request {request} is stale, not pending"):
        demo.with_actor("carol", "deployer").approve_change("demo", request)


def test_a_rejected_request_never_applies(demo: Registry) -> None:
    _ready(demo)
    with pytest.raises(ApprovalRequired) as caught:
        demo.promote("demo", "uat")
    request = caught.value.change_request
    rejected = demo.with_actor("bob", "deployer").reject_change(
        "demo", request, "not before Friday"
    )
    assert (rejected.state, rejected.decided_by, rejected.note) == (
        "rejected",
        "bob",
        "not before Friday",
    )
    with pytest.raises(Conflict, match="is rejected, not pending"):
        demo.with_actor("carol", "deployer").approve_change("demo", request)
    assert _production(demo) == (3, ["v1"])


def test_only_an_admin_sets_approvals_required_and_within_bounds(demo: Registry) -> None:
    with pytest.raises(PermissionDenied, match="policy setting 'approvals_required'"):
        demo.with_actor("bob", "deployer").set_setting(
            "approvals_required", 0, "demo", "production"
        )
    with pytest.raises(InvalidSetting, match="11 is not between 0 and 10"):
        demo.set_setting("approvals_required", 11, "demo", "production")
    assert demo.get_setting("approvals_required", "demo", "production").value == 0


def test_approvals_over_http_with_two_tokens(demo: Registry) -> None:
    _ready(demo)
    alice = demo.create_token("alice-ci", "deployer")[1]
    bob = demo.create_token("bob", "deployer")[1]
    with serving(create_app(lambda: demo)) as url:
        with RegistryClient(url, alice) as client:
            with pytest.raises(ApprovalRequired) as caught:
                client.promote("demo", "uat")
            request = caught.value.change_request
            with pytest.raises(
                PermissionDenied, match=f"alice-ci asked for change request {request}"
            ):
                client.approve_change("demo", request)
        with RegistryClient(url, bob) as client:
            assert client.get_change_request("demo", request)["state"] == "pending"
            assert client.approve_change("demo", request)["state"] == "applied"
            assert [r["state"] for r in client.list_change_requests("demo")] == ["applied"]
    assert _production(demo) == (4, ["v2"])
