"""Verify a bundle's files, then load them into an executor; say when the host differs.

Copied into every bundle: the bundle's entry points load themselves with these
functions, and Spark workers keep one executor per bundle with ``cached_executor``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import _manifest
from ._errors import TamperedArtifact, VersionMismatchWarning
from ._executor import Executor
from ._llm import Endpoint


def read_directory(root: str | os.PathLike[str]) -> dict[str, bytes]:
    """Every file under ``root`` as ``{relative/path: bytes}`` (skipping Python caches)."""
    base = Path(root)
    files: dict[str, bytes] = {}
    for path in sorted(base.rglob("*")):
        if path.is_file() and "__pycache__" not in path.relative_to(base).parts:
            files[path.relative_to(base).as_posix()] = path.read_bytes()
    return files


_warned: set[str] = set()


def check_versions(versions: Mapping[str, Any], where: str) -> list[str]:
    """Compare the host's Python and libraries with versions.json; warn once if major.minor differ.

    Returns the differences as lines such as ``scikit-learn: bundle 1.5.2, here 1.4.0``.
    """
    import platform
    from importlib import metadata

    def major_minor(version: str) -> tuple[str, ...]:
        parts = (version.split(".") + ["0"])[:2]  # "2" and "2.0.1" are the same major.minor
        return tuple(parts)

    differences = []
    recorded = versions.get("python")
    here = platform.python_version()
    if recorded and major_minor(recorded) != major_minor(here):
        differences.append(f"python: bundle {recorded}, here {here}")
    for package, wanted in sorted((versions.get("packages") or {}).items()):
        try:
            found = metadata.version(package)
        except metadata.PackageNotFoundError:
            differences.append(f"{package}: bundle {wanted}, here not installed")
            continue
        if major_minor(found) != major_minor(wanted):
            differences.append(f"{package}: bundle {wanted}, here {found}")
    key = where + "|" + ";".join(differences)
    if differences and key not in _warned:
        _warned.add(key)
        warnings.warn(
            f"{where} was built with other library versions; results may differ: "
            + "; ".join(differences),
            VersionMismatchWarning,
            stacklevel=3,
        )
    return differences


def load(
    files: Mapping[str, bytes],
    public_key: str | bytes | os.PathLike[str] | None = None,
    *,
    allow_unsafe: bool = True,
    endpoint: Endpoint | None = None,
) -> Executor:
    """Verify ``files`` (manifest, and signature when a key is given or configured) and load them.

    Nothing is deserialised before the check passes. Raises TamperedArtifact,
    SignatureError or IncompatibleArtifact. A checked signature lets the skops types
    Shipyard trusts only in signed bundles load; ``allow_unsafe`` (default True: the
    bundle's entry points load what they hold, as before) lets pickles and skops types
    beyond the allow-list load, else they raise ModelError (see ``Executor``). llm nodes
    call ``endpoint`` (default: the one the host's SHIPYARD_LLM_* variables name).
    """
    report = _manifest.verify_bundle(files, _manifest.load_public_key(public_key))
    signed = bool(report["signature_checked"])
    return Executor(files, signed=signed, allow_unsafe=allow_unsafe, endpoint=endpoint)


def load_files(
    files: Mapping[str, bytes],
    entry_point: str,
    *,
    allow_unsafe: bool = True,
    endpoint: Endpoint | None = None,
) -> Executor:
    """``load`` for one entry point, warning when the host's library versions differ."""
    executor = load(files, allow_unsafe=allow_unsafe, endpoint=endpoint)
    versions_file = f"{entry_point}/versions.json"
    if versions_file in files:
        check_versions(
            json.loads(files[versions_file]), f"bundle {executor.name} {executor.version}"
        )
    return executor


def load_directory(
    root: str | os.PathLike[str], entry_point: str, *, allow_unsafe: bool = True
) -> Executor:
    """Load an extracted bundle folder for one of its entry points (used by the entry points)."""
    return load_files(read_directory(root), entry_point, allow_unsafe=allow_unsafe)


_cache: dict[tuple[str, Endpoint | None], Executor] = {}


def cached_executor(
    key: str,
    files: Mapping[str, bytes],
    entry_point: str = "pyspark_dataframe",
    endpoint: Endpoint | None = None,
) -> Executor:
    """``load_files`` once per process for the bundle whose MANIFEST.json hashes to ``key``
    and whose llm nodes call ``endpoint`` (None: the host's SHIPYARD_LLM_* variables).

    Spark workers score many batches of one bundle. Raises TamperedArtifact when
    ``files`` are not that bundle's.
    """
    executor = _cache.get((key, endpoint))
    if executor is None:
        if _manifest.sha256(files.get(_manifest.MANIFEST, b"")) != key:
            raise TamperedArtifact(
                f"{_manifest.MANIFEST} is not the one the driver sent", _manifest.MANIFEST
            )
        executor = load_files(files, entry_point, endpoint=endpoint)
        _cache[(key, endpoint)] = executor
    return executor
