"""Hostile bundles: one builder for each way a bundle can attack whoever opens it.

Every builder writes one archive and returns its path. Most start from a real bundle
(the suite's signed demo bundle, ``signed_bundle`` in tests/conftest.py) and change one
thing, so that the one thing is what a reader must refuse. The tar-level helpers write
members exactly as given (tarfile's writer checks nothing), which is what an attacker's
tool would do. Whoever holds a bundle can re-hash its manifest (``repack``); only the
holder of a private key can sign it.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import tarfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from shipyard import Column, Pipeline, Table, model
from shipyard.artifact import load_private_key, sign_files, write_bundle
from shipyard.runtime import Artifact

from .pipeline._pickle_model import WeightedSum
from .runtime._hostile import MarksWhenUnpickled

PACKAGE = "tumour_triage_1_0_0"  # the demo bundle's top folder
MODEL = "objects/p_malignant/model.skops"
FEATURE = "objects/compactness_ratio/source.py"
PICKLE_MODEL = "objects/weighted/model.pkl"  # the pickle bundle's model file

Files = dict[str, bytes]
Member = tuple[tarfile.TarInfo, bytes | None]


# --- reading and rewriting a bundle's files ------------------------------------------


def bundle_files(bundle: Path) -> Files:
    """The bundle's files by path relative to the top folder, read with tarfile directly."""
    with tarfile.open(bundle) as archive:
        return {
            member.name.split("/", 1)[1]: archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isfile()
        }


def rewrite(bundle: Path, target: Path, change: Callable[[Files], Files]) -> Path:
    """Copy ``bundle`` to ``target`` (same top folder) with its files passed through ``change``.

    The manifest and signature are copied as they are (unless ``change`` changes them).
    """
    with tarfile.open(bundle) as source:
        top = source.getmembers()[0].name.split("/", 1)[0]
    files = change(bundle_files(bundle))
    return write_archive(target, [file_entry(f"{top}/{k}", v) for k, v in sorted(files.items())])


def repack(
    bundle: Path, target: Path, change: Callable[[Files], Files], sign_key: Path | None = None
) -> Path:
    """``bundle`` with its files passed through ``change``, re-hashed into a new manifest.

    Unsigned unless ``sign_key`` is given: what anyone holding the bundle can make of it.
    """
    artifact = Artifact(bundle)
    files = {k: v for k, v in artifact.files.items() if k not in ("MANIFEST.json", "MANIFEST.sig")}
    files = sign_files(change(files), sign_key)
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_bundle(artifact.package, files, target, 0)


def flip_byte(data: bytes) -> bytes:
    """``data`` with its middle byte changed by one bit."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


def with_file(path: str, data: bytes) -> Callable[[Files], Files]:
    return lambda files: {**files, path: data}


def one_byte_changed(path: str) -> Callable[[Files], Files]:
    return lambda files: {**files, path: flip_byte(files[path])}


def without(path: str) -> Callable[[Files], Files]:
    return lambda files: {name: data for name, data in files.items() if name != path}


# A feature whose source would leave a mark on disk if it were ever executed.
MARKER_SOURCE = """
import pathlib
pathlib.Path({marker!r}).write_text("executed")


def compactness_ratio(mean_area, mean_perimeter):
    return mean_area / mean_perimeter
"""


def marker_code(marker: Path, what: str = "executed") -> bytes:
    """Python that writes ``marker`` when it runs: proof that a file was imported."""
    return f"import pathlib\npathlib.Path({str(marker)!r}).write_text({what!r})\n".encode()


# --- tar members, written as given -------------------------------------------------------


def write_archive(target: Path, members: list[Member]) -> Path:
    """A tar.gz of ``members``, in order, with no check of their names or types."""
    with tarfile.open(target, "w:gz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return target


def file_member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


def file_entry(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return file_member(name, len(data)), data


def special_entry(name: str, kind: bytes, to: str = "") -> tuple[tarfile.TarInfo, None]:
    """A link (to ``to``), device or fifo member: ``kind`` is a tarfile type such as SYMTYPE."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, to
    if kind == tarfile.CHRTYPE:
        info.devmajor, info.devminor = 1, 3  # what /dev/null is
    return info, None


