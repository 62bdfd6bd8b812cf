"""Batch fixtures: generated tumour files, a bundle a test can hold mid-job, one SparkSession.

Every test's ``tmp_path`` is its batch root (``batch_root``), so jobs may use files there.

The registry databases (``database_url``, ``engine``: SQLite and PostgreSQL) come from
tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from sqlalchemy.engine import Engine

import shipyard as sy
from shipyard.registry import LocalStore, Registry
from tests._tumours import tumour_rows


def write_table(table: pa.Table, path: Path) -> Path:
    """``table`` as the CSV, Parquet or JSON Lines file that ``path``'s suffix names."""
    if path.suffix == ".csv":
        pcsv.write_csv(table, path)
    elif path.suffix == ".parquet":
        pq.write_table(table, path, row_group_size=700)
    else:
        import orjson

        path.write_bytes(
            b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in table.to_pylist())
        )
    return path


def read_table(path: Path) -> pa.Table:
    """An output file (CSV read as text, so ids stay as written) as a table."""
    if path.suffix == ".csv":
        return pcsv.read_csv(path)
    if path.suffix == ".parquet":
        return pq.read_table(path)
    import pyarrow.json as pjson

    return pjson.read_json(path) if path.stat().st_size else pa.table({})


@pytest.fixture(autouse=True)
def batch_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's folder is the batch root of the registry and workers (SHIPYARD_BATCH_ROOTS)."""
    monkeypatch.setenv("SHIPYARD_BATCH_ROOTS", str(tmp_path))
    return tmp_path


@pytest.fixture()
def registry(engine: Engine, tmp_path: Path, key_pair: tuple[Path, Path]) -> Registry:
    """A registry acting as 'alice' on the test's database, with a local artifact store,
    trusting the key that signs the test bundles (production requires signatures)."""
    made = Registry(engine, LocalStore(tmp_path / "artifacts"), actor="alice")
    made.trust_key("test-key", key_pair[1].read_text())
    return made


@pytest.fixture(scope="session")
def tumours() -> pa.Table:
    """2,000 generated tumour rows with an ``id`` column (T0000000, …)."""
    return tumour_rows(2_000, seed=1)


@sy.feature
def slow_double(x: Any) -> Any:
    """Twice x; while a test holds the ``gate``, a chunk with an x of 100 or more waits for it.

    So a job has scored its first rows and is surely still running when the test acts;
    the test lets it go by creating ``release`` in the folder $SHIPYARD_TEST_GATE (a held
    chunk fails after 60 s, so a test that forgot fails instead of hanging). Without the
    variable nothing waits.
    """
    import os
    import time
    from pathlib import Path

    gate = os.environ.get("SHIPYARD_TEST_GATE")
    if gate and (x >= 100).any():
        deadline = time.monotonic() + 60
        while not (Path(gate) / "release").exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the test never released the gate")
            time.sleep(0.01)
    return x * 2.0


@pytest.fixture()
def gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Holds the 'slow' model (in this process and the processes it starts) at x >= 100.

    Returns the gate's folder: ``(gate / "release").touch()`` lets every held chunk go.
    """
    folder = tmp_path / "gate"
    folder.mkdir()
    monkeypatch.setenv("SHIPYARD_TEST_GATE", str(folder))
    return folder


@pytest.fixture(scope="session")
def slow_bundle(tmp_path_factory: pytest.TempPathFactory, key_pair: tuple[Path, Path]) -> Path:
    """A bundle 'slow' 1.0.0 (table ``items``, column ``x``) that the ``gate`` fixture holds."""
    pipeline = sy.Pipeline(
        "slow",
        "1.0.0",
        inputs=[sy.Table("items", [sy.Column("x", "float64", min=0.0)])],
        nodes=[slow_double],
        outputs=["slow_double"],
    )
    return pipeline.export(tmp_path_factory.mktemp("slow-bundle"), sign_key=key_pair[0])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture()
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh bucket on the moto server (``client.bucket``); the environment points at it."""
    import uuid

    import boto3

    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    for name, value in {**credentials, "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SHIPYARD_S3_ENDPOINT_URL", s3_endpoint)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.bucket = f"batch-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=client.bucket)
    return client
