"""Build a bundle: compile the pipeline, hash every file, sign, write one tar.gz atomically."""

from __future__ import annotations

import base64
import datetime as _dt
import gzip
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..pipeline import Pipeline
from ..pipeline._compile import compile_files
from ..runtime._manifest import MANIFEST, SIGNATURE, build_manifest
from ._keys import load_private_key


def sign_files(files: dict[str, bytes], sign_key: str | Path | bytes | None) -> dict[str, bytes]:
    """Add MANIFEST.json (and MANIFEST.sig when a key is given) to ``files``; return them."""
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


def build(
    pipeline: Pipeline,
    directory: str | Path,
    *,
    reference: Any = None,
    sign_key: str | Path | bytes | None = None,
    created_by: str | None = None,
    backend: str = "auto",
) -> Path:
    """Export ``pipeline`` as ``directory/NAME-VERSION.tar.gz``; return the path.

    ``backend`` is ``auto`` (ONNX where parity with the native model holds on
    ``reference``), ``onnx`` (required for every convertible model) or ``native``.
    Raises ModelError when a model cannot be saved (or, with ``onnx``, converted),
    SchemaError when ``reference`` does not fit the declared inputs, SignatureError on
    a bad signing key, UsageError on a bad backend.
    """
    if sign_key is not None:
        load_private_key(sign_key)  # fail on a bad key before the expensive work
    files = sign_files(
        compile_files(pipeline, reference=reference, created_by=created_by, backend=backend),
        sign_key,
    )
    created = json.loads(files["metadata.json"])["created_at"]
    mtime = int(_dt.datetime.fromisoformat(created).timestamp())
    target = Path(directory) / f"{pipeline.name}-{pipeline.version}.tar.gz"
    return write_bundle(pipeline.bundle_name, files, target, mtime)