def bundle_members(bundle: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    """The members of the demo bundle's files, to write again beside a hostile one."""
    return [
        file_entry(f"{PACKAGE}/{name}", data) for name, data in sorted(bundle_files(bundle).items())
    ]


def with_member(bundle: Path, target: Path, hostile: Member) -> Path:
    """``bundle``'s files, untouched and still signed, with one hostile member after them."""
    return write_archive(target, [*bundle_members(bundle), hostile])


class Zeros(io.RawIOBase):
    """``size`` zero bytes, produced lazily: a gzip bomb without holding it in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


# --- the hostile bundles ------------------------------------------------------------------

ESCAPING = f"{PACKAGE}/../../escaped.py"
ABSOLUTE = "/etc/cron.d/shipyard-hostile"


def path_traversal(bundle: Path, target: Path) -> Path:
    """A member whose name climbs out of the folder it would be extracted into."""
    return with_member(bundle, target, file_entry(ESCAPING, b"import os\n"))


def absolute_path(bundle: Path, target: Path) -> Path:
    """A member named by an absolute path."""
    return with_member(bundle, target, file_entry(ABSOLUTE, b"* * * * * root true\n"))


def symlink(bundle: Path, target: Path) -> Path:
    """A symbolic link to a file outside the bundle."""
    link = special_entry(f"{PACKAGE}/objects/p_malignant/link", tarfile.SYMTYPE, "/etc/passwd")
    return with_member(bundle, target, link)


def hardlink(bundle: Path, target: Path) -> Path:
    """A hard link to a file outside the bundle."""
    link = special_entry(f"{PACKAGE}/objects/p_malignant/hard", tarfile.LNKTYPE, "/etc/passwd")
    return with_member(bundle, target, link)


def char_device(bundle: Path, target: Path) -> Path:
    """A character device member (/dev/null's numbers)."""
    device = special_entry(f"{PACKAGE}/objects/p_malignant/device", tarfile.CHRTYPE)
    return with_member(bundle, target, device)


def fifo(bundle: Path, target: Path) -> Path:
    """A named pipe member: reading it would block forever."""
    return with_member(
        bundle, target, special_entry(f"{PACKAGE}/objects/p_malignant/fifo", tarfile.FIFOTYPE)
    )


BOMB = "objects/p_malignant/weights.bin"


def gzip_bomb(bundle: Path, target: Path, size: int) -> Path:
    """The bundle with one more member of ``size`` zero bytes: kilobytes compressed."""
    members = bundle_members(bundle)
    with tarfile.open(target, "w:gz", compresslevel=1) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data))
        archive.addfile(file_member(f"{PACKAGE}/{BOMB}", size), Zeros(size))
    return target


def missing_file(bundle: Path, target: Path) -> Path:
    """The model file removed; the signed manifest, which lists it, kept."""
    return rewrite(bundle, target, without(MODEL))


EXTRA = "objects/p_malignant/extra.py"


def extra_file(bundle: Path, target: Path, marker: Path) -> Path:
    """A Python file the signed manifest does not list (it writes ``marker`` if run)."""
    return rewrite(bundle, target, with_file(EXTRA, marker_code(marker)))


def manifest_listing_twice(bundle: Path, target: Path, sign_key: Path) -> Path:
    """A manifest naming the model file twice (a wrong digest, then the right one), signed.

    With ``json.loads`` alone the last entry would win and the file would pass; signed by
    ``sign_key`` so that a reader checking the signature first still meets the duplicate.
    """
    files = bundle_files(bundle)
    manifest = files["MANIFEST.json"].decode()
    entry = f'"{MODEL}": "{json.loads(manifest)["files"][MODEL]}"'
    doubled = manifest.replace(entry, f'"{MODEL}": "{"0" * 64}",\n  {entry}', 1).encode()
    signature = base64.b64encode(load_private_key(sign_key).sign(doubled)) + b"\n"
    files = {**files, "MANIFEST.json": doubled, "MANIFEST.sig": signature}
    return rewrite(bundle, target, lambda _: files)


RUNTIME_MODULE = "_runtime/_manifest.py"  # the bundle's own integrity check


def runtime_rehashed(bundle: Path, target: Path, marker: Path | None = None) -> Path:
    """The bundle's copy of the integrity check changed, the manifest re-hashed, unsigned.

    Without ``marker`` the check is turned off (every bundle passes); with it, the module
    also writes ``marker`` when imported.
    """

    def change(files: Files) -> Files:
        # Appended: the module's own ``from __future__`` import must stay first.
        disabled = b"\n\ndef check_files(files):\n    return {}\n"
        mark = b"" if marker is None else b"\n" + marker_code(marker, "imported")
        return {**files, RUNTIME_MODULE: files[RUNTIME_MODULE] + disabled + mark}

    return repack(bundle, target, change)


def signed_by(bundle: Path, target: Path, sign_key: Path) -> Path:
    """The bundle's files, untouched, signed by ``sign_key`` (a key nobody trusts)."""
    return repack(bundle, target, lambda files: files, sign_key)


def pickle_source(folder: Path) -> Path:
    """A bundle whose one model is a plain pickle (flagged in metadata), over table tumours."""
    pipeline = Pipeline(
        "pickled",
        "1.0.0",
        inputs=[
            Table("tumours", [Column("mean_radius", "float64"), Column("mean_texture", "float64")])
        ],
        nodes=[
            model(
                "weighted",
                WeightedSum(np.array([0.5, -1.0]), 0.0),
                features=["mean_radius", "mean_texture"],
            )
        ],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "stored as a pickle": the point of this bundle
        return pipeline.export(
            folder,
            reference={"tumours": {"mean_radius": [1.0], "mean_texture": [2.0]}},
            backend="native",
        )


def hostile_pickle(source: Path, target: Path, marker: Path, sign_key: Path | None) -> Path:
    """``source`` (``pickle_source``) with a pickle that writes ``marker`` while unpickled.

    Re-hashed, and signed by ``sign_key`` when given: a pickle is code whoever signed it.
    """
    data = pickle.dumps(MarksWhenUnpickled(str(marker), [0.5, -1.0]))
    return repack(source, target, with_file(PICKLE_MODEL, data), sign_key)
