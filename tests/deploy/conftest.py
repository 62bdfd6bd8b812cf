"""Deploy fixtures: project 'demo' in production on a SQLite registry, and readers of a render.

``deployed`` is a registry (SQLite file, local store) where model tumour_triage v1 has
been promoted integration -> uat -> production, v2 is tagged, production runs 2 replicas
on worker group ``cpu-pool`` (3 machines of cpu-4-16gb) with an API key and an
environment config. Each test changes what it checks from there.

``home`` is an empty embedded registry home ($SHIPYARD_HOME, what the CLI opens) and
``open_registry(home, ...)`` opens it; ``toy_environment`` puts the small frame_total model
(numpy only) into its production, signed and trusted, with an API key. ``containers`` is
what podman and buildah need here, with the local base image in place (tests that build
images are skipped, saying what to install, where the tools are absent).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.registry import LocalStore, Registry, create_engine

from ..serving import _pipelines
from ._containers import APT, container_settings, ensure_base_image, missing_tools

MODEL = "tumour_triage"
PROJECT, ENV = "demo", "production"
# A digest-pinned image: renders that name it differ only where the plan differs.
IMAGE = "registry.example.com/ml/demo@sha256:" + "ab" * 32


@pytest.fixture()
def deployed(
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    bundles: list[Path],
    key_pair: tuple[Path, Path],
) -> Iterator[Registry]:
    """The registry described in the module's docstring, acting as 'alice' (its files are
    outside the test's tmp_path, which renders may fill)."""
    home = tmp_path_factory.mktemp("registry")
    shutil.copyfile(sqlite_template, home / "registry.db")
    engine = create_engine(f"sqlite:///{home / 'registry.db'}")
    registry = Registry(engine, LocalStore(home / "artifacts"), actor="alice")
    registry.trust_key("release", key_pair[1].read_text())
    registry.create_project("demo")
    for bundle in bundles[:2]:
        version = registry.register_model("demo", bundle)
        registry.tag("demo", version.model, version.version_id)
    registry.add_component("demo", "integration", MODEL, "v1")
    registry.promote("demo", "integration")
    registry.promote("demo", "uat")
    registry.create_worker_group("cpu-pool", "cpu-4-16gb", 3)
    registry.set_setting("replicas", 2, project="demo", env="production")
    registry.set_setting("worker_group", "cpu-pool", project="demo", env="production")
    registry.create_api_key("demo", "production", "gateway")
    registry.set_environment_config("demo", "production", {"reports": "s3://reports/demo"})
    yield registry
    registry.close()


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty embedded registry home that the CLI uses ($SHIPYARD_HOME), nothing else."""
    folder = tmp_path / "home"
    folder.mkdir()
    for name in ("SHIPYARD_URL", "SHIPYARD_DATABASE_URL", "SHIPYARD_ARTIFACT_STORE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHIPYARD_HOME", str(folder))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    return folder


def open_registry(home: Path, sqlite_template: Path) -> Registry:
    """A registry in ``home`` (the files Registry.open() reads there), acting as 'alice'."""
    if not (home / "registry.db").exists():
        shutil.copyfile(sqlite_template, home / "registry.db")
    engine = create_engine(f"sqlite:///{home / 'registry.db'}")
    return Registry(engine, LocalStore(home / "artifacts"), actor="alice")


@pytest.fixture()
def toy_environment(
    home: Path, sqlite_template: Path, key_pair: tuple[Path, Path], tmp_path: Path
) -> Iterator[str]:
    """Production of project 'demo' runs the small frame_total model (numpy only), signed and
    trusted, with one API key; yields the key."""
    bundle = _pipelines.export(
        _pipelines.frame_pipeline(),
        tmp_path / "dist",
        {"frame": {"a": [1.0, 4.0], "b": [2.0, 5.0], "c": [3.0, 6.0]}},
        key_pair[0],
    )
    registry = open_registry(home, sqlite_template)
    registry.trust_key("release", key_pair[1].read_text())
    registry.create_project(PROJECT)
    version = registry.register_model(PROJECT, bundle)
    registry.tag(PROJECT, version.model, version.version_id)
    registry.add_component(PROJECT, ENV, version.model, "v1")
    _, key = registry.create_api_key(PROJECT, ENV, "gateway")
    registry.close()
    yield key


@pytest.fixture(scope="session")
def containers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What podman and buildah need in their environment here, with the base image in place
    (see _containers.py: no image registry is reachable, so it is made locally)."""
    missing = missing_tools()
    if missing:
        pytest.skip(f"building images needs {', '.join(missing)} (Debian: {APT}; .ci/run does)")
    if os.geteuid() != 0:
        pytest.skip("debootstrap and rootful podman need root here")
    settings = container_settings(tmp_path_factory.mktemp("containers"))
    ensure_base_image({**os.environ, **settings})
    return settings


def read_tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``: relative path -> bytes."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def documents(folder: Path) -> dict[str, Any]:
    """Every YAML file under ``folder`` parsed: relative path -> document."""
    return {
        path: yaml.safe_load(data)
        for path, data in read_tree(folder).items()
        if path.endswith(".yaml")
    }


def leaves(value: Any, path: str = "") -> dict[str, Any]:
    """``value`` flattened to ``{"a.b[0].c": leaf}`` (a file held in a string is one leaf)."""
    if isinstance(value, dict):
        found: dict[str, Any] = {}
        for key, inner in value.items():
            found |= leaves(inner, f"{path}.{key}" if path else str(key))
        return found or {path: {}}
    if isinstance(value, list):
        found = {}
        for index, inner in enumerate(value):
            found |= leaves(inner, f"{path}[{index}]")
        return found or {path: []}
    return {path: value}


def changes(before: Path, after: Path) -> set[str]:
    """``file:field`` for each field that differs between two renders (files whole when one
    side lacks them)."""
    a, b = documents(before), documents(after)
    changed = {f"{path}:*" for path in set(a) ^ set(b)}
    for path in set(a) & set(b):
        old, new = leaves(a[path]), leaves(b[path])
        changed |= {f"{path}:{key}" for key in set(old) | set(new) if old.get(key) != new.get(key)}
    return changed
