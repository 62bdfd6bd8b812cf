"""A bundle is tamper-evident: any change to any file is refused, naming the file, before
anything in it is deserialised or executed."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

import shipyard
from shipyard.errors import ArtifactError, SignatureError, TamperedArtifact

from .._hostile_bundles import (
    FEATURE,
    MARKER_SOURCE,
    MODEL,
    PACKAGE,
    Member,
    bundle_files,
    bundle_members,
    file_entry,
    flip_byte,
    one_byte_changed,
    rewrite,
    special_entry,
    with_file,
    without,
    write_archive,
)


def test_the_signed_bundle_itself_verifies(
    signed_bundle: Path, key_pair: tuple[Path, Path]
) -> None:
    report = shipyard.Artifact(signed_bundle).verify(key_pair[1])
    assert report["signed"] is True
    assert report["signature_checked"] is True
    assert report["files"] == len(bundle_files(signed_bundle)) - 2  # all but MANIFEST.json/.sig


def test_every_file_changed_by_one_byte_is_refused_naming_it(
    signed_bundle: Path, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    names = sorted(bundle_files(signed_bundle))
    # The loop below must cover the whole layout, not an empty or partial bundle.
    assert {
        "metadata.json",
        "input_info.json",
        MODEL,
        FEATURE,
        "requirements.txt",
        "python_dict/__init__.py",
        "python_dict/versions.json",
        "pyspark_dataframe/__init__.py",
        "_runtime/_manifest.py",
        "reference/profile.json",
        "MANIFEST.json",
        "MANIFEST.sig",
    } <= set(names)
    accepted, unnamed = [], []
    for index, name in enumerate(names):
        tampered = rewrite(signed_bundle, tmp_path / f"{index}.tar.gz", one_byte_changed(name))
        try:
            shipyard.Artifact(tampered).verify(key_pair[1])
        except SignatureError as exc:
            if name not in ("MANIFEST.json", "MANIFEST.sig") and name not in str(exc):
                unnamed.append((name, str(exc)))
        except TamperedArtifact as exc:
            if name not in str(exc) or exc.path != name:
                unnamed.append((name, str(exc)))
        else:
            accepted.append(name)
    assert accepted == []
    assert unnamed == []


def test_a_changed_manifest_is_a_signature_error_when_a_key_is_configured(
    signed_bundle: Path, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    # Checking the signature first means the manifest is blamed, not the file whose hash it lists.
    tampered = rewrite(signed_bundle, tmp_path / "b.tar.gz", one_byte_changed("MANIFEST.json"))
    with pytest.raises(SignatureError, match="MANIFEST.sig does not match"):
        shipyard.Artifact(tampered).verify(key_pair[1])


def test_without_a_key_every_file_but_the_signature_is_still_refused(
    signed_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHIPYARD_PUBLIC_KEY", raising=False)
    names = sorted(bundle_files(signed_bundle))
    accepted, unnamed = [], []
    for index, name in enumerate(names):
        tampered = rewrite(signed_bundle, tmp_path / f"{index}.tar.gz", one_byte_changed(name))
        try:
            report = shipyard.Artifact(tampered).verify()
        except TamperedArtifact as exc:
            if name not in str(exc):
                unnamed.append((name, str(exc)))
        else:
            assert report["signature_checked"] is False
            accepted.append(name)
    assert accepted == ["MANIFEST.sig"]  # unchecked without a key, by design
    assert unnamed == []


def test_an_added_file_is_refused_naming_it(
    signed_bundle: Path, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    tampered = rewrite(
        signed_bundle, tmp_path / "b.tar.gz", with_file("objects/p_malignant/extra.py", b"x = 1\n")
    )
    with pytest.raises(TamperedArtifact, match="objects/p_malignant/extra.py.*added") as caught:
        shipyard.Artifact(tampered).verify(key_pair[1])
    assert caught.value.path == "objects/p_malignant/extra.py"


@pytest.mark.parametrize("name", [MODEL, "python_dict/__init__.py", "metadata.json"])
def test_a_removed_file_is_refused_naming_it(
    signed_bundle: Path, key_pair: tuple[Path, Path], tmp_path: Path, name: str
) -> None:
    tampered = rewrite(signed_bundle, tmp_path / "b.tar.gz", without(name))
    with pytest.raises(TamperedArtifact, match=f"'{name}' is listed .* but missing"):
        shipyard.Artifact(tampered).verify(key_pair[1])


def test_a_removed_manifest_is_refused(
    signed_bundle: Path, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    tampered = rewrite(signed_bundle, tmp_path / "b.tar.gz", without("MANIFEST.json"))
    with pytest.raises(TamperedArtifact, match="MANIFEST.json is missing"):
        shipyard.Artifact(tampered).verify(key_pair[1])
    with pytest.raises(TamperedArtifact, match="MANIFEST.json is missing"):
        shipyard.Artifact(tampered).verify()


def test_a_removed_signature_is_refused_when_a_key_is_configured(
    signed_bundle: Path, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    tampered = rewrite(signed_bundle, tmp_path / "b.tar.gz", without("MANIFEST.sig"))
    with pytest.raises(SignatureError, match="not signed"):
        shipyard.Artifact(tampered).verify(key_pair[1])


def test_run_refuses_a_changed_model_before_deserialising_it(
    signed_bundle: Path, demo_rows: dict[str, Any], tmp_path: Path
) -> None:
    # A model file one byte off would make skops fail (a ModelError) if it were loaded first.
    tampered = rewrite(signed_bundle, tmp_path / "b.tar.gz", one_byte_changed(MODEL))
    with pytest.raises(TamperedArtifact, match=MODEL) as caught:
        shipyard.Artifact(tampered).run(demo_rows)
    assert caught.value.path == MODEL


def test_run_never_executes_a_changed_feature(
    signed_bundle: Path, key_pair: tuple[Path, Path], demo_rows: dict[str, Any], tmp_path: Path
) -> None:
    marker = tmp_path / "executed"
    source = MARKER_SOURCE.format(marker=str(marker)).encode()
    tampered = rewrite(signed_bundle, tmp_path / "b.tar.gz", with_file(FEATURE, source))
    for key in (None, key_pair[1]):
        with pytest.raises(TamperedArtifact, match=FEATURE):
            shipyard.Artifact(tampered, public_key=key).run(demo_rows)
    assert not marker.exists()


@pytest.mark.parametrize("node", [None, "p_malignant", "decision"])
def test_extract_refuses_a_tampered_bundle_and_writes_nothing(
    signed_bundle: Path, tmp_path: Path, node: str | None
) -> None:
    tampered = rewrite(signed_bundle, tmp_path / "b.tar.gz", one_byte_changed(MODEL))
    destination = tmp_path / "out"
    with pytest.raises(TamperedArtifact, match=MODEL):
        shipyard.Artifact(tampered).extract(node, destination)
    assert not destination.exists() or list(destination.rglob("*")) == []


def _import_entry_point(
    root: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Import the extracted bundle's python_dict in a fresh interpreter (its own module cache)."""
    return subprocess.run(
        [sys.executable, "-c", f"import {PACKAGE}.python_dict"],
        cwd=root,
        env={**_clean_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("SHIPYARD_PUBLIC_KEY", "PYTHONPATH")}


def test_an_extracted_bundle_imports_when_untouched(signed_bundle: Path, tmp_path: Path) -> None:
    shipyard.Artifact(signed_bundle).extract(None, tmp_path)
    result = _import_entry_point(tmp_path)
    assert result.returncode == 0, result.stderr


def test_an_extracted_bundle_with_a_changed_model_refuses_to_import(
    signed_bundle: Path, tmp_path: Path
) -> None:
    shipyard.Artifact(signed_bundle).extract(None, tmp_path)
    model = tmp_path / PACKAGE / MODEL
    model.write_bytes(flip_byte(model.read_bytes()))
    result = _import_entry_point(tmp_path)
    assert result.returncode != 0
    assert f"TamperedArtifact: file '{MODEL}' was changed" in result.stderr
    assert "skops" not in result.stderr.replace(MODEL, "")  # refused before skops ever ran


def test_an_extracted_bundle_never_executes_a_changed_feature(
    signed_bundle: Path, tmp_path: Path
) -> None:
    shipyard.Artifact(signed_bundle).extract(None, tmp_path)
    marker = tmp_path / "executed"
    (tmp_path / PACKAGE / FEATURE).write_text(MARKER_SOURCE.format(marker=str(marker)))
    result = _import_entry_point(tmp_path)
    assert f"TamperedArtifact: file '{FEATURE}' was changed" in result.stderr
    assert not marker.exists()


def test_an_extracted_bundle_with_an_added_file_refuses_to_import(
    signed_bundle: Path, tmp_path: Path
) -> None:
    shipyard.Artifact(signed_bundle).extract(None, tmp_path)
    (tmp_path / PACKAGE / "objects" / "p_malignant" / "model.pkl").write_bytes(b"not a model")
    result = _import_entry_point(tmp_path)
    assert "TamperedArtifact: file 'objects/p_malignant/model.pkl' is not listed" in result.stderr


# --- tar safety: hostile archives are refused before anything is written or read ---


@pytest.mark.parametrize(
    ("hostile", "message"),
    [
        (file_entry("../evil"), "'../evil' escapes"),
        (file_entry(f"{PACKAGE}/../../evil"), "escapes"),
        (file_entry("/tmp/evil"), "'/tmp/evil' escapes"),
        (file_entry("other_top/evil.py"), "outside the top folder"),
        (special_entry(f"{PACKAGE}/objects/link", tarfile.SYMTYPE, "/etc/passwd"), "link"),
        (special_entry(f"{PACKAGE}/objects/hard", tarfile.LNKTYPE, "/etc/passwd"), "link"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "second-top-folder", "symlink", "hardlink"],
)
def test_a_hostile_tar_member_is_refused(
    signed_bundle: Path, tmp_path: Path, hostile: Member, message: str
) -> None:
    tampered = write_archive(tmp_path / "b.tar.gz", [*bundle_members(signed_bundle), hostile])
    with pytest.raises(TamperedArtifact, match=message):
        shipyard.Artifact(tampered)
    assert not (tmp_path.parent / "evil").exists()


def test_a_duplicated_member_is_refused(signed_bundle: Path, tmp_path: Path) -> None:
    # tar keeps the last copy: a second model.skops after the checked one must not slip through.
    members = bundle_members(signed_bundle)
    tampered = write_archive(
        tmp_path / "b.tar.gz", [*members, file_entry(f"{PACKAGE}/{MODEL}", b"other")]
    )
    with pytest.raises(TamperedArtifact, match="appears twice"):
        shipyard.Artifact(tampered)


def test_a_file_that_is_not_a_bundle_is_an_artifact_error(tmp_path: Path) -> None:
    not_a_bundle = tmp_path / "b.tar.gz"
    not_a_bundle.write_bytes(b"definitely not gzip")
    with pytest.raises(ArtifactError, match="not a readable bundle"):
        shipyard.Artifact(not_a_bundle)
    with pytest.raises(ArtifactError, match="does not exist"):
        shipyard.Artifact(tmp_path / "missing.tar.gz")
