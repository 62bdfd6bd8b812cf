"""App bundles: an app folder locked like a model bundle, reproducible, tamper-evident."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shipyard.apps import AppBundle, build_app_bundle, build_info
from shipyard.errors import ArtifactError, SignatureError, TamperedArtifact, UsageError
from shipyard.runtime import Artifact, check_bundle

from .._hostile_bundles import bundle_files, one_byte_changed, repack, rewrite, with_file
from ._folders import CREATED_AT, make_app


@pytest.fixture()
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Outside any repository, wherever the test's tmp_path lies: git looks no higher.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    return make_app(tmp_path / "tumour_app")


def _names(bundle: Path) -> list[str]:
    with tarfile.open(bundle) as archive:
        return sorted(m.name for m in archive.getmembers() if m.isfile())


def test_the_bundle_holds_metadata_the_manifest_and_the_folder_under_app(
    folder: Path, tmp_path: Path
) -> None:
    bundle = build_app_bundle(folder, tmp_path / "out", created_at=CREATED_AT)
    assert bundle == tmp_path / "out" / "tumour_app-0.1.0.tar.gz"
    top = "tumour_app_0_1_0"
    assert _names(bundle) == [
        f"{top}/{name}"
        for name in (
            "MANIFEST.json",
            "app/app/__init__.py",
            "app/app/main.py",
            "app/app/templates/index.html",
            "app/requirements.txt",
            "app/shipyard-app.toml",
            "app/tests/test_app.py",
            "metadata.json",
        )
    ]
    metadata = AppBundle(bundle).metadata
    assert {k: v for k, v in metadata.items() if k != "shipyard_version"} == {
        "kind": "app",
        "name": "tumour_app",
        "version": "0.1.0",
        "template": "web",
        "entry": "app.main:app",
        "models": ["tumour_triage"],
        "created_at": CREATED_AT,
        "build": {"git_commit": None, "git_branch": None, "git_dirty": None},
        "requirements": ["jinja2>=3"],
    }


def test_the_same_folder_and_time_give_the_same_bytes(folder: Path, tmp_path: Path) -> None:
    first = build_app_bundle(folder, tmp_path / "a", created_at=CREATED_AT).read_bytes()
    # File times and the order files were made in are not part of the bundle.
    for path in sorted(folder.rglob("*"), reverse=True):
        os.utime(path, (1, 1))
    (folder / "app" / "templates" / "index.html").unlink()
    (folder / "app" / "templates" / "index.html").write_text("<h1>Tumour triage</h1>\n")
    assert build_app_bundle(folder, tmp_path / "b", created_at=CREATED_AT).read_bytes() == first
    later = build_app_bundle(folder, tmp_path / "c", created_at="2026-12-02T00:00:00+00:00")
    assert later.read_bytes() != first
    (folder / "app" / "main.py").write_text("app = None\n")
    changed = build_app_bundle(folder, tmp_path / "d", created_at=CREATED_AT)
    assert changed.read_bytes() != first


def test_source_date_epoch_is_the_default_time(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1796117400")  # 2026-12-01T09:30:00Z
    bundle = build_app_bundle(folder, tmp_path / "out")
    assert AppBundle(bundle).metadata["created_at"] == CREATED_AT
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(UsageError, match="SOURCE_DATE_EPOCH"):
        build_app_bundle(folder, tmp_path / "out")


def test_by_default_an_unchanged_folder_builds_the_same_bundle_again(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    for path in folder.rglob("*"):
        os.utime(path, (1796117400, 1796117400))
    first = build_app_bundle(folder, tmp_path / "a")
    assert AppBundle(first).metadata["created_at"] == CREATED_AT  # the newest file's time
    assert build_app_bundle(folder, tmp_path / "b").read_bytes() == first.read_bytes()
    (folder / "app" / "main.py").write_text("app = None\n")  # changed now: a later time
    assert AppBundle(build_app_bundle(folder, tmp_path / "c")).metadata["created_at"] > CREATED_AT


def test_caches_virtualenvs_build_output_and_the_working_context_stay_out(
    folder: Path,
) -> None:
    for junk in (
        ".git/config",
        "__pycache__/x.pyc",
        "app/__pycache__/main.cpython-312.pyc",
        ".venv/bin/python",
        "dist/old.tar.gz",
        "build/lib/x.py",
        ".pytest_cache/v",
        "app/main.pyc",
        ".shipyard.toml",
    ):
        (folder / junk).parent.mkdir(parents=True, exist_ok=True)
        (folder / junk).write_text("junk")
    # A folder named build deeper down is the app's own (say, a template folder).
    (folder / "app" / "build").mkdir()
    (folder / "app" / "build" / "page.html").write_text("<p>kept</p>")
    # The bundle written inside the folder is not taken into the next one.
    bundle = build_app_bundle(folder, folder / "bundles", created_at=CREATED_AT)
    again = build_app_bundle(folder, folder / "bundles", created_at=CREATED_AT)
    assert again.read_bytes() == bundle.read_bytes()
    files = set(bundle_files(bundle))
    assert "app/app/build/page.html" in files
    assert not [f for f in files if "junk" in f or f.endswith(".pyc") or "/." in "/" + f[4:]]
    assert not any(f.startswith(("app/dist/", "app/build/", "app/bundles/")) for f in files)


def test_a_link_in_the_folder_is_refused_naming_it(folder: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("not the app's")
    (folder / "app" / "secret.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(UsageError, match=r"secret\.txt is a link"):
        build_app_bundle(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_entry_module_missing_from_the_folder_is_refused(folder: Path, tmp_path: Path) -> None:
    (folder / "app" / "main.py").rename(folder / "app" / "server.py")
    with pytest.raises(UsageError, match=r"app\.entry names module app\.main.*app/main\.py"):
        build_app_bundle(folder, tmp_path / "out")


def test_a_signed_bundle_verifies_with_the_runtimes_own_checks(
    folder: Path, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    private, public = key_pair
    bundle = build_app_bundle(folder, tmp_path / "out", sign_key=private, created_at=CREATED_AT)
    report = AppBundle(bundle).verify(public)
    assert report == {"files": 7, "signed": True, "signature_checked": True}
    # The same checks a production host runs on a model bundle, unchanged.
    assert Artifact(bundle).verify(public)["signature_checked"] is True
    assert check_bundle(bundle, public)[1]["signature_checked"] is True
    other = tmp_path / "other"
    from shipyard.artifact import generate_key_pair

    _, stranger = generate_key_pair(other)
    with pytest.raises(SignatureError):
        AppBundle(bundle).verify(stranger)


def test_a_bad_signing_key_fails_before_anything_is_written(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(SignatureError):
        build_app_bundle(folder, tmp_path / "out", sign_key=b"not a key")
    assert not (tmp_path / "out").exists()


def test_a_changed_file_is_refused_naming_it_and_nothing_is_extracted(
    folder: Path, tmp_path: Path
) -> None:
    bundle = build_app_bundle(folder, tmp_path / "out", created_at=CREATED_AT)
    tampered = rewrite(bundle, tmp_path / "t.tar.gz", one_byte_changed("app/app/main.py"))
    with pytest.raises(TamperedArtifact, match=r"app/app/main\.py"):
        AppBundle(tampered).verify()
    with pytest.raises(TamperedArtifact):
        AppBundle(tampered).extract(tmp_path / "extracted")
    assert not (tmp_path / "extracted").exists()
    added = rewrite(bundle, tmp_path / "a.tar.gz", with_file("app/app/extra.py", b"x=1"))
    with pytest.raises(TamperedArtifact, match=r"app/app/extra\.py"):
        AppBundle(added).verify()


def test_a_rehashed_bundle_fails_against_the_signers_key(
    folder: Path, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    private, public = key_pair
    bundle = build_app_bundle(folder, tmp_path / "out", sign_key=private, created_at=CREATED_AT)
    rehashed = repack(bundle, tmp_path / "r" / bundle.name, with_file("app/app/main.py", b"x"))
    AppBundle(rehashed).verify()  # consistent with its own (unsigned) manifest …
    with pytest.raises(SignatureError):
        AppBundle(rehashed).verify(public)  # … but not signed by the key


def test_a_model_bundle_is_not_an_app(signed_bundle: Path, tmp_path: Path) -> None:
    bundle = AppBundle(signed_bundle)
    with pytest.raises(ArtifactError, match="is a model bundle, not an app"):
        bundle.verify()
    with pytest.raises(ArtifactError, match="is a model bundle, not an app"):
        bundle.extract(tmp_path / "extracted")
    assert not (tmp_path / "extracted").exists()


def test_a_config_that_differs_from_the_metadata_is_refused(folder: Path, tmp_path: Path) -> None:
    bundle = build_app_bundle(folder, tmp_path / "out", created_at=CREATED_AT)
    config = bundle_files(bundle)["app/shipyard-app.toml"].replace(b"app.main:app", b"evil:app")
    rehashed = repack(
        bundle, tmp_path / "r" / bundle.name, with_file("app/shipyard-app.toml", config)
    )
    opened = AppBundle(rehashed)
    opened.verify()
    with pytest.raises(TamperedArtifact, match="does not match metadata.json"):
        _ = opened.spec


def test_extract_writes_the_folder_back_as_it_was(folder: Path, tmp_path: Path) -> None:
    bundle = build_app_bundle(folder, tmp_path / "out", created_at=CREATED_AT)
    extracted = AppBundle(bundle).extract(tmp_path / "extracted")
    assert extracted == tmp_path / "extracted"
    assert (extracted / "shipyard-app.toml").read_bytes() == (
        folder / "shipyard-app.toml"
    ).read_bytes()
    assert sorted(p.relative_to(extracted).as_posix() for p in extracted.rglob("*.*")) == sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*.*")
    )
    assert AppBundle(bundle).spec.entry == "app.main:app"
    with pytest.raises(UsageError, match="not an empty folder"):
        AppBundle(bundle).extract(extracted)


def _git(folder: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=folder,
        check=True,
        capture_output=True,
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_git_commit_branch_and_dirty_flag_are_recorded(folder: Path, tmp_path: Path) -> None:
    _git(folder, "init", "-q", "-b", "feature/triage")
    assert build_info(folder) == {
        "git_commit": None,
        "git_branch": "feature/triage",
        "git_dirty": True,
    }  # no commit yet, every file new
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", "app")
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True
    ).stdout.strip()
    bundle = build_app_bundle(folder, tmp_path / "out", created_at=CREATED_AT)
    assert AppBundle(bundle).metadata["build"] == {
        "git_commit": commit,
        "git_branch": "feature/triage",
        "git_dirty": False,
    }
    # A clean checkout's bundle is dated by its commit: a CI runner's fresh clone of the
    # same commit builds the same bytes.
    committed = subprocess.run(
        ["git", "log", "-1", "--format=%cI"], cwd=folder, capture_output=True, text=True
    ).stdout.strip()
    dated = build_app_bundle(folder, tmp_path / "dated")
    when = datetime.fromisoformat(committed).astimezone(UTC).isoformat()
    assert AppBundle(dated).metadata["created_at"] == when
    assert build_app_bundle(folder, tmp_path / "again").read_bytes() == dated.read_bytes()
    (folder / "app" / "main.py").write_text("app = None\n")
    assert build_info(folder)["git_dirty"] is True
    _git(folder, "checkout", "-q", "--detach")
    assert build_info(folder)["git_branch"] is None  # a CI checkout of a pull request
    # Ignored files do not make the folder dirty (they are not source either).
    _git(folder, "checkout", "-q", "app/main.py")
    (folder / ".gitignore").write_text("*.log\n")
    _git(folder, "add", ".gitignore")
    _git(folder, "commit", "-q", "-m", "ignore logs")
    (folder / "run.log").write_text("noise")
    assert build_info(folder)["git_dirty"] is False


def test_without_git_on_the_path_the_build_records_none_and_goes_on(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("git"):
        _git(folder, "init", "-q")
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    bundle = build_app_bundle(folder, tmp_path / "out", created_at=CREATED_AT)
    assert json.loads(bundle_files(bundle)["metadata.json"])["build"] == {
        "git_commit": None,
        "git_branch": None,
        "git_dirty": None,
    }
