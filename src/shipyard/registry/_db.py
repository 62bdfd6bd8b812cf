"""The registry database: where it is, how to connect, and its migrations.

``SHIPYARD_DATABASE_URL`` (e.g. ``postgresql+psycopg://user@host:5432/shipyard``) selects
a server database; without it the registry is SQLite at ``$SHIPYARD_HOME/registry.db``
(``SHIPYARD_HOME`` defaults to ``./.shipyard``).

SQLite connections run with foreign keys on, WAL journaling and a 30 s busy timeout.
A transaction opened on a connection with the ``WRITE`` execution option starts with
``BEGIN IMMEDIATE``, so SQLite serializes writers at their start instead of failing one of
them at commit; on PostgreSQL the option does nothing and writers lock the rows they change.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

DATABASE_URL_ENV = "SHIPYARD_DATABASE_URL"
HOME_ENV = "SHIPYARD_HOME"
WRITE = "shipyard_write"  # execution option: this transaction will write
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "shipyard_alembic_version"  # must match migrations/env.py
# The largest INTEGER on PostgreSQL (SQLite's are wider): every id and number the registry
# stores fits below it, so a larger one names nothing, and must not reach a query (where
# PostgreSQL refuses it as out of range).
MAX_ID = 2**31 - 1


def storable_id(value: int) -> bool:
    """Whether ``value`` can be the id of a row on either backend (1 to ``MAX_ID``)."""
    return not isinstance(value, bool) and isinstance(value, int) and 1 <= value <= MAX_ID


def shipyard_home() -> Path:
    """The folder for embedded state: ``$SHIPYARD_HOME``, or ``./.shipyard``."""
    return Path(os.environ.get(HOME_ENV) or ".shipyard")


def database_url() -> str:
    """``$SHIPYARD_DATABASE_URL``, or the SQLite file ``$SHIPYARD_HOME/registry.db``."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    return f"sqlite:///{(shipyard_home() / 'registry.db').resolve()}"


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling never emits BEGIN before SELECT and cannot do
    # BEGIN IMMEDIATE; switch it off and begin in _sqlite_begin instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    write = connection.get_execution_options().get(WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def create_engine(url: str | None = None, **options: Any) -> Engine:
    """An engine for ``url`` (default: ``database_url()``), creating the SQLite folder if needed.

    ``options`` go to ``sqlalchemy.create_engine``. Raises ``sqlalchemy.exc.ArgumentError``
    for a malformed URL; connection errors surface on first use.
    """
    url = url or database_url()
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        options.setdefault("pool_pre_ping", True)
        return sa.create_engine(parsed, **options)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    options.setdefault("connect_args", {}).setdefault("timeout", 30)
    engine = sa.create_engine(parsed, **options)
    sa.event.listen(engine, "connect", _sqlite_connect)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def alembic_config() -> Config:
    """An Alembic config for the migrations shipped in this package (works when installed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (default: the newest); existing rows are kept.

    On SQLite foreign keys are off while migrating: a migration that recreates a table
    (Alembic batch mode) must not cascade-delete the rows that refer to it.
    """
    config = alembic_config()
    with engine.connect() as connection:
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
        finally:
            if sqlite:
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


def schema_revision(engine: Engine) -> str | None:
    """The migration the database is at, or None for an empty database."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()
