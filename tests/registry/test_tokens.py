"""API tokens: stored hashed, checked in constant time, roles viewer < deployer < admin."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipyard.registry import InvalidInput, PermissionDenied, Registry


@pytest.fixture()
def registry(bare_registry: Registry) -> Registry:
    """A registry trusting no key: its audit log holds only what these tests do."""
    return bare_registry


def test_a_token_verifies_for_its_role_and_below(registry: Registry) -> None:
    info, secret = registry.create_token("ci", "deployer")
    assert secret.startswith(f"shy_{info.id}_")
    assert registry.verify_token(secret).name == "ci"
    assert registry.verify_token(secret, "deployer").role == "deployer"
    with pytest.raises(PermissionDenied, match="token 'ci' has role deployer; this needs admin"):
        registry.verify_token(secret, "admin")


def test_only_a_hash_is_stored(registry: Registry, engine: Engine) -> None:
    _, secret = registry.create_token("ci", "viewer")
    with engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT secret_hash FROM api_tokens")).scalar()
    assert stored is not None and secret.split("_", 2)[2] not in stored
    assert all(secret not in str(e.after) for e in registry.audit_list())


@pytest.mark.parametrize("bad", ["", "nonsense", "shy_1_wrong", "shy_999_x", "Bearer shy_1_x"])
def test_bad_tokens_are_denied_without_echoing_them(registry: Registry, bad: str) -> None:
    registry.create_token("ci", "admin")
    with pytest.raises(PermissionDenied) as denied:
        registry.verify_token(bad)
    assert str(denied.value) == "invalid or revoked API token"


def test_a_revoked_token_stops_working(registry: Registry) -> None:
    info, secret = registry.create_token("ci", "admin")
    assert registry.revoke_token(info.id).revoked
    with pytest.raises(PermissionDenied):
        registry.verify_token(secret)
    assert [(t.name, t.revoked) for t in registry.list_tokens()] == [("ci", True)]
    assert [e.action for e in registry.audit_list()] == ["token.revoke", "token.create"]


def test_unknown_roles_are_refused(registry: Registry) -> None:
    with pytest.raises(InvalidInput, match="role 'root' is not one of viewer, deployer, admin"):
        registry.create_token("ci", "root")
