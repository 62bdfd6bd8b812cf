"""Ed25519 signing keys (PEM files: PKCS#8 private key, SubjectPublicKeyInfo public key)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..errors import SignatureError, UsageError


def generate_key_pair(
    directory: str | Path, name: str = "shipyard", overwrite: bool = False
) -> tuple[Path, Path]:
    """Write ``NAME.key`` (private, mode 0600) and ``NAME.pub`` into ``directory``; return both.

    Raises UsageError rather than overwrite an existing key unless ``overwrite``.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    private_path, public_path = folder / f"{name}.key", folder / f"{name}.pub"
    if not overwrite and (private_path.exists() or public_path.exists()):
        raise UsageError(
            f"'{private_path}' or '{public_path}' already exists; pass --force to replace them"
        )
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if overwrite:
        # Opening an existing file keeps its mode (perhaps 0644): make a new one instead.
        private_path.unlink(missing_ok=True)
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path


def load_private_key(key: str | Path | bytes) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file path or PEM bytes; raises SignatureError otherwise."""
    if isinstance(key, bytes):
        data = key
    else:
        try:
            data = Path(key).read_bytes()
        except OSError as exc:
            raise SignatureError(f"cannot read signing key '{key}': {exc.strerror}") from None
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(
            f"the signing key is not an unencrypted PEM private key ({exc})"
        ) from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise SignatureError(
            "the signing key is not an Ed25519 key (make one with 'shipyard key generate')"
        )
    return loaded
