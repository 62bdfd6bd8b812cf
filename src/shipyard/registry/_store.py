"""The artifact store: bundle blobs addressed by their sha256, in a folder or on S3.

``SHIPYARD_ARTIFACT_STORE`` picks it: a folder path (default ``$SHIPYARD_HOME/artifacts``)
or ``s3://bucket/prefix``; ``SHIPYARD_S3_ENDPOINT_URL`` points boto3 at an S3-compatible
endpoint (MinIO, Ceph, moto); credentials and region come from boto3's usual chain.

A blob is never visible half-written or corrupt under its final name: the local store
writes a temporary file in the same folder, checks its sha256 and renames it; the S3 store
uploads to a temporary key (``prefix/tmp/…``), reads it back to check its sha256, then
copies it server-side to ``prefix/sha256/<digest>``. A crash can leave a stray object under
``tmp/`` (an S3 lifecycle rule can expire them), never a bad blob. Reads check the sha256
again and raise StoreError on a mismatch.

A write the local file system refuses removes the temporary file and raises StoreFull
(no room: disk full, quota, file size limit), StoreReadOnly (a read-only file system, no
permission) or StoreError, each naming the store and the system's reason.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from ..errors import InvalidInput, StoreError, StoreFull, StoreReadOnly
from ._db import shipyard_home

STORE_ENV = "SHIPYARD_ARTIFACT_STORE"
S3_ENDPOINT_ENV = "SHIPYARD_S3_ENDPOINT_URL"
_CHUNK = 1 << 20


def file_digest(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_digest(digest: str) -> str:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidInput(f"'{digest}' is not a sha256 digest (64 lowercase hex digits)")
    return digest


def _missing(digest: str, url: str) -> StoreError:
    return StoreError(f"blob {digest} is missing from the artifact store {url}")


def _corrupt(digest: str, url: str) -> StoreError:
    return StoreError(f"blob {digest} in {url} is corrupt (its sha256 differs)")


_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NOT_ALLOWED = {errno.EROFS, errno.EACCES, errno.EPERM}


def _refused(url: str, exc: OSError, doing: str) -> StoreError:
    """What the file system said when ``doing`` (``written``, ``read``) the store at ``url``."""
    cause = exc.strerror or str(exc)
    if exc.errno in _NO_ROOM:
        return StoreFull(f"artifact store '{url}' has no room: {cause}; nothing was stored")
    if exc.errno in _NOT_ALLOWED and doing == "written":
        return StoreReadOnly(f"artifact store '{url}' is read-only: {cause}; nothing was stored")
    return StoreError(f"artifact store '{url}' cannot be {doing}: {cause}")


class ArtifactStore(Protocol):
    """Where bundle blobs live; every method takes or returns a sha256 hex digest."""

    url: str

    def put(self, path: str | os.PathLike[str]) -> str:
        """Store the file at ``path`` (no-op when already stored); return its digest."""
        ...

    def exists(self, digest: str) -> bool:
        """True when a blob with this digest is stored."""
        ...

    def get(self, digest: str) -> bytes:
        """The blob's bytes; StoreError when missing or when its sha256 differs."""
        ...

    def fetch(self, digest: str, destination: str | os.PathLike[str]) -> Path:
        """Write the blob to the file ``destination`` atomically, verified; return its path."""
        ...


def _write_verified(source: BinaryIO, digest: str, destination: Path) -> Path:
    """Copy ``source`` to ``destination`` through a temporary file; refuse a sha256 mismatch."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".partial-", dir=destination.parent)
    try:
        hasher = hashlib.sha256()
        with os.fdopen(handle, "wb") as out:
            for chunk in iter(lambda: source.read(_CHUNK), b""):
                hasher.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if hasher.hexdigest() != digest:
            raise StoreError(
                f"blob {digest} is corrupt: its content hashes to {hasher.hexdigest()}"
            )
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return destination


class LocalStore:
    """Blobs in a local folder, as ``sha256/<first two digits>/<digest>``."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.url = str(self.folder)

    def _path(self, digest: str) -> Path:
        return self.folder / "sha256" / digest[:2] / _check_digest(digest)

    def put(self, path: str | os.PathLike[str]) -> str:
        """Store a copy of the file (temporary file + rename); return its sha256.

        Raises StoreFull (no room), StoreReadOnly (writing not allowed) or StoreError,
        leaving nothing under the store's folder but the folders it made.
        """
        digest = file_digest(path)
        target = self._path(digest)
        with open(path, "rb") as source:
            try:
                if not target.exists():
                    _write_verified(source, digest, target)
            except OSError as exc:  # the temporary file is gone already
                raise _refused(self.url, exc, "written") from exc
        return digest

    def exists(self, digest: str) -> bool:
        """True when the blob is stored."""
        return self._path(digest).is_file()

    def get(self, digest: str) -> bytes:
        """The blob's bytes, verified against the digest."""
        try:
            data = self._path(digest).read_bytes()
        except FileNotFoundError:
            raise _missing(digest, self.url) from None
        except OSError as exc:
            raise _refused(self.url, exc, "read") from exc
        if hashlib.sha256(data).hexdigest() != digest:
            raise _corrupt(digest, self.url)
        return data

    def fetch(self, digest: str, destination: str | os.PathLike[str]) -> Path:
        """Copy the blob to ``destination`` (verified, atomic)."""
        try:
            source = open(self._path(digest), "rb")  # noqa: SIM115 (closed below)
        except FileNotFoundError:
            raise _missing(digest, self.url) from None
        except OSError as exc:
            raise _refused(self.url, exc, "read") from exc
        with source:  # a fault writing ``destination`` is the caller's folder's, not the store's
            return _write_verified(source, digest, Path(destination))

    def __repr__(self) -> str:
        return f"LocalStore({self.url!r})"


