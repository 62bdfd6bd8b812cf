"""The artifact store, local and S3 (a real moto S3 server on loopback)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from sqlalchemy.engine import Engine

from shipyard.errors import StoreReadOnly
from shipyard.registry import LocalStore, Registry, S3Store, StoreError, open_store

from ..cli.test_cli import run_cli
from .conftest import MODEL

CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region_name": "us-east-1",
}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, for this module."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture()
def s3_client(s3_endpoint: str) -> Any:
    """A boto3 client on the moto server with dummy credentials, and a fresh bucket."""
    client = boto3.client("s3", endpoint_url=s3_endpoint, **CREDENTIALS)
    client.bucket = f"shipyard-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=client.bucket)
    return client


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LocalStore | S3Store:
    """Each kind of store, empty."""
    if request.param == "local":
        return LocalStore(tmp_path / "blobs")
    client = request.getfixturevalue("s3_client")
    return S3Store(f"s3://{client.bucket}/team/artifacts", client=client)


@pytest.fixture()
def blob(tmp_path: Path) -> tuple[Path, str]:
    """A 3 MB file and its sha256."""
    data = os.urandom(3 << 20)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_put_get_fetch_round_trip(
    store: LocalStore | S3Store, blob: tuple[Path, str], tmp_path: Path
) -> None:
    path, digest = blob
    assert not store.exists(digest)
    assert store.put(path) == digest
    assert store.exists(digest)
    assert store.get(digest) == path.read_bytes()
    fetched = store.fetch(digest, tmp_path / "out" / "copy.bin")
    assert fetched.read_bytes() == path.read_bytes()
    assert store.put(path) == digest  # idempotent


def test_a_missing_blob_is_a_clear_error(store: LocalStore | S3Store, tmp_path: Path) -> None:
    digest = "ab" * 32
    with pytest.raises(StoreError, match=f"blob {digest} is missing from the artifact store"):
        store.get(digest)
    with pytest.raises(StoreError, match="missing"):
        store.fetch(digest, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()


def test_s3_blobs_live_under_the_prefix(s3_client: Any, blob: tuple[Path, str]) -> None:
    store = S3Store(f"s3://{s3_client.bucket}/team/artifacts", client=s3_client)
    store.put(blob[0])
    listed = s3_client.list_objects_v2(Bucket=s3_client.bucket)["Contents"]
    assert [o["Key"] for o in listed] == [f"team/artifacts/sha256/{blob[1]}"]


def test_a_corrupt_blob_is_refused_on_read(
    s3_client: Any, blob: tuple[Path, str], tmp_path: Path
) -> None:
    store = S3Store(f"s3://{s3_client.bucket}", client=s3_client)
    path, digest = blob
    store.put(path)
    s3_client.put_object(Bucket=s3_client.bucket, Key=f"sha256/{digest}", Body=b"rotten")
    with pytest.raises(StoreError, match="corrupt"):
        store.get(digest)
    with pytest.raises(StoreError, match="corrupt"):
        store.fetch(digest, tmp_path / "copy.bin")
    assert list(tmp_path.glob("copy.bin*")) == [] and list(tmp_path.glob(".partial-*")) == []


def test_a_corrupt_local_blob_is_refused_on_read(tmp_path: Path, blob: tuple[Path, str]) -> None:
    store = LocalStore(tmp_path / "blobs")
    store.put(blob[0])
    stored = next((tmp_path / "blobs").rglob(blob[1]))
    stored.write_bytes(b"rotten")
    with pytest.raises(StoreError, match="corrupt"):
        store.get(blob[1])


class _CorruptingClient:
    """A boto3 client whose uploads arrive damaged, as a flaky network might deliver them."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def put_object(self, **kwargs: Any) -> Any:
        kwargs.pop("ChecksumSHA256")  # moto would not check it; AWS S3 would refuse
        return self._client.put_object(**{**kwargs, "Body": b"damaged in transit"})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_corrupt_upload_leaves_no_blob(s3_client: Any, blob: tuple[Path, str]) -> None:
    store = S3Store(f"s3://{s3_client.bucket}/p", client=_CorruptingClient(s3_client))
    path, digest = blob
    with pytest.raises(StoreError, match="arrived corrupt .* nothing was stored"):
        store.put(path)
    assert not store.exists(digest)
    assert s3_client.list_objects_v2(Bucket=s3_client.bucket).get("Contents", []) == []


