"""The database: migrations keep rows, models match migrations, SQLite settings, Registry.open."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from shipyard.registry import (
    LocalStore,
    Registry,
    create_engine,
    database_url,
    migrate,
    schema_revision,
)
from shipyard.registry._db import VERSION_TABLE
from shipyard.registry._rows import Base

from .conftest import BACKENDS, Postgres

HEAD = "0010"  # the newest migration in src/shipyard/registry/migrations/versions


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server: Postgres = request.getfixturevalue("postgres")
    url = server.create()
    yield url
    server.drop(url)


def test_upgrade_from_the_first_revision_keeps_every_row(empty_url: str, tmp_path: Path) -> None:
    engine = create_engine(empty_url)
    migrate(engine, "0001")
    assert schema_revision(engine) == "0001"
    now = datetime.now(UTC)
    rows = [
        ("projects", {"name": "old", "created_at": now, "created_by": "carol"}),
        (
            "environments",
            {"project_id": 1, "name": "prod", "created_at": now, "created_by": "carol"},
        ),
        ("components", {"project_id": 1, "name": "m", "kind": "model", "created_at": now}),
        (
            "component_versions",
            {
                "component_id": 1,
                "number": 1,
                "tag": "v1",
                "digest": "a" * 64,
                "size": 10,
                "bundle_name": "m",
                "bundle_version": "1.0.0",
                "signed": False,
                "app_config": {"t": 1},
                "created_at": now,
                "created_by": "carol",
            },
        ),
        (
            "revisions",
            {
                "environment_id": 1,
                "number": 1,
                "created_at": now,
                "actor": "carol",
                "action": "component.add",
                "reason": "by hand",
                "settings": {"environment": {}, "components": {}},
                "config": {},
            },
        ),
        (
            "revision_entries",
            {
                "revision_id": 1,
                "component_id": 1,
                "component_version_id": 1,
                "app_config": {"t": 1},
            },
        ),
    ]
    metadata = sa.MetaData()  # ids come from each table's own sequence: 1 in a new database
    with engine.begin() as connection:
        for table, values in rows:
            connection.execute(sa.Table(table, metadata, autoload_with=connection).insert(), values)
    migrate(engine)
    assert schema_revision(engine) == HEAD
    with engine.connect() as connection:
        for table, _ in rows:
            count = connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
            assert count == 1, table
    registry = Registry(engine, LocalStore(tmp_path / "blobs"), "dave")
    status = registry.status("old", "prod")
    assert [(c.name, c.tag, c.app_config) for c in status.components] == [("m", "v1", {"t": 1})]
    registry.add_component("old", "prod", "m", "v1", app_config={"t": 2})
    assert registry.audit_verify().events == 1
    engine.dispose()


def test_the_models_match_the_migrations(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "version_table": VERSION_TABLE}
        )
        assert compare_metadata(context, Base.metadata) == []


def test_migrating_twice_is_harmless(engine: sa.Engine) -> None:
    migrate(engine)
    assert schema_revision(engine) == HEAD


def test_sqlite_runs_with_foreign_keys_and_wal(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'deep' / 'registry.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_database_url_and_open_read_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHIPYARD_DATABASE_URL", raising=False)
    monkeypatch.delenv("SHIPYARD_ARTIFACT_STORE", raising=False)
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHIPYARD_USER", "erin")
    assert database_url() == f"sqlite:///{tmp_path / 'home' / 'registry.db'}"
    with Registry.open() as registry:
        registry.create_project("demo")
        assert registry.actor == "erin"
        assert isinstance(registry.store, LocalStore)
    assert (tmp_path / "home" / "registry.db").is_file()
    monkeypatch.setenv("SHIPYARD_DATABASE_URL", "postgresql+psycopg://u@db.example:5432/reg")
    assert database_url() == "postgresql+psycopg://u@db.example:5432/reg"


def test_open_on_postgresql(
    postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.create()
    try:
        monkeypatch.setenv("SHIPYARD_DATABASE_URL", url)
        monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path))
        with Registry.open("frank") as registry:
            registry.create_project("demo")
            assert registry.engine.dialect.name == "postgresql"
            assert registry.list_projects()[0].created_by == "frank"
    finally:
        postgres.drop(url)
