"""Baking an environment: its revision's bundles and recorded state in a folder, verified.

``bake_environment`` reads the environment's status from the registry, fetches every
version it runs (the deployed one of each component, and the versions its ``traffic``
setting splits to or shadows), and refuses, before writing anything, a bundle whose
sha256 is not the one the registry records, whose files do not match its manifest, or
that the environment's signature and pickle policy does not allow with the registry's
trusted keys (``LoadPolicy``: what ``shipyard serve`` applies when it loads them). It then
writes the folder that ``shipyard serve --bundle-dir`` serves offline, whose layout
``shipyard.serving.BakedRegistry`` documents: ``environment.json``, and each bundle in a
folder named by the start of its sha256 (two versions may carry the same file name).
App components are baked beside the models, checked alike; an app's requirements (its
bundle's ``requirements.txt`` lines, recorded in its metadata) join the image's.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, StoreError, TamperedArtifact, UsageError
from ..registry import LoadPolicy, to_json
from ..runtime import Artifact

FORMAT = "shipyard-baked-environment/1"  # what shipyard.serving.BakedRegistry reads
STATE_FILE = "environment.json"
_PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _project(line: str) -> str:
    """The normalised project name a requirement line is about."""
    found = _PROJECT_NAME.match(line.strip())
    return (found.group(0) if found else line.strip()).lower().replace("_", "-")


@dataclass(frozen=True)
class BakedBundle:
    """One version an environment runs, as baked: ``file`` is relative to the folder."""

    model: str
    label: str
    digest: str
    file: str
    requirements: tuple[str, ...]  # the pinned lines of its requirements.txt


@dataclass(frozen=True)
class BakedEnvironment:
    """What ``bake_environment`` wrote: the environment's revision and its verified bundles."""

    project: str
    environment: str
    revision: int
    updated_at: str
    folder: Path
    bundles: tuple[BakedBundle, ...]

    def requirements(self) -> list[str]:
        """Every bundle's requirements, merged; UsageError when two bundles pin one package
        apart. An unpinned line (an app's ``jinja2``) gives way to a pin of the same package."""
        pins: dict[str, tuple[str, str]] = {}
        loose: dict[str, set[str]] = {}
        for bundle in self.bundles:
            for line in bundle.requirements:
                name = _project(line)
                if "==" not in line:
                    loose.setdefault(name, set()).add(line)
                    continue
                seen = pins.get(name)
                if seen is not None and seen[0] != line:
                    raise UsageError(
                        f"one image holds one set of libraries, and {seen[1]} needs {seen[0]} "
                        f"while {bundle.model} {bundle.label} needs {line}"
                    )
                pins.setdefault(name, (line, f"{bundle.model} {bundle.label}"))
        lines = {line for line, _ in pins.values()}
        lines |= {line for name, found in loose.items() if name not in pins for line in found}
        return sorted(lines)


def _labels(component: dict[str, Any]) -> list[str]:
    """The versions of a component the environment serves: deployed, then traffic and shadow
    (as ``EnvironmentLoader`` reads them; an app serves the deployed one only)."""
    labels = [component["tag"] or str(component["version_id"])]
    traffic = component["settings"].get("traffic", {}).get("value")
    if traffic and component.get("kind") != "app":
        labels += [tag for tag, weight in traffic["weights"].items() if weight > 0]
        if traffic.get("shadow"):
            labels.append(traffic["shadow"])
    return list(dict.fromkeys(labels))