def test_an_interrupted_local_write_leaves_no_blob(
    tmp_path: Path, blob: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "blobs")

    def crash(*args: Any) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    expected = re.escape(f"artifact store '{store.url}' cannot be written: power cut")
    with pytest.raises(StoreError, match=expected):
        store.put(blob[0])
    monkeypatch.undo()
    assert not store.exists(blob[1])
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []


def read_only_folder(tmp_path: Path) -> Path:
    """A folder path under which this process cannot create anything: below a folder made
    read-only, or, for root (whom permissions do not stop), below /sys, where the kernel
    lets no one create files."""
    if os.geteuid() == 0:
        return Path("/sys/kernel") / f"shipyard-test-{uuid.uuid4().hex[:8]}"
    parent = tmp_path / "read-only"
    parent.mkdir()
    parent.chmod(0o555)
    return parent / "artifacts"


def test_a_read_only_store_says_so_and_the_registry_records_nothing(
    engine: Engine, tmp_path: Path, bundles: list[Path]
) -> None:
    folder = read_only_folder(tmp_path)
    registry = Registry(engine, LocalStore(folder), actor="alice")
    registry.create_project("demo")
    events = len(registry.audit_list())
    expected = re.escape(f"artifact store '{folder}' is read-only: ") + ".+; nothing was stored"
    with pytest.raises(StoreReadOnly, match=expected):
        registry.register_model("demo", bundles[0])
    assert registry.list_models("demo") == []
    assert len(registry.audit_list()) == events
    assert not folder.exists()


# Run in a child: its file size limit (RLIMIT_FSIZE) makes every write past 1 MiB fail with
# EFBIG, as a full disk fails a write with ENOSPC; SIGXFSZ, which would kill it, is ignored.
_LIMITED_PUT = """
import resource, signal, sys
from shipyard.registry import LocalStore, StoreError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    LocalStore(sys.argv[1]).put(sys.argv[2])
except StoreError as exc:
    print(type(exc).__name__, exc)
"""


def test_a_store_without_room_says_so_and_leaves_no_partial_blob(
    tmp_path: Path, blob: tuple[Path, str]
) -> None:
    folder = tmp_path / "blobs"
    done = subprocess.run(
        [sys.executable, "-c", _LIMITED_PUT, str(folder), str(blob[0])],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"StoreFull artifact store '{folder}' has no room: File too large; nothing was stored"
    )
    assert [p for p in folder.rglob("*") if p.is_file()] == []
    assert not LocalStore(folder).exists(blob[1])


def test_the_cli_names_a_read_only_store_in_one_line(
    database_url: str,
    tmp_path: Path,
    bundles: list[Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = read_only_folder(tmp_path)
    for name in ("SHIPYARD_URL", "SHIPYARD_TOKEN", "SHIPYARD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHIPYARD_DATABASE_URL", database_url)
    monkeypatch.setenv("SHIPYARD_ARTIFACT_STORE", str(folder))
    assert run_cli(capsys, "project", "create", "demo")[0] == 0
    code, _, err = run_cli(capsys, "model", "register", str(bundles[0]), "--project", "demo")
    assert code == 1
    assert err.startswith(f"error: artifact store '{folder}' is read-only: "), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, out, _ = run_cli(capsys, "model", "list", "--project", "demo", "--json")
    assert (code, json.loads(out)) == (0, [])


def test_open_store_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, s3_endpoint: str, s3_client: Any
) -> None:
    monkeypatch.delenv("SHIPYARD_ARTIFACT_STORE", raising=False)
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    local = open_store()
    assert isinstance(local, LocalStore) and local.folder == tmp_path / "home" / "artifacts"
    monkeypatch.setenv("SHIPYARD_ARTIFACT_STORE", f"s3://{s3_client.bucket}/x")
    monkeypatch.setenv("SHIPYARD_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    remote = open_store()
    assert isinstance(remote, S3Store) and (remote.bucket, remote.prefix) == (s3_client.bucket, "x")
    path = tmp_path / "small.bin"
    path.write_bytes(b"hello")
    assert remote.get(remote.put(path)) == b"hello"


def test_a_registry_on_s3_registers_and_fetches_bundles(
    registry: Registry, s3_client: Any, bundles: list[Path], tmp_path: Path
) -> None:
    on_s3 = Registry(
        registry.engine, S3Store(f"s3://{s3_client.bucket}/reg", client=s3_client), "bob"
    )
    on_s3.create_project("demo")
    version = on_s3.register_model("demo", bundles[0])
    fetched = on_s3.fetch_bundle("demo", MODEL, version.version_id, tmp_path)
    assert fetched.read_bytes() == bundles[0].read_bytes()
