"""App bundles: an app folder's source locked like a model bundle (manifest + signature).

    tumour_app_0_1_0/
    ├── metadata.json     {"kind": "app", name, version, template, entry, models,
    │                      created_at, build: {git_commit, git_branch, git_dirty},
    │                      requirements: [lines of requirements.txt], shipyard_version}
    ├── app/...           the folder's files (shipyard-app.toml, app/main.py, tests/, …)
    ├── MANIFEST.json     sha256 of every other file
    └── MANIFEST.sig      when signed

``shipyard.artifact`` signs and writes it, and the runtime's ``Artifact`` verifies it, the
same code as for model bundles: nothing here checks a file its own way.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import stat
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

from .._version import __version__
from ..artifact import load_private_key, sign_files, write_bundle
from ..errors import ArtifactError, TamperedArtifact, UsageError
from ..runtime import Artifact
from ._config import CONFIG_FILE, AppSpec, parse_app_config, read_app_config
from ._git import build_info, commit_time

APP_FOLDER = "app"  # where the folder's files sit in the bundle
METADATA = "metadata.json"
# Never part of an app's source: version control, caches, virtualenvs, build output,
# the working context (whose project and environment are the builder's, not the app's).
SKIPPED_FOLDERS = frozenset({".git", "__pycache__", ".venv", ".pytest_cache", ".mypy_cache"})
SKIPPED_TOP_FOLDERS = frozenset({"dist", "build"})
SKIPPED_FILES = frozenset({".shipyard.toml"})
SKIPPED_SUFFIXES = (".pyc",)
SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"  # the reproducible-builds convention for "now"


def bundle_kind(metadata: dict[str, Any]) -> str:
    """What a bundle holds, from its metadata: ``app``, or ``model`` (no ``kind``)."""
    return str(metadata.get("kind") or "model")


def app_files(
    folder: str | os.PathLike[str], skip: Path | None = None
) -> tuple[dict[str, bytes], float]:
    """The files of an app folder as ``{relative/path: bytes}``, without what is never
    source, and the newest one's modification time.

    ``skip`` is a folder inside it to leave out too (where the bundle is written). Raises
    UsageError naming a link, device or FIFO (a link could pull in any file of the host).
    """
    base = Path(folder).resolve()
    skipped = skip.resolve() if skip is not None else None
    files: dict[str, bytes] = {}
    newest = 0.0
    for directory, folders, names in os.walk(base, followlinks=False):
        here = Path(directory)
        for name in list(folders):
            path = here / name
            top = here == base
            if (
                name in SKIPPED_FOLDERS
                or (top and name in SKIPPED_TOP_FOLDERS)
                or (skipped is not None and path == skipped)
            ):
                folders.remove(name)
            elif path.is_symlink():
                raise UsageError(f"{path} is a link: an app bundle holds only the folder's files")
        folders.sort()
        for name in names:
            path = here / name
            if name in SKIPPED_FILES or name.endswith(SKIPPED_SUFFIXES):
                continue
            found = os.lstat(path)
            if not stat.S_ISREG(found.st_mode):
                raise UsageError(
                    f"{path} is a link or device: an app bundle holds only the folder's files"
                )
            files[path.relative_to(base).as_posix()] = path.read_bytes()
            newest = max(newest, found.st_mtime)
    return files, newest


def _created_at(
    created_at: _dt.datetime | str | None, folder: Path, build: dict[str, Any], newest: float
) -> _dt.datetime:
    """The bundle's time (UTC, whole seconds): ``created_at`` when given, else when the
    source last changed, so that building an unchanged folder again gives the same bytes.

    That is $SOURCE_DATE_EPOCH when set (the reproducible-builds convention), else the
    commit time of a clean git checkout, else the newest file's modification time.
    """
    if created_at is None:
        epoch = os.environ.get(SOURCE_DATE_EPOCH, "").strip()
        if epoch:
            try:
                return _dt.datetime.fromtimestamp(int(epoch), _dt.UTC)
            except (ValueError, OverflowError, OSError):
                raise UsageError(
                    f"{SOURCE_DATE_EPOCH} must be a Unix time in seconds, not {epoch!r}"
                ) from None
        committed = commit_time(folder) if build["git_dirty"] is False else None
        moment = committed if committed is not None else int(newest)
        return _dt.datetime.fromtimestamp(max(0, moment), _dt.UTC)
    if isinstance(created_at, str):
        try:
            created_at = _dt.datetime.fromisoformat(created_at)
        except ValueError:
            raise UsageError(f"created_at {created_at!r} is not an ISO 8601 time") from None
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=_dt.UTC)
    return created_at.astimezone(_dt.UTC).replace(microsecond=0)


def _requirements(files: dict[str, bytes]) -> list[str]:
    """The requirement lines of requirements.txt (no blanks, no comments)."""
    raw = files.get("requirements.txt", b"")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("requirements.txt is not UTF-8 text") from None
    lines = (line.split(" #", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _check_entry(folder: Path, spec: AppSpec, files: dict[str, bytes]) -> None:
    """Refuse an entry whose module is not among the folder's files."""
    path = spec.module.replace(".", "/")
    if f"{path}.py" not in files and f"{path}/__init__.py" not in files:
        raise UsageError(
            f"{folder / CONFIG_FILE}: app.entry names module {spec.module}, but the folder "
            f"has no {path}.py or {path}/__init__.py"
        )


