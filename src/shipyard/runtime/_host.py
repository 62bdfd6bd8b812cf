"""Loading a bundle on a production host with the host's own code, never the bundle's.

A bundle carries a copy of the runtime in ``_runtime/`` so that it can run where Shipyard
is not installed, and its entry points check their own files on import. That check is
done by code from the bundle itself: whoever can change the bundle can change the check,
so it guards against accidents (a truncated copy, a file edited by hand), not against an
attacker. ``load_verified`` is the production path: it runs from the installed
``shipyard.runtime`` (not copied into bundles), reads every file of the bundle into memory,
checks the signature against a key the host holds and every file against the signed
manifest, and only then builds an executor from this module's code. Nothing of the bundle
is imported: its ``_runtime/`` and entry points are data to it, and the captured feature
source and the models are loaded only after the check, by the host's loaders.

Standard library only to import, like the rest of ``shipyard.runtime``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from . import _manifest
from ._artifact import MAX_BUNDLE_ENV, _max_bundle_bytes, build_executor, read_bundle
from ._errors import ArtifactError, SignatureError, TamperedArtifact, UsageError

if TYPE_CHECKING:
    from ._executor import Executor

ENTRY_POINTS = ("python_dict", "pyspark_dataframe")


def read_folder(root: str | os.PathLike[str]) -> dict[str, bytes]:
    """Every file of an extracted bundle folder as ``{relative/path: bytes}``.

    Refuses, naming the path, what ``read_bundle`` refuses in an archive: links (a symlink
    could point anywhere on the host), device files and FIFOs. Python's ``__pycache__``
    folders are skipped: an import of the bundle leaves them, and this loader never
    imports. The same size cap as for an archive applies (SHIPYARD_MAX_BUNDLE_BYTES).
    """
    base = Path(root)
    if not base.is_dir():
        raise ArtifactError(f"bundle folder '{base}' does not exist")
    limit = _max_bundle_bytes()
    total = 0
    files: dict[str, bytes] = {}
    for directory, folders, names in os.walk(base, followlinks=False):
        here = Path(directory)
        for folder in list(folders):
            relative = (here / folder).relative_to(base).as_posix()
            if os.path.islink(here / folder):
                raise TamperedArtifact(f"'{relative}' is a link, not a folder", relative)
            if folder == "__pycache__":
                folders.remove(folder)
        for name in names:
            path = here / name
            relative = PurePosixPath(path.relative_to(base).as_posix()).as_posix()
            found = os.lstat(path)
            if not stat.S_ISREG(found.st_mode):
                raise TamperedArtifact(f"'{relative}' is a link or device, not a file", relative)
            total += found.st_size
            if total > limit:
                raise TamperedArtifact(
                    f"'{relative}' takes the bundle's files beyond {limit} bytes "
                    f"(set {MAX_BUNDLE_ENV} to allow more)",
                    relative,
                )
            files[relative] = path.read_bytes()
    if _manifest.MANIFEST not in files:
        inner = sorted(p.parent.name for p in base.glob(f"*/{_manifest.MANIFEST}"))
        hint = f": give the bundle's own folder ({base / inner[0]})" if len(inner) == 1 else ""
        raise ArtifactError(f"'{base}' holds no {_manifest.MANIFEST}, so it is not a bundle{hint}")
    return files


def check_bundle(
    bundle: str | os.PathLike[str],
    public_key: str | bytes | os.PathLike[str] | None = None,
    *,
    allow_unsigned: bool = False,
) -> tuple[dict[str, bytes], dict[str, object]]:
    """Read a bundle (``.tar.gz`` or folder) and check it: ``(files, report)``.

    The checks of ``load_verified``, without loading anything: the signature against
    ``public_key`` (default SHIPYARD_PUBLIC_KEY; required unless ``allow_unsigned``),
    then every file against the manifest.
    """
    key = _manifest.load_public_key(public_key)
    if key is None and not allow_unsigned:
        raise SignatureError(
            "no public key: give the key the bundle was signed with (public_key, "
            f"--public-key or {_manifest.PUBLIC_KEY_ENV}); a bundle checked only against its "
            "own manifest proves nothing about who made it"
        )
    path = Path(bundle)
    files = read_folder(path) if path.is_dir() else read_bundle(path)[1]
    return files, _manifest.verify_bundle(files, key)


def load_verified(
    bundle: str | os.PathLike[str],
    public_key: str | bytes | os.PathLike[str] | None = None,
    *,
    entry_point: str = "python_dict",
    allow_unsigned: bool = False,
    allow_unsafe: bool = False,
) -> Executor:
    """Verify a bundle (a ``.tar.gz`` or an extracted folder) with this host's code; load it.

    ``public_key`` (a PEM path or text, or raw bytes; default SHIPYARD_PUBLIC_KEY) is
    required: a bundle that is unsigned or signed by another key raises SignatureError,
    and a file that differs from the signed manifest, is missing from it or was added
    raises TamperedArtifact, in each case before any file is deserialised or run.
    ``allow_unsigned=True`` loads without a key (the manifest is still checked, but
    anyone able to change a file can then rewrite the manifest too). ``allow_unsafe``
    lets pickles and skops types beyond Shipyard's allow-list load (default False, as in
    serve and batch). Returns the host's ``Executor``: ``run_dict(data, outputs)``.
    """
    if entry_point not in ENTRY_POINTS:
        raise UsageError(
            f"unknown entry point '{entry_point}' (choose from {', '.join(ENTRY_POINTS)})"
        )
    files, report = check_bundle(bundle, public_key, allow_unsigned=allow_unsigned)
    return build_executor(
        files,
        signed=bool(report["signature_checked"]),
        allow_unsafe=allow_unsafe,
        entry_point=entry_point,
    )
