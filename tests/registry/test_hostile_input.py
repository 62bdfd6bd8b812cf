"""Values no row can hold or no parser should take are refused as the caller's mistake,
the same on SQLite and PostgreSQL (which refuses an id past 2**31 - 1 in a query)."""

from __future__ import annotations

import pytest

from shipyard.errors import InvalidComponentConfig, InvalidInput, NotFound, PermissionDenied
from shipyard.registry import MAX_ID, Registry

from .conftest import MODEL

TOO_BIG = [MAX_ID + 1, 2**63, 10**30]


@pytest.mark.parametrize("token_id", TOO_BIG)
def test_an_id_no_row_can_have_is_not_found(registry: Registry, token_id: int) -> None:
    with pytest.raises(NotFound, match=f"API token {token_id} does not exist"):
        registry.revoke_token(token_id)
    with pytest.raises(NotFound, match=f"batch job {token_id} does not exist"):
        registry.get_batch_job(token_id)
    with pytest.raises(NotFound, match=f"batch job {token_id} does not exist"):
        registry.cancel_batch_job(token_id)
    assert registry.heartbeat_batch_job(token_id, "worker", 0, 0) is False


def test_a_token_naming_an_id_no_row_can_have_is_refused(registry: Registry) -> None:
    for token_id in (MAX_ID + 1, 10**17, 10**30):
        with pytest.raises(PermissionDenied, match="invalid or revoked API token"):
            registry.verify_token(f"shy_{token_id}_{'x' * 43}")


def test_batch_jobs_list_under_any_limit_and_recover_no_impossible_age(
    registry: Registry,
) -> None:
    assert registry.list_batch_jobs(limit=2**63) == []
    with pytest.raises(InvalidInput, match="stale_after 1e[+]308 seconds reaches before any date"):
        registry.recover_batch_jobs(1e308)


def test_the_audit_list_takes_a_limit_of_zero_or_more(registry: Registry) -> None:
    registry.create_project("demo")
    assert len(registry.audit_list(limit=2**63)) == len(registry.audit_list()) > 0
    assert registry.audit_list(limit=0) == []
    with pytest.raises(InvalidInput, match="limit must be 0 or more, not -1"):
        registry.audit_list(limit=-1)


def test_an_anchor_for_an_event_no_log_can_hold_is_refused(registry: Registry) -> None:
    with pytest.raises(InvalidInput, match=f"anchors must map event ids to hashes .*{MAX_ID}"):
        registry.audit_verify(anchors={str(MAX_ID + 1): "0" * 64})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[" * 5000, "nested too deeply"),
        ("components: &a [*a]", "aliases (*name) are not allowed"),
        (
            "a: &a [x, x, x]\nb: [*a, *a, *a]\ncomponents: []",
            "aliases (*name) are not allowed",
        ),
        (
            f"components: [{{name: {MODEL}, version: v1, app_config: {{day: 2026-12-01}}}}]",
            "not plain data: a date value",
        ),
        (
            f"components: [{{name: {MODEL}, version: v1, app_config: {{a: !!binary aGk=}}}}]",
            "not plain data: a bytes value",
        ),
        (
            f"components: [{{name: {MODEL}, version: v1, app_config: {{a: .nan}}}}]",
            "not plain data: the number nan",
        ),
        (
            f'components: [{{name: {MODEL}, version: v1, app_config: {{a: "\\0"}}}}]',
            "not plain data: a NUL character",
        ),
    ],
)
def test_a_component_config_must_be_plain_data(registry: Registry, text: str, problem: str) -> None:
    registry.create_project("demo")
    with pytest.raises(InvalidComponentConfig) as refused:
        registry.apply_component_config("demo", "integration", text)
    assert [problem in p for p in refused.value.problems] == [True], refused.value.problems
    assert len(registry.history("demo", "integration")) == 1  # nothing applied
