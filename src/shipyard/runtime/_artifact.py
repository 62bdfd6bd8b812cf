"""``Artifact``: inspect, verify and run a bundle.tar.gz without extracting it.

Standard library only to import: inspecting, verifying (signature included) and
extracting work on a host with nothing but Python. ``run`` needs numpy and the
libraries of the bundle's model flavors, imported when called.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from . import _manifest
from ._errors import ArtifactError, ModelError, TamperedArtifact, UsageError

if TYPE_CHECKING:
    from ._executor import Executor
    from ._llm import Endpoint


# A bundle is read into memory before it is checked, so its size is bounded first: a
# small gzip file can expand to gigabytes. Each member's size is declared in its tar
# header, and reading stops at that size, so the caps hold before anything is decompressed
# beyond them. SHIPYARD_MAX_BUNDLE_BYTES raises the total cap for very large models.
MAX_BUNDLE_ENV = "SHIPYARD_MAX_BUNDLE_BYTES"
DEFAULT_MAX_BUNDLE_BYTES = 4 * 1024**3
MAX_MEMBERS = 100_000


def _max_bundle_bytes() -> int:
    text = os.environ.get(MAX_BUNDLE_ENV, "")
    try:
        return int(text) if text else DEFAULT_MAX_BUNDLE_BYTES
    except ValueError:
        raise UsageError(
            f"{MAX_BUNDLE_ENV} must be a whole number of bytes, not {text!r}"
        ) from None


def read_bundle(
    path: str | os.PathLike[str], select: Callable[[str], bool] | None = None
) -> tuple[str, dict[str, bytes]]:
    """Read a bundle.tar.gz into memory: ``(top folder, {relative path: bytes})``.

    ``select`` (a relative path -> whether to read it) reads only some files; every
    member is checked all the same. Refuses links, device files, absolute paths, '..' and
    members outside one top folder with TamperedArtifact; raises ArtifactError when the
    file is not a tar.gz, and TamperedArtifact when its files would expand beyond
    SHIPYARD_MAX_BUNDLE_BYTES (default 4 GiB) or it holds more than 100,000 members.
    """
    limit = _max_bundle_bytes()
    total = 0
    try:
        archive = tarfile.open(path, mode="r:*")  # noqa: SIM115 - closed by the `with` below
    except FileNotFoundError:
        raise ArtifactError(f"bundle '{path}' does not exist") from None
    except (tarfile.TarError, OSError) as exc:
        raise ArtifactError(f"'{path}' is not a readable bundle.tar.gz ({exc})") from None
    files: dict[str, bytes] = {}
    skipped: set[str] = set()
    top: str | None = None
    with archive:
        members = []
        try:
            for member in archive:
                members.append(member)
                if len(members) > MAX_MEMBERS:
                    raise TamperedArtifact(
                        f"'{path}' holds more than {MAX_MEMBERS} members: not a bundle", member.name
                    )
                # Checked before the archive decompresses its way to the next header.
                total += member.size
                if total > limit:
                    raise TamperedArtifact(
                        f"member '{member.name}' takes the bundle's files beyond {limit} bytes "
                        f"uncompressed (set {MAX_BUNDLE_ENV} to allow more)",
                        member.name,
                    )
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ArtifactError(f"'{path}' is damaged ({exc})") from None
        for member in members:
            name = PurePosixPath(member.name)
            if name.is_absolute() or ".." in name.parts or not name.parts:
                raise TamperedArtifact(
                    f"member '{member.name}' escapes the bundle folder", member.name
                )
            if top is None:
                top = name.parts[0]
            elif name.parts[0] != top:
                raise TamperedArtifact(
                    f"member '{member.name}' is outside the top folder '{top}'", member.name
                )
            if member.isdir():
                continue
            if not member.isfile():
                raise TamperedArtifact(
                    f"member '{member.name}' is a link or device, not a file", member.name
                )
            if len(name.parts) < 2:
                raise TamperedArtifact(
                    f"member '{member.name}' is outside the top folder", member.name
                )
            relative = PurePosixPath(*name.parts[1:]).as_posix()
            if relative in files or relative in skipped:
                raise TamperedArtifact(f"file '{relative}' appears twice in the archive", relative)
            if select is not None and not select(relative):
                skipped.add(relative)
                continue
            handle = archive.extractfile(member)
            assert handle is not None
            files[relative] = handle.read()
    if top is None:
        raise ArtifactError(f"'{path}' is an empty archive")
    return top, files


def build_executor(
    files: Mapping[str, bytes],
    *,
    signed: bool,
    allow_unsafe: bool,
    entry_point: str = "python_dict",
    endpoint: Endpoint | None = None,
) -> Executor:
    """The executor of files already verified, warning when the host's versions differ.

    ``endpoint`` is where llm nodes call (default: the host's SHIPYARD_LLM_* variables).
    Raises ModelError when numpy (or another package running needs) is missing, UsageError
    for an app bundle (it holds a web app's source, no pipeline to run).
    """
    try:
        kind = json.loads(files.get("metadata.json", b"{}")).get("kind") or "model"
    except (ValueError, AttributeError):
        kind = "model"  # the executor says what is wrong with the file
    if kind != "model":
        raise UsageError(f"this is an {kind} bundle, not a model's: it holds no pipeline to run")
    try:
        from ._executor import Executor
        from ._loading import check_versions
    except ImportError as exc:  # inspecting needs only Python; running needs numpy
        raise ModelError(
            f"running a bundle needs the '{exc.name}' package; "
            "install the bundle's requirements.txt"
        ) from exc
    executor = Executor(files, signed=signed, allow_unsafe=allow_unsafe, endpoint=endpoint)
    versions = files.get(f"{entry_point}/versions.json")
    if versions is not None:
        try:
            recorded = json.loads(versions)
        except ValueError as exc:
            name = f"{entry_point}/versions.json"
            raise TamperedArtifact(f"'{name}' is not valid JSON ({exc})", name) from None
        check_versions(recorded, f"bundle {executor.name} {executor.version}")
    return executor


class Artifact:
    """A bundle opened in memory.

    ``metadata``, ``input_info``, ``versions`` and ``lineage`` read its JSON documents
    (no code runs); ``verify`` checks every file (and the signature); ``run`` and
    ``extract`` verify first and refuse a bundle that fails.
    """

    def __init__(
        self, path: str | os.PathLike[str], public_key: str | bytes | os.PathLike[str] | None = None
    ) -> None:
        self.path = Path(path)
        self.package, self.files = read_bundle(self.path)
        self._public_key = public_key
        self._executor: Executor | None = None
        self._verified = False

    def _json(self, name: str) -> Any:
        data = self.files.get(name)
        if data is None:
            raise TamperedArtifact(f"'{name}' is missing from the bundle", name)
        try:
            return json.loads(data)
        except ValueError as exc:
            raise TamperedArtifact(f"'{name}' is not valid JSON ({exc})", name) from None

    @property
    def metadata(self) -> dict[str, Any]:
        """metadata.json: name, version, nodes, outputs, lineage, flavors, …"""
        return dict(self._json("metadata.json"))

    @property
    def input_info(self) -> dict[str, Any]:
        """input_info.json: the input tables with their typed columns."""
        return dict(self._json("input_info.json"))

    @property
    def versions(self) -> dict[str, Any]:
        """The versions.json of each entry point, by entry point."""
        return {
            path.split("/")[0]: self._json(path)
            for path in sorted(self.files)
            if path.endswith("/versions.json")
        }

    @property
    def lineage(self) -> dict[str, Any]:
        """``{"nodes": [{id, kind, dtype}], "edges": [[from, to], ...]}``."""
        return dict(self.metadata["lineage"])

    @property
    def genai(self) -> dict[str, dict[str, Any]]:
        """What each GenAI node locks, by node (reads files; runs nothing).

        prompt: ``form``, ``variables`` (name -> reference), ``templates`` (file -> text);
        llm: ``settings`` (its llm.json); knowledge: ``documents`` (file -> bytes and
        sha256), ``chunks``, ``chunk_words``, ``index``; retrieve: ``knowledge``, ``top_k``;
        parse: ``schema``, ``fallback``. Raises TamperedArtifact when a file is missing.
        """
        found: dict[str, dict[str, Any]] = {}
        for node in self.metadata["nodes"]:
            kind, name = node["kind"], node["name"]
            if kind == "prompt":
                prompt = self._json(node["file"])
                found[name] = {
                    "kind": kind,
                    "form": prompt.get("form"),
                    "variables": prompt.get("variables", {}),
                    "templates": {path: self._text(path) for path in node.get("templates", [])},
                }
            elif kind == "llm":
                found[name] = {"kind": kind, "settings": self._json(node["file"])}
            elif kind == "knowledge":
                documents = {}
                for path in node.get("documents", []):
                    data = self._bytes(path)
                    documents[path] = {"bytes": len(data), "sha256": _manifest.sha256(data)}
                found[name] = {
                    "kind": kind,
                    "documents": documents,
                    "chunks": node.get("chunks"),
                    "chunk_words": node.get("chunk_words"),
                    "index": node.get("index"),
                }
            elif kind == "retrieve":
                found[name] = {
                    "kind": kind,
                    "knowledge": node.get("knowledge"),
                    "top_k": node.get("top_k"),
                }
            elif kind == "parse":
                document = self._json(node["file"])
                found[name] = {
                    "kind": kind,
                    "schema": document.get("schema"),
                    "fallback": document.get("fallback"),
                }
        return found

    def _bytes(self, name: str) -> bytes:
        data = self.files.get(name)
        if data is None:
            raise TamperedArtifact(f"'{name}' is missing from the bundle", name)
        return data

    def _text(self, name: str) -> str:
        try:
            return self._bytes(name).decode("utf-8")
        except UnicodeDecodeError:
            raise TamperedArtifact(f"'{name}' is not UTF-8 text", name) from None

    def verify(self, public_key: str | bytes | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Check every file against MANIFEST.json, and MANIFEST.sig when a key is given or set.

        Raises TamperedArtifact naming the file, or SignatureError. Returns a report:
        files checked, whether the bundle is signed and whether the signature was checked.
        """
        key = _manifest.load_public_key(public_key if public_key is not None else self._public_key)
        report = _manifest.verify_bundle(self.files, key)
        self._verified = True
        return report

    def executor(
        self,
        *,
        allow_unsafe: bool = True,
        public_key: str | bytes | os.PathLike[str] | None = None,
        endpoint: Endpoint | None = None,
    ) -> Executor:
        """The loaded executor (verifies first; loads models once).

        A signature checked by ``verify`` (a key given here or set in SHIPYARD_PUBLIC_KEY)
        lets the skops types Shipyard trusts only in signed bundles load (such as
        HistGradientBoosting's). ``allow_unsafe`` lets pickles and skops types beyond
        Shipyard's allow-list load; it defaults to True, so a host opening a bundle it
        chose runs it as before. Serve and batch pass False: such a bundle then raises
        ModelError naming the node and the ``allow_pickle`` allowance it needs.
        ``public_key`` is the key to check the signature with (default: the one given to
        ``Artifact`` or SHIPYARD_PUBLIC_KEY), e.g. the trusted key a registry named.
        ``endpoint`` is where llm nodes call (default: the host's SHIPYARD_LLM_* variables).
        """
        # A strict load that succeeded holds nothing unsafe, so it serves any later call.
        if self._executor is not None and self._executor.allow_unsafe and not allow_unsafe:
            self._executor = None
        if self._executor is not None and self._executor.endpoint != endpoint:
            self._executor = None  # its llm nodes call another endpoint
        if self._executor is None:
            report = self.verify(public_key)
            self._executor = build_executor(
                self.files,
                signed=bool(report["signature_checked"]),
                allow_unsafe=allow_unsafe,
                endpoint=endpoint,
            )
        return self._executor

    def run(
        self,
        data: Any,
        outputs: Sequence[str] | None = None,
        app_config: Mapping[str, Any] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Run the bundle on a dict dataset, whole or up to the nodes named in ``outputs``.

        ``app_config`` is what features and rules that read app config see (else their
        defaults), as the version's app config does when it is served.
        """
        executor = self.executor()
        return (executor.with_app_config(app_config) if app_config else executor).run_dict(
            data, outputs
        )

    def extract(self, node: str | None, destination: str | os.PathLike[str]) -> list[Path]:
        """Write one node's files (``objects/NODE/``), or the whole bundle when ``node`` is None.

        Verifies first. The whole bundle lands in ``destination/<top folder>/``, ready
        to import. A node's files land in ``destination`` itself: a model file, a feature's
        source, a prompt's ``prompt.json`` and ``.jinja`` templates, an llm's ``llm.json``,
        a knowledge node's ``files/``, chunks and index. Raises UsageError for an unknown
        node or one with no files (a retrieve node).
        """
        self.verify()
        dest = Path(destination)
        if node is None:
            chosen = {f"{self.package}/{path}": data for path, data in self.files.items()}
        else:
            names = [n["name"] for n in self.metadata["nodes"]]
            if node not in names:
                raise UsageError(f"unknown node '{node}' (nodes: {', '.join(names)})")
            prefix = f"objects/{node}/"
            chosen = {
                path[len(prefix) :]: data
                for path, data in self.files.items()
                if path.startswith(prefix)
            }
            if not chosen:
                raise UsageError(
                    f"node '{node}' has no files of its own: its settings are in metadata.json"
                )
        written = []
        for relative, data in sorted(chosen.items()):
            target = dest.joinpath(*relative.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(target.name + ".partial")
            temporary.write_bytes(data)
            os.replace(temporary, target)
            written.append(target)
        return written

    def __repr__(self) -> str:
        return f"Artifact({str(self.path)!r})"
