"""Alembic environment: runs the registry migrations on the connection ``migrate`` passes in.

``shipyard.registry.migrate`` sets ``config.attributes["connection"]``; with only a
``sqlalchemy.url`` option (the ``alembic`` command line), a connection is made here.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from shipyard.registry._rows import Base

VERSION_TABLE = "shipyard_alembic_version"

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,  # also gives op.create_table the naming convention
        version_table=VERSION_TABLE,
        render_as_batch=True,  # ALTER on SQLite means recreating the table
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
    else:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
        engine.dispose()