def _pins(artifact: Artifact) -> tuple[str, ...]:
    if artifact.metadata.get("kind") == "app":
        listed = artifact.metadata.get("requirements") or []
        return tuple(line.strip() for line in listed if line.strip() and line[:1] != "#")
    text = artifact.files.get("requirements.txt", b"").decode("utf-8")
    return tuple(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def _named(exc: ArtifactError, where: str) -> ArtifactError:
    """``exc`` again, its message saying which bundle it is about."""
    message = f"{where}: {exc}; nothing was built"
    if isinstance(exc, TamperedArtifact):
        return TamperedArtifact(message, exc.path)
    return type(exc)(message)


def _fetch(
    registry: Any, project: str, model: str, label: str, record: dict[str, Any], folder: Path
) -> tuple[Path, Artifact]:
    """Fetch ``model`` ``label`` into ``folder`` and check it is the bundle the registry
    records (``record``: its version's ``digest``, ``bundle_name`` and ``bundle_version``)."""
    digest = record["digest"]
    try:
        path = Path(registry.fetch_bundle(project, model, label, folder))
    except StoreError as exc:
        name = f"{record['bundle_name']}-{record['bundle_version']}.tar.gz"
        raise StoreError(f"{model} {label} ({name}): {exc}; nothing was built") from None
    with path.open("rb") as file:
        found = hashlib.file_digest(file, "sha256").hexdigest()
    if found != digest:
        raise StoreError(
            f"{model} {label}: bundle {path.name} arrived with sha256 {found[:12]}…, not the "
            f"{digest[:12]}… the registry records; nothing was built"
        )
    artifact = Artifact(path)
    try:
        artifact.verify()  # every file against the manifest, before anything else reads it
    except ArtifactError as exc:
        raise _named(exc, f"{model} {label} ({path.name})") from None
    return path, artifact


def bake_environment(registry: Any, project: str, env: str, folder: Path) -> BakedEnvironment:
    """Write ``env``'s revision into ``folder`` (``environment.json`` and its bundles), verified.

    ``registry``: a ``Registry`` or a ``RegistryClient`` (a deployer's token: the baked
    state holds the environment's API key digests). ``folder`` is replaced. Raises
    NotFound, UsageError for an environment that runs nothing, StoreError or
    ArtifactError (TamperedArtifact naming the file) for a bundle that is not what the
    registry records, SignatureRequired or ModelError for one the environment's policy
    refuses; nothing is written into ``folder`` then.
    """
    environment = to_json(registry.get_environment(project, env))
    status: dict[str, Any] = to_json(registry.status(project, env))
    if not status["components"]:
        raise UsageError(f"{project}/{env} runs nothing: add a component before baking it")
    policy = LoadPolicy(registry, project, env, status)
    versions: dict[str, dict[str, dict[str, str]]] = {}
    baked: list[BakedBundle] = []
    with tempfile.TemporaryDirectory(prefix="shipyard-bake-") as scratch:
        staged = Path(scratch) / "baked"
        for component in status["components"]:
            model = component["name"]
            deployed = component["tag"] or str(component["version_id"])
            for label in _labels(component):
                record = (
                    component
                    if label == deployed
                    else to_json(registry.get_version(project, model, label))
                )
                digest = record["digest"]
                where = staged / digest[:16]
                path, artifact = _fetch(registry, project, model, label, record, where)
                policy.check(model, label, artifact.files, artifact.metadata)
                file = f"{digest[:16]}/{path.name}"
                # the version's own app config: what a traffic split's other arms run with
                entry = {"digest": digest, "file": file, "app_config": record["app_config"]}
                versions.setdefault(model, {})[label] = entry
                baked.append(BakedBundle(model, label, digest, file, _pins(artifact)))
        state = {
            "format": FORMAT,
            "project": project,
            "environment": env,
            "environment_record": environment,
            "status": status,
            "trusted_keys": to_json(registry.list_trusted_keys()),
            "api_key_digests": to_json(registry.api_key_digests(project, env)),
            "versions": versions,
        }
        text = json.dumps(state, indent=2, sort_keys=True) + "\n"
        (staged / STATE_FILE).write_text(text, encoding="utf-8")
        # Readable by the image's user, whoever owns them there (fetched files are 0600).
        for path in staged.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.rmtree(folder, ignore_errors=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staged, folder)
    return BakedEnvironment(
        project,
        env,
        int(status["revision"]),
        str(status["updated_at"]),
        folder,
        tuple(baked),
    )
