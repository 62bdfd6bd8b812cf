"""Hostile archives are refused by the reader before anything in them is used."""

from __future__ import annotations

import io
import json
import resource
import tarfile
from pathlib import Path

import pytest

from shipyard.errors import TamperedArtifact, UsageError
from shipyard.runtime import Artifact, build_manifest, read_bundle

from .._hostile_bundles import PACKAGE, Zeros, bundle_files, file_member, write_archive


def test_a_gzip_bomb_is_refused_by_its_declared_size_without_expanding_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = tmp_path / "bomb.tar.gz"
    size = 256 * 1024**2  # 256 MiB of zeros: about 250 KB compressed
    with tarfile.open(bomb, "w:gz") as archive:
        archive.addfile(file_member(f"{PACKAGE}/metadata.json", 2), io.BytesIO(b"{}"))
        archive.addfile(file_member(f"{PACKAGE}/objects/m/model.bin", size), Zeros(size))
    assert bomb.stat().st_size < 2 * 1024**2
    monkeypatch.setenv("SHIPYARD_MAX_BUNDLE_BYTES", str(64 * 1024**2))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(TamperedArtifact, match="objects/m/model.bin' takes the bundle's files"):
        read_bundle(bomb)
    with pytest.raises(TamperedArtifact, match="SHIPYARD_MAX_BUNDLE_BYTES"):
        Artifact(bomb)
    # The peak memory of this process did not grow by the bomb's size (kilobytes).
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 128 * 1024


def test_a_bad_size_limit_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signed_bundle: Path
) -> None:
    monkeypatch.setenv("SHIPYARD_MAX_BUNDLE_BYTES", "lots")
    with pytest.raises(UsageError, match="SHIPYARD_MAX_BUNDLE_BYTES must be a whole number"):
        read_bundle(signed_bundle)


def test_a_manifest_listing_a_file_twice_is_refused(signed_bundle: Path, tmp_path: Path) -> None:
    files = bundle_files(signed_bundle)
    files.pop("MANIFEST.sig")
    manifest = build_manifest(files).decode()
    path, digest = next(iter(json.loads(manifest)["files"].items()))
    # A second entry for the same file: with json.loads alone, the last value would win.
    doubled = manifest.replace(
        f'"{path}": "{digest}"', f'"{path}": "{"0" * 64}",\n  "{path}": "{digest}"', 1
    )
    files["MANIFEST.json"] = doubled.encode()
    members = [
        (file_member(f"{PACKAGE}/{name}", len(data)), data) for name, data in sorted(files.items())
    ]
    bundle = write_archive(tmp_path / "twice.tar.gz", members)
    with pytest.raises(TamperedArtifact, match=f"'{path}' is listed twice"):
        Artifact(bundle).verify()


@pytest.mark.parametrize(
    ("kind", "member"),
    [
        ("symlink", tarfile.SYMTYPE),
        ("hardlink", tarfile.LNKTYPE),
        ("device", tarfile.CHRTYPE),
        ("fifo", tarfile.FIFOTYPE),
    ],
)
def test_links_and_special_files_are_refused_naming_them(
    tmp_path: Path, kind: str, member: bytes
) -> None:
    info = tarfile.TarInfo(f"{PACKAGE}/objects/m/{kind}")
    info.type = member
    info.linkname = "/etc/passwd"
    bundle = write_archive(tmp_path / f"{kind}.tar.gz", [(info, None)])
    with pytest.raises(TamperedArtifact, match=f"objects/m/{kind}' is a link or device"):
        read_bundle(bundle)


@pytest.mark.parametrize("name", ["/etc/cron.d/x", f"{PACKAGE}/../../escape", "../x"])
def test_absolute_and_escaping_paths_are_refused(tmp_path: Path, name: str) -> None:
    bundle = write_archive(tmp_path / "escape.tar.gz", [(file_member(name, 1), b"x")])
    with pytest.raises(TamperedArtifact, match="escapes the bundle folder"):
        read_bundle(bundle)
