"""MANIFEST.json and MANIFEST.sig: what makes a bundle tamper-evident.

Standard library only (copied into every bundle). The manifest lists the sha256
of every other file of the bundle; MANIFEST.sig is an Ed25519 signature of the
manifest's exact bytes. Checking happens on bytes already read into memory, and
those same bytes are what gets deserialised afterwards, so a file cannot change
between the check and its use.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from . import _ed25519
from ._errors import SignatureError, TamperedArtifact

MANIFEST = "MANIFEST.json"
SIGNATURE = "MANIFEST.sig"
PUBLIC_KEY_ENV = "SHIPYARD_PUBLIC_KEY"


def sha256(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def build_manifest(files: Mapping[str, bytes]) -> bytes:
    """The MANIFEST.json bytes for ``files`` (bundle-relative paths, '/'-separated)."""
    entries = {
        path: sha256(files[path]) for path in sorted(files) if path not in (MANIFEST, SIGNATURE)
    }
    document = {"algorithm": "sha256", "files": entries}
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()


def _manifest_bytes(files: Mapping[str, bytes]) -> bytes:
    raw = files.get(MANIFEST)
    if raw is None:
        raise TamperedArtifact(f"{MANIFEST} is missing: the bundle cannot be checked", MANIFEST)
    return raw


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object that names no key twice (else the last value would silently win)."""
    found: dict[str, object] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"'{key}' is listed twice")
        found[key] = value
    return found


def check_files(files: Mapping[str, bytes]) -> dict[str, str]:
    """Check every file of a bundle against its manifest; return the manifest's entries.

    Raises TamperedArtifact naming the first file that was changed, added or is missing.
    """
    try:
        document = json.loads(_manifest_bytes(files), object_pairs_hook=_no_duplicates)
        entries = document["files"]
        if document.get("algorithm") != "sha256" or not isinstance(entries, dict):
            raise ValueError("unexpected layout")
    except (ValueError, KeyError, TypeError) as exc:
        raise TamperedArtifact(f"{MANIFEST} is unreadable ({exc})", MANIFEST) from None
    for path in sorted(entries):
        data = files.get(path)
        if data is None:
            raise TamperedArtifact(f"file '{path}' is listed in {MANIFEST} but missing", path)
        if sha256(data) != entries[path]:
            raise TamperedArtifact(
                f"file '{path}' was changed: its sha256 differs from {MANIFEST}", path
            )
    for path in sorted(files):
        if path not in entries and path not in (MANIFEST, SIGNATURE):
            raise TamperedArtifact(f"file '{path}' is not listed in {MANIFEST}: it was added", path)
    return dict(entries)


def load_public_key(key: str | bytes | os.PathLike[str] | None) -> bytes | None:
    """The raw Ed25519 public key from a PEM text, a path to a PEM file, or raw 32 bytes.

    With ``key=None`` the environment variable SHIPYARD_PUBLIC_KEY (a path or PEM text)
    is used; None is returned when neither is set. Raises SignatureError on a bad key.
    """
    if key is None:
        key = os.environ.get(PUBLIC_KEY_ENV) or None
        if key is None:
            return None
    if isinstance(key, bytes) and len(key) == 32:
        return key
    text: str | bytes
    if isinstance(key, os.PathLike) or (isinstance(key, str) and "-----BEGIN" not in key):
        try:
            text = Path(key).read_bytes()
        except OSError as exc:
            raise SignatureError(f"cannot read public key file '{key}': {exc.strerror}") from None
    else:
        text = key
    try:
        return _ed25519.public_key_from_pem(text)
    except ValueError as exc:
        raise SignatureError(f"bad public key: {exc}") from None


def verify_signature(manifest: bytes, signature: bytes | None, public_key: bytes) -> None:
    """Check MANIFEST.sig against ``public_key``; raise SignatureError if it does not hold."""
    if signature is None:
        raise SignatureError(
            f"a public key is configured but the bundle has no {SIGNATURE}: it was not signed"
        )
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except ValueError:
        raise SignatureError(f"{SIGNATURE} is not base64: the signature was damaged") from None
    if not _verify(public_key, raw, manifest):
        raise SignatureError(
            f"{SIGNATURE} does not match: the manifest was changed or signed by another key"
        )


def verify_bundle(files: Mapping[str, bytes], public_key: bytes | None) -> dict[str, object]:
    """Check files and, when ``public_key`` is given, the signature; return a short report.

    Raises TamperedArtifact or SignatureError. The report says whether the bundle is
    signed and whether the signature was checked. With a key, the signature is checked
    first: a changed manifest is then reported as such (SignatureError), not as a
    changed file, and no file is trusted on the word of an unsigned manifest.
    """
    if public_key is not None:
        verify_signature(_manifest_bytes(files), files.get(SIGNATURE), public_key)
    entries = check_files(files)
    signed = SIGNATURE in files
    return {"files": len(entries), "signed": signed, "signature_checked": public_key is not None}


def key_id(public_key: bytes) -> str:
    """A public key's short, stable name: the first 16 hex digits of sha256 of its raw bytes."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def signature_key(files: Mapping[str, bytes], keys: Mapping[str, bytes]) -> str | None:
    """The id (a key of ``keys``) of the key whose signature MANIFEST.sig is, or None.

    None when the bundle is unsigned, its signature is malformed, or no key matches.
    Checks nothing else: call ``verify_bundle`` for the files.
    """
    signature = files.get(SIGNATURE)
    if signature is None:
        return None
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except ValueError:
        return None
    manifest = _manifest_bytes(files)
    for name, public_key in keys.items():
        if _verify(public_key, raw, manifest):
            return name
    return None


def _verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:  # the C implementation when the host has it; the answer is the same
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        return _ed25519.verify(public_key, signature, message)
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