def build_app_bundle(
    folder: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    sign_key: str | Path | bytes | None = None,
    created_at: _dt.datetime | str | None = None,
) -> Path:
    """Lock an app folder as ``output_dir/NAME-VERSION.tar.gz``; returns its path.

    Records the folder's git commit, branch and dirty flag (None outside git). The same
    folder and ``created_at`` (a datetime or ISO text) give the same bytes; by default it
    is when the source last changed ($SOURCE_DATE_EPOCH, else the commit time of a clean
    git checkout, else the newest file's time), so an unchanged folder builds the same
    bundle again. ``sign_key`` is an Ed25519 private key (PEM path or bytes).
    Raises UsageError for a bad ``shipyard-app.toml``, a missing entry module or a link
    in the folder, SignatureError for a bad key. The archive appears only when complete.
    """
    base = Path(folder)
    if not base.is_dir():
        raise UsageError(f"app folder {base} does not exist")
    spec = read_app_config(base)
    if sign_key is not None:
        load_private_key(sign_key)  # a bad key fails before any file is read
    output = Path(output_dir)
    inside = output.resolve().is_relative_to(base.resolve())
    source, newest = app_files(base, skip=output if inside else None)
    _check_entry(base, spec, source)
    build = build_info(base)
    moment = _created_at(created_at, base, build, newest)
    metadata = {
        "kind": "app",
        "name": spec.name,
        "version": spec.version,
        "template": spec.template,
        "entry": spec.entry,
        "models": spec.models,
        "created_at": moment.isoformat(),
        "build": build,
        "requirements": _requirements(source),
        "shipyard_version": __version__,
    }
    files = {f"{APP_FOLDER}/{path}": data for path, data in source.items()}
    files[METADATA] = (json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode()
    signed = sign_files(files, sign_key)
    target = output / f"{spec.name}-{spec.version}.tar.gz"
    return write_bundle(spec.bundle_name, signed, target, int(moment.timestamp()))


class AppBundle:
    """An app bundle opened in memory: read its metadata, verify it, extract its folder.

    Raises ArtifactError when the file is not a readable bundle (see ``Artifact``).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._artifact = Artifact(self.path)

    @property
    def files(self) -> dict[str, bytes]:
        """Every file of the bundle by its path under the top folder (unverified)."""
        return self._artifact.files

    @property
    def metadata(self) -> dict[str, Any]:
        """metadata.json (unverified until ``verify``); TamperedArtifact when it is missing."""
        return self._artifact.metadata

    @property
    def spec(self) -> AppSpec:
        """The app as the bundle's own ``shipyard-app.toml`` declares it.

        Raises ArtifactError for a model bundle, TamperedArtifact when the file is missing
        or does not match metadata.json.
        """
        self._check_kind()
        name = f"{APP_FOLDER}/{CONFIG_FILE}"
        raw = self.files.get(name)
        if raw is None:
            raise TamperedArtifact(f"'{name}' is missing from the bundle", name)
        try:
            spec = parse_app_config(tomllib.loads(raw.decode("utf-8")), f"{self.path}:{name}")
        except (UnicodeDecodeError, tomllib.TOMLDecodeError, UsageError) as exc:
            raise TamperedArtifact(f"'{name}' in {self.path} is not valid: {exc}", name) from None
        metadata = self.metadata
        declared = {
            "name": spec.name,
            "version": spec.version,
            "entry": spec.entry,
            "models": spec.models,
        }
        if any(metadata.get(key) != value for key, value in declared.items()):
            raise TamperedArtifact(f"'{name}' does not match {METADATA} in {self.path}", name)
        return spec

    def _check_kind(self) -> None:
        kind = bundle_kind(self.metadata)
        if kind != "app":
            raise ArtifactError(f"{self.path} is a {kind} bundle, not an app")

    def verify(self, public_key: str | bytes | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Check every file against MANIFEST.json, and MANIFEST.sig with a key (given or set).

        The runtime's check, as for a model bundle: raises TamperedArtifact naming the
        file, or SignatureError; ArtifactError for a model bundle. Returns its report.
        """
        report = self._artifact.verify(public_key)
        self._check_kind()
        return report

    def extract(
        self,
        destination: str | os.PathLike[str],
        public_key: str | bytes | os.PathLike[str] | None = None,
    ) -> Path:
        """Verify, then write the app's folder into ``destination``; returns that folder.

        The returned folder holds ``shipyard-app.toml`` as the source folder did. Raises
        UsageError when ``destination`` exists and is not an empty folder (files of another
        version must not mix with these), and what ``verify`` raises.
        """
        self.verify(public_key)
        target = Path(destination)
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise UsageError(f"{target} is not an empty folder: extract an app into a new one")
        prefix = f"{APP_FOLDER}/"
        for relative, data in sorted(self.files.items()):
            if not relative.startswith(prefix):
                continue
            # read_bundle refused absolute paths and '..' already; the parts are plain names.
            path = target.joinpath(*PurePosixPath(relative[len(prefix) :]).parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            partial.write_bytes(data)
            os.replace(partial, path)
        target.mkdir(parents=True, exist_ok=True)
        return target

    def __repr__(self) -> str:
        return f"AppBundle({str(self.path)!r})"
