"""Serving API keys in the registry: shown once, stored as sha256 of the secret, audited,
revocable; the digests a server checks; and the keys made before migration 0004."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from shipyard.errors import InvalidInput, NotFound, PermissionDenied
from shipyard.registry import (
    ApiKeyDigest,
    Credential,
    LocalStore,
    Registry,
    create_engine,
    migrate,
    schema_revision,
)
from shipyard.registry._db import alembic_config
from shipyard.serving import KeyRing

from .test_db import empty_url  # noqa: F401  (the fixture: a database with no tables)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stored_rows(engine: Engine) -> list[dict[str, object]]:
    """Every row of environment_api_keys as the database has it (at any revision), by id."""
    with engine.connect() as connection:
        table = sa.Table("environment_api_keys", sa.MetaData(), autoload_with=connection)
        query = table.select().order_by(table.c.id)
        return [dict(row) for row in connection.execute(query).mappings()]


def test_a_key_is_shown_once_stored_hashed_audited_and_revocable(registry: Registry) -> None:
    registry.create_project("demo")
    info, key = registry.create_api_key("demo", "production", "web")
    assert key.startswith(f"sya_{info.id}_") and len(key) > 40
    assert (info.project, info.environment, info.name, info.created_by) == (
        "demo",
        "production",
        "web",
        "alice",
    )
    [stored] = stored_rows(registry.engine)
    secret = key.split("_", 2)[2]
    assert stored["secret_hash"] == sha256(secret) and stored["hash_scheme"] == "sha256-secret"
    assert key not in str(stored) and secret not in str(stored)
    assert [k.name for k in registry.list_api_keys("demo", "production")] == ["web"]
    assert registry.list_api_keys("demo", "uat") == []
    revoked = registry.revoke_api_key("demo", "production", info.id)
    assert revoked.revoked
    assert registry.revoke_api_key("demo", "production", info.id).revoked  # no second event
    actions = [e.action for e in registry.audit_list(object_prefix="project/demo/environment")]
    assert actions == ["apikey.revoke", "apikey.create"]
    assert all(secret not in str(e.after) for e in registry.audit_list())
    registry.audit_verify()
    with pytest.raises(NotFound):
        registry.revoke_api_key("demo", "uat", info.id)
    with pytest.raises(NotFound):
        registry.create_api_key("demo", "staging")
    with pytest.raises(InvalidInput):
        registry.create_api_key("demo", "production", "no spaces")


def test_the_digests_name_only_live_keys_of_the_environment(registry: Registry) -> None:
    registry.create_project("demo")
    first, key = registry.create_api_key("demo", "production", "web")
    second, _ = registry.create_api_key("demo", "production", "batch")
    registry.create_api_key("demo", "uat", "web")
    registry.revoke_api_key("demo", "production", second.id)
    assert registry.api_key_digests("demo", "production") == [
        ApiKeyDigest(first.id, "sha256-secret", sha256(key.split("_", 2)[2]))
    ]
    with pytest.raises(NotFound):
        registry.api_key_digests("demo", "staging")


def test_tokens_and_keys_are_one_credential_scheme(registry: Registry, engine: Engine) -> None:
    registry.create_project("demo")
    _, token = registry.create_token("ci", "viewer")
    _, key = registry.create_api_key("demo", "production")
    with engine.connect() as connection:
        token_hash = connection.execute(sa.text("SELECT secret_hash FROM api_tokens")).scalar()
    for text, stored, prefix in ((token, token_hash, "shy"), (key, None, "sya")):
        parsed = Credential.parse(text)
        assert (parsed.prefix, parsed.secret) == (prefix, text.split("_", 2)[2])
        assert parsed.text not in repr(parsed) and parsed.secret not in repr(parsed)
        if stored is not None:
            assert parsed.matches(Credential.SECRET, stored)
    assert Credential.parse("sya_" + "9" * 19 + "_x").id is None  # no database integer
    assert Credential.parse("plain words").id is None
    # A key is not a token, though both follow the scheme.
    with pytest.raises(PermissionDenied, match="invalid or revoked API token"):
        registry.verify_token(key)


def _insert(connection: sa.Connection, table: str, values: dict[str, object]) -> int:
    found = sa.Table(table, sa.MetaData(), autoload_with=connection)
    return int(connection.execute(found.insert().values(values)).inserted_primary_key[0])


def test_migration_0004_keeps_every_key_and_old_keys_still_verify(
    empty_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    engine = create_engine(empty_url)
    migrate(engine, "0003")
    now = datetime.now(UTC)
    old_keys: dict[str, str] = {}
    with engine.begin() as connection:
        project = _insert(
            connection, "projects", {"name": "old", "created_at": now, "created_by": "carol"}
        )
        env = _insert(
            connection,
            "environments",
            {"project_id": project, "name": "prod", "created_at": now, "created_by": "carol"},
        )
        keys = sa.table(
            "environment_api_keys",
            sa.column("id", sa.Integer),
            sa.column("secret_hash", sa.String),
        )
        for name, revoked in (("web", None), ("gone", now)):
            row = {
                "environment_id": env,
                "name": name,
                "secret_hash": "0" * 64,
                "created_at": now,
                "created_by": "carol",
                "revoked_at": revoked,
            }
            key_id = _insert(connection, "environment_api_keys", row)
            # What revision 0003's code stored: sha256 of the whole key text.
            old_keys[name] = f"sya_{key_id}_{'s' * 40}{name}"
            update = keys.update().where(keys.c.id == key_id)
            connection.execute(update.values(secret_hash=sha256(old_keys[name])))
    before = stored_rows(engine)

    migrate(engine)
    assert schema_revision(engine) != "0003"
    after = stored_rows(engine)
    added = ("hash_scheme", "expires_at")  # columns later migrations add
    assert [{k: v for k, v in row.items() if k not in added} for row in after] == before
    assert all(row["expires_at"] is None for row in after)
    assert [row["hash_scheme"] for row in after] == ["sha256-text", "sha256-text"]

    registry = Registry(engine, LocalStore(tmp_path / "blobs"), "dave")
    listed = registry.list_api_keys("old", "prod")
    assert [(k.name, k.revoked, k.created_by) for k in listed] == [
        ("web", False, "carol"),
        ("gone", True, "carol"),
    ]
    ring = KeyRing(registry.api_key_digests("old", "prod"))
    assert ring.accepts(old_keys["web"]) and not ring.accepts(old_keys["gone"])

    info, new_key = registry.create_api_key("old", "prod", "new")
    newest = stored_rows(engine)[-1]
    assert newest["hash_scheme"] == "sha256-secret"
    assert newest["secret_hash"] == sha256(new_key.split("_", 2)[2])
    ring = KeyRing(registry.api_key_digests("old", "prod"))
    assert ring.accepts(old_keys["web"]) and ring.accepts(new_key)
    registry.revoke_api_key("old", "prod", listed[0].id)
    ring = KeyRing(registry.api_key_digests("old", "prod"))
    assert not ring.accepts(old_keys["web"]) and ring.accepts(new_key)
    assert info.id not in (k.id for k in listed)
    engine.dispose()


def test_migration_0004_refuses_a_downgrade_that_would_break_new_keys(
    empty_url: str,  # noqa: F811
) -> None:
    engine = create_engine(empty_url)
    migrate(engine, "0004")
    now = datetime.now(UTC)
    with engine.begin() as connection:
        project = _insert(
            connection, "projects", {"name": "p", "created_at": now, "created_by": "carol"}
        )
        env = _insert(
            connection,
            "environments",
            {"project_id": project, "name": "e", "created_at": now, "created_by": "carol"},
        )
        for scheme in ("sha256-text", "sha256-secret"):
            row = {
                "environment_id": env,
                "name": scheme.split("-")[1],
                "secret_hash": "a" * 64,
                "hash_scheme": scheme,
                "created_at": now,
                "created_by": "carol",
            }
            _insert(connection, "environment_api_keys", row)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        with pytest.raises(RuntimeError, match="1 API key"):
            command.downgrade(config, "0003")
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM environment_api_keys WHERE name = 'secret'"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
    assert schema_revision(engine) == "0003"
    with engine.connect() as connection:
        names = connection.execute(sa.text("SELECT name FROM environment_api_keys")).scalars()
        assert list(names) == ["text"]
    engine.dispose()
