"""Registry fixtures: a fresh migrated database per test on SQLite AND PostgreSQL, bundles.

PostgreSQL is expected at 127.0.0.1:5432 as user ``postgres`` (trust auth), or at
``$SHIPYARD_TEST_POSTGRES_URL`` (a server URL whose database is used for admin work).
The session makes one migrated database there (dropped at the end) and empties it before
each test; SQLite tests each get a copy of a migrated file. An unreachable server fails
the tests: CI always has one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipyard import Pipeline
from shipyard.registry import LocalStore, Registry, create_engine, migrate
from shipyard.registry._models import AuditHead, Base

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BACKENDS = ["sqlite", "postgresql"]


def admin_url() -> sa.URL:
    """The URL of the PostgreSQL server's admin database."""
    return sa.make_url(os.environ.get("SHIPYARD_TEST_POSTGRES_URL") or ADMIN_URL)


class Postgres:
    """Creates and drops throw-away databases on the test server."""

    def __init__(self) -> None:
        url = admin_url()
        self.url = url
        params = {
            "host": url.host or "127.0.0.1",
            "port": url.port or 5432,
            "user": url.username or "postgres",
            "dbname": url.database or "postgres",
        }
        if url.password:
            params["password"] = url.password
        try:
            self.admin = psycopg.connect(autocommit=True, connect_timeout=5, **params)
        except psycopg.OperationalError as exc:
            pytest.fail(
                f"PostgreSQL is required for the registry tests and is unreachable at "
                f"{url.render_as_string()}: {exc}",
                pytrace=False,
            )

    def create(self, template: str | None = None) -> str:
        """A new empty database (or a copy of ``template``); returns its SQLAlchemy URL."""
        name = f"shipyard_test_{uuid.uuid4().hex[:12]}"
        suffix = f" TEMPLATE {template}" if template else ""
        self.admin.execute(f"CREATE DATABASE {name}{suffix}")
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        """Drop a database made by ``create``, closing any connection left to it."""
        name = sa.make_url(url).database
        self.admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """The PostgreSQL test server (fails the test when it is unreachable)."""
    server = Postgres()
    yield server
    server.admin.close()


def _migrated(url: str) -> None:
    engine = create_engine(url)
    migrate(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite registry file to copy."""
    template = tmp_path_factory.mktemp("template") / "registry.db"
    _migrated(f"sqlite:///{template}")
    return template


@pytest.fixture(scope="session")
def postgres_database(postgres: Postgres) -> Iterator[str]:
    """A migrated PostgreSQL database for the session (dropped at the end)."""
    url = postgres.create()
    _migrated(url)
    yield url
    postgres.drop(url)


def _emptied(url: str) -> None:
    """Delete every row a test left, back to a freshly migrated state (much faster than a
    database per test; ids of new rows keep counting, which no test relies on)."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "audit_head":
                connection.execute(table.delete())
        connection.execute(
            sa.update(AuditHead).values(last_id=0, last_hash="0" * 64).where(AuditHead.id == 1)
        )
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty, migrated registry database on each backend."""
    if request.param == "sqlite":
        target = tmp_path / "registry.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        yield f"sqlite:///{target}"
    else:
        url = request.getfixturevalue("postgres_database")
        _emptied(url)
        yield url


@pytest.fixture()
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the test's database."""
    made = create_engine(database_url)
    yield made
    made.dispose()


@pytest.fixture()
def backend(engine: Engine) -> str:
    """``sqlite`` or ``postgresql``."""
    return engine.dialect.name


@pytest.fixture()
def registry(engine: Engine, tmp_path: Path) -> Registry:
    """A registry acting as 'alice' with a local artifact store."""
    return Registry(engine, LocalStore(tmp_path / "artifacts"), actor="alice")


def _export(pipeline: Pipeline, version: str, folder: Path, reference: Any, key: Path) -> Path:
    copy = Pipeline(
        pipeline.name,
        version,
        inputs=pipeline.inputs,
        nodes=pipeline.nodes.values(),
        outputs=pipeline.outputs,
        target=pipeline.target,
        description=pipeline.description,
    )
    return copy.export(folder, reference=reference, sign_key=key)


@pytest.fixture(scope="session")
def bundles(
    tmp_path_factory: pytest.TempPathFactory,
    signed_bundle: Path,
    demo_pipeline: Pipeline,
    demo_reference: dict[str, Any],
    key_pair: tuple[Path, Path],
) -> list[Path]:
    """Three signed bundles of the demo pipeline: versions 1.0.0, 1.1.0 and 1.2.0."""
    folder = tmp_path_factory.mktemp("bundles")
    more = [
        _export(demo_pipeline, v, folder, demo_reference, key_pair[0]) for v in ("1.1.0", "1.2.0")
    ]
    return [signed_bundle, *more]


@pytest.fixture()
def demo(registry: Registry, bundles: list[Path]) -> Registry:
    """Project 'demo' (integration -> uat -> production) with model tumour_triage v1, v2, v3."""
    registry.create_project("demo")
    for bundle in bundles:
        version = registry.register_model("demo", bundle)
        registry.tag("demo", version.model, version.version_id)
    return registry


MODEL = "tumour_triage"
