"""The bundle writer: sign a bundle's files and write them as one reproducible tar.gz.

It works on files and bytes (``{relative/path: bytes}``) and knows nothing of pipelines:
``Pipeline.export`` compiles the files, then calls ``sign_files`` and ``write_bundle``.
"""

from __future__ import annotations

import base64
import gzip
import io
import os
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ..runtime import MANIFEST, SIGNATURE, build_manifest
from ._keys import load_private_key


def sign_files(files: dict[str, bytes], sign_key: str | Path | bytes | None) -> dict[str, bytes]:
    """Add MANIFEST.json (and MANIFEST.sig when a key is given) to ``files``; return them.

    ``sign_key`` is an Ed25519 private key, a PEM path or PEM bytes; a bad one raises
    SignatureError.
    """
    manifest = build_manifest(files)
    files[MANIFEST] = manifest
    if sign_key is not None:
        signature = load_private_key(sign_key).sign(manifest)
        files[SIGNATURE] = base64.b64encode(signature) + b"\n"
    return files


def write_bundle(package: str, files: Mapping[str, bytes], path: Path, mtime: int) -> Path:
    """Write ``files`` under ``package/`` as a reproducible tar.gz at ``path``, atomically.

    The archive appears under its final name only when complete.
    """
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=mtime) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        folders: set[str] = set()
        for relative in sorted(files):
            parts = relative.split("/")
            for depth in range(0, len(parts)):
                folder = "/".join([package, *parts[:depth]])
                if folder not in folders:
                    folders.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
                    archive.addfile(info)
            info = tarfile.TarInfo(f"{package}/{relative}")
            info.size, info.mode, info.mtime = len(files[relative]), 0o644, mtime
            archive.addfile(info, io.BytesIO(files[relative]))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".partial", dir=path.parent
    )
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(buffer.getvalue())
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path
