"""Audit anchors: the head of the audit chain written to a witness outside the database.

Whoever can rewrite every audit row and the head row can forge a consistent chain; an
anchor taken earlier and kept elsewhere exposes it. A witness is a folder (one file per
anchor) or an S3 prefix (one object per anchor), written once and never overwritten:

    anchor-000000000042.json    {"sequence": 42, "hash": "3f9c…", "at": "2026-12-01T…Z"}

Folder files are created with O_EXCL; S3 objects with ``If-None-Match: *`` (conditional
writes). Writing the same anchor twice is harmless; a different one at the same
sequence means the chain was rewritten, and is refused. The registry anchors after every
promotion and rollback when ``SHIPYARD_AUDIT_ANCHORS`` names a witness, and on demand
(``shipyard audit anchor``); ``audit verify --anchors LOCATION`` checks the chain against
every anchor found there.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Protocol

from ..errors import AuditBroken, InvalidInput, StoreError
from ._store import S3_ENDPOINT_ENV
from ._types import AuditAnchor

ANCHORS_ENV = "SHIPYARD_AUDIT_ANCHORS"
_NAME = re.compile(r"anchor-(\d{12})\.json")


class Witness(Protocol):
    """Somewhere anchors are written once and read back."""

    location: str

    def write(self, anchor: AuditAnchor) -> None:
        """Write ``anchor`` unless it is there; raise AuditBroken if another one is."""
        ...

    def read_all(self) -> list[AuditAnchor]:
        """Every anchor, in sequence order."""
        ...


def _name(sequence: int) -> str:
    return f"anchor-{sequence:012d}.json"


def _encode(anchor: AuditAnchor) -> bytes:
    body = {"sequence": anchor.sequence, "hash": anchor.hash, "at": anchor.at}
    return (json.dumps(body, sort_keys=True) + "\n").encode()


def _decode(where: str, data: bytes) -> AuditAnchor:
    try:
        body = json.loads(data)
        return AuditAnchor(int(body["sequence"]), str(body["hash"]), str(body["at"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"audit anchor {where} is unreadable ({exc})") from None


def _same_or_refuse(existing: AuditAnchor, anchor: AuditAnchor, where: str) -> None:
    if existing.hash != anchor.hash:
        raise AuditBroken(
            anchor.sequence,
            f"anchor {where} records hash {existing.hash[:12]}… for this event, the log now "
            f"has {anchor.hash[:12]}… (the chain was rewritten)",
        )


class FolderWitness:
    """Anchors as files in a local (or mounted) folder."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.location = str(self.folder)

    def write(self, anchor: AuditAnchor) -> None:
        """Create the anchor's file exclusively; an existing one must agree."""
        target = self.folder / _name(anchor.sequence)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileExistsError:
            _same_or_refuse(_decode(str(target), target.read_bytes()), anchor, str(target))
            return
        except OSError as exc:
            raise StoreError(f"cannot write audit anchor {target}: {exc.strerror}") from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(_encode(anchor))
            handle.flush()
            os.fsync(handle.fileno())

    def read_all(self) -> list[AuditAnchor]:
        """Every anchor file of the folder, in sequence order."""
        if not self.folder.is_dir():
            raise InvalidInput(f"audit anchors folder '{self.folder}' does not exist")
        found = [
            _decode(str(path), path.read_bytes())
            for path in sorted(self.folder.iterdir())
            if _NAME.fullmatch(path.name)
        ]
        return sorted(found, key=lambda a: a.sequence)


class S3Witness:
    """Anchors as objects under ``s3://bucket/prefix``, each written once."""

    def __init__(self, url: str, client: Any = None) -> None:
        bucket, _, prefix = url[5:].partition("/")
        if not bucket:
            raise InvalidInput(f"audit anchors '{url}' is not of the form s3://bucket/prefix")
        self.location = url
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=os.environ.get(S3_ENDPOINT_ENV) or None)
        self.client = client

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def write(self, anchor: AuditAnchor) -> None:
        """Put the object only if absent (If-None-Match); an existing one must agree."""
        from botocore.exceptions import ClientError

        key = self._key(_name(anchor.sequence))
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=_encode(anchor), IfNoneMatch="*"
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
                raise StoreError(
                    f"cannot write audit anchor s3://{self.bucket}/{key}: {exc}"
                ) from None
            data = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            _same_or_refuse(_decode(key, data), anchor, f"s3://{self.bucket}/{key}")

    def read_all(self) -> list[AuditAnchor]:
        """Every anchor object under the prefix, in sequence order."""
        found = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key("anchor-")
        )
        for page in pages:
            for item in page.get("Contents", []):
                if _NAME.fullmatch(item["Key"].rsplit("/", 1)[-1]):
                    data = self.client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"]
                    found.append(_decode(item["Key"], data.read()))
        return sorted(found, key=lambda a: a.sequence)


def open_witness(location: str) -> Witness:
    """The witness a location names: ``s3://bucket/prefix`` or a folder path."""
    if not location:
        raise InvalidInput("an audit anchor location is empty")
    if location.startswith("s3://"):
        return S3Witness(location)
    return FolderWitness(location)


def configured_witness() -> Witness | None:
    """The witness $SHIPYARD_AUDIT_ANCHORS names, or None."""
    location = os.environ.get(ANCHORS_ENV)
    return open_witness(location) if location else None
