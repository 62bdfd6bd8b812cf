"""Fixtures shared by the whole suite: a tumour pipeline, keys, bundles, registry databases.

``demo_pipeline`` is the suite's own copy of a tumour-triage pipeline (tests/_tumours.py),
not ``shipyard.demo``'s: the demo can change without changing what a test checks.

Registry databases: every test that takes ``database_url`` runs on SQLite AND PostgreSQL.
PostgreSQL is expected at 127.0.0.1:5432 as user ``postgres`` (trust auth), or at
``$SHIPYARD_TEST_POSTGRES_URL`` (a server URL whose database is used for admin work).
The session makes one migrated database there (dropped at the end) and empties it before
each test; SQLite tests each get a copy of a migrated file. An unreachable server fails
the tests: CI always has one. ``api_server`` runs the registry HTTP API on that database.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import Engine

from shipyard import Pipeline
from shipyard.artifact import generate_key_pair
from shipyard.registry import LocalStore, Registry, create_engine, migrate
from shipyard.registry._rows import AuditHeadRow, Base

from ._tiers import assign_tiers
from ._tumours import build_pipeline, reference


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test ``unit`` or ``integration`` by what it uses (see tests/_tiers.py)."""
    assign_tiers(items)


@pytest.fixture(scope="session")
def demo_pipeline() -> Pipeline:
    """The trained tumour-triage pipeline (feature -> model -> rule) on breast-cancer data."""
    return build_pipeline()


@pytest.fixture(scope="session")
def demo_reference() -> dict[str, Any]:
    """The tumour-triage pipeline's training data as a dict dataset."""
    return reference()


@pytest.fixture()
def demo_rows(demo_reference: dict[str, Any]) -> dict[str, Any]:
    """Five rows of demo input as plain column lists."""
    return {"tumours": {name: values[:5] for name, values in demo_reference["tumours"].items()}}


@pytest.fixture(scope="session")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fresh Ed25519 (private, public) PEM key pair."""
    return generate_key_pair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def signed_bundle(
    tmp_path_factory: pytest.TempPathFactory,
    demo_pipeline: Pipeline,
    demo_reference: dict[str, Any],
    key_pair: tuple[Path, Path],
) -> Path:
    """The demo pipeline as a signed bundle with its model in native form (model.skops).

    Do not modify it: copy it first.
    """
    return demo_pipeline.export(
        tmp_path_factory.mktemp("bundle"),
        reference=demo_reference,
        sign_key=key_pair[0],
        backend="native",
    )


@pytest.fixture(scope="session")
def onnx_bundle(
    tmp_path_factory: pytest.TempPathFactory,
    demo_pipeline: Pipeline,
    demo_reference: dict[str, Any],
    key_pair: tuple[Path, Path],
) -> Path:
    """The demo pipeline exported with the default backend (its model as model.onnx)."""
    return demo_pipeline.export(
        tmp_path_factory.mktemp("onnx-bundle"), reference=demo_reference, sign_key=key_pair[0]
    )


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
            sa.update(AuditHeadRow)
            .values(last_id=0, last_hash="0" * 64)
            .where(AuditHeadRow.id == 1)
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


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run an ASGI app with uvicorn in a thread on a free loopback port; yields its base URL.

    Startup is bounded (10 s) and the server is stopped, and its lifespan closed, on exit.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    with uvicorn_in_thread(config, sock, "the test API server", 10, 10) as url:
        yield url


@contextmanager
def uvicorn_in_thread(
    config: Any, sock: socket.socket, what: str, start_timeout: float, stop_timeout: float
) -> Iterator[str]:
    """Serve ``config`` (a uvicorn Config) on the bound ``sock`` in a thread; its base URL.

    Waits until the server has started (failing after ``start_timeout`` seconds, or when its
    thread ends first) and stops it on exit, failing when it has not stopped in time.
    """
    port = sock.getsockname()[1]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            pytest.fail(f"{what} did not start", pytrace=False)
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(stop_timeout)
        sock.close()
        assert not thread.is_alive(), f"{what} did not stop"


@dataclass
class ApiServer:
    """A live registry API server: its URL and the registry behind it."""

    url: str
    registry: Registry

    def token(self, role: str, name: str | None = None) -> str:
        """A new API token's text for ``role`` (named after the role unless ``name``)."""
        return self.registry.create_token(name or role, role)[1]


@pytest.fixture()
def api_server(database_url: str, tmp_path: Path) -> Iterator[ApiServer]:
    """The registry HTTP API over real HTTP on 127.0.0.1, on each backend's database."""
    from shipyard.registry_http import create_app

    engine = create_engine(database_url)
    registry = Registry(engine, LocalStore(tmp_path / "server-artifacts"), actor="server")
    with serving(create_app(lambda: registry)) as url:
        yield ApiServer(url, registry)
    engine.dispose()


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local SparkSession (two cores, no UI) for the whole test session.

    Shared by the runtime and batch tests: ``getOrCreate`` would hand both the same
    session anyway, so one fixture owns its start and its stop. PySpark starts Python
    workers with PYSPARK_PYTHON (default: whatever "python3" is on PATH), so it is set to
    this interpreter while the session lives.
    """
    from pyspark.sql import SparkSession

    previous = os.environ.get("PYSPARK_PYTHON")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("shipyard-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()
        if previous is None:
            os.environ.pop("PYSPARK_PYTHON", None)
        else:
            os.environ["PYSPARK_PYTHON"] = previous