class S3Store:
    """Blobs in an S3 bucket under ``prefix/sha256/<digest>``.

    ``client`` is a boto3 S3 client; by default one is made with ``endpoint_url`` (or
    ``$SHIPYARD_S3_ENDPOINT_URL``) and boto3's credential chain. Blobs go up in one PUT
    (objects up to 5 GB) carrying ``ChecksumSHA256``, which AWS S3 itself checks too.
    """

    def __init__(self, url: str, *, endpoint_url: str | None = None, client: Any = None) -> None:
        if not url.startswith("s3://") or not url[5:].strip("/"):
            raise InvalidInput(f"artifact store '{url}' is not of the form s3://bucket/prefix")
        bucket, _, prefix = url[5:].partition("/")
        self.url = url
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if client is None:
            import boto3

            endpoint = endpoint_url or os.environ.get(S3_ENDPOINT_ENV) or None
            client = boto3.client("s3", endpoint_url=endpoint)
        self.client = client

    def _key(self, digest: str) -> str:
        key = f"sha256/{_check_digest(digest)}"
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, exc: Exception, digest: str) -> StoreError:
        return StoreError(f"artifact store {self.url}: blob {digest}: {exc}")

    def put(self, path: str | os.PathLike[str]) -> str:
        """Upload the file unless a blob with its sha256 exists; return the digest.

        The body goes to a temporary key, is read back and hashed, and only then copied
        (server side, atomically) to its final key: S3-compatible stores that ignore
        ``ChecksumSHA256`` still never show a corrupt or partial blob. Raises StoreError.
        """
        digest = file_digest(path)
        if self.exists(digest):
            return digest
        temporary = self._key(digest).replace("sha256/", f"tmp/{uuid.uuid4().hex}-", 1)
        checksum = base64.b64encode(bytes.fromhex(digest)).decode("ascii")
        try:
            with open(path, "rb") as body:
                self.client.put_object(
                    Bucket=self.bucket, Key=temporary, Body=body, ChecksumSHA256=checksum
                )
            uploaded = self.client.get_object(Bucket=self.bucket, Key=temporary)["Body"]
            hasher = hashlib.sha256()
            for chunk in iter(lambda: uploaded.read(_CHUNK), b""):
                hasher.update(chunk)
            if hasher.hexdigest() != digest:
                raise StoreError(
                    f"artifact store {self.url}: upload of blob {digest} arrived corrupt "
                    f"(sha256 {hasher.hexdigest()}); nothing was stored"
                )
            self.client.copy_object(
                Bucket=self.bucket,
                Key=self._key(digest),
                CopySource={"Bucket": self.bucket, "Key": temporary},
            )
        except StoreError:
            raise
        except Exception as exc:  # botocore raises many unrelated classes
            raise self._error(exc, digest) from exc
        finally:
            with contextlib.suppress(Exception):
                self.client.delete_object(Bucket=self.bucket, Key=temporary)
        return digest

    def exists(self, digest: str) -> bool:
        """True when the object exists (a HEAD request)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(digest))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._error(exc, digest) from exc
        return True

    def _open(self, digest: str) -> BinaryIO:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(digest))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise _missing(digest, self.url) from None
            raise self._error(exc, digest) from exc
        body: BinaryIO = response["Body"]
        return body

    def get(self, digest: str) -> bytes:
        """The blob's bytes, verified against the digest."""
        data = self._open(digest).read()
        if hashlib.sha256(data).hexdigest() != digest:
            raise _corrupt(digest, self.url)
        return data

    def fetch(self, digest: str, destination: str | os.PathLike[str]) -> Path:
        """Download the blob to ``destination`` (streamed, verified, atomic)."""
        body = self._open(digest)
        try:
            return _write_verified(body, digest, Path(destination))
        finally:
            body.close()

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"


def open_store(location: str | None = None) -> LocalStore | S3Store:
    """The store at ``location`` (default: ``$SHIPYARD_ARTIFACT_STORE`` or the home folder)."""
    location = location or os.environ.get(STORE_ENV) or str(shipyard_home() / "artifacts")
    if location.startswith("s3://"):
        return S3Store(location)
    return LocalStore(location)
