"""Projects and models: registration (verified, stored), tags, default versions."""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

import pytest

from shipyard.artifact import generate_key_pair
from shipyard.errors import SignatureError, TamperedArtifact
from shipyard.registry import Conflict, InvalidInput, NotFound, Registry

from .conftest import MODEL


def test_create_project_makes_the_default_chain(registry: Registry) -> None:
    project = registry.create_project("demo")
    assert project.environments == ["integration", "uat", "production"]
    chain = {e.name: e.promotes_to for e in registry.list_environments("demo")}
    assert chain == {"integration": "uat", "uat": "production", "production": None}
    assert [p.name for p in registry.list_projects()] == ["demo"]


def test_create_project_with_chosen_environments(registry: Registry) -> None:
    registry.create_project("p", environments=["dev", "prod"])
    assert [(e.name, e.promotes_to) for e in registry.list_environments("p")] == [
        ("dev", "prod"),
        ("prod", None),
    ]


def test_project_refusals(registry: Registry) -> None:
    registry.create_project("demo")
    with pytest.raises(Conflict, match="project 'demo' already exists"):
        registry.create_project("demo")
    with pytest.raises(InvalidInput, match="project name 'no spaces' is not allowed"):
        registry.create_project("no spaces")
    with pytest.raises(InvalidInput, match="repeat"):
        registry.create_project("other", environments=["a", "a"])
    with pytest.raises(NotFound, match=r"project 'nope' does not exist \(projects: demo\)"):
        registry.get_project("nope")


def test_delete_project_removes_everything_it_holds(demo: Registry) -> None:
    demo.add_component("demo", "integration", MODEL)
    demo.set_setting("replicas", 2, "demo", "integration")
    demo.delete_project("demo")
    assert demo.list_projects() == []
    demo.create_project("demo")  # the name is free again, with nothing left over
    assert demo.list_models("demo") == []
    assert demo.list_components("demo", "integration") == []


def test_register_adds_a_candidate_and_stores_the_bundle(
    registry: Registry, bundles: list[Path], tmp_path: Path
) -> None:
    registry.create_project("demo")
    version = registry.register_model("demo", bundles[0], app_config={"threshold": 0.5})
    assert (version.model, version.version_id, version.tag) == (MODEL, 1, None)
    assert (version.bundle_name, version.bundle_version, version.signed) == (MODEL, "1.0.0", True)
    assert version.app_config == {"threshold": 0.5}
    assert registry.store.exists(version.digest)
    fetched = registry.fetch_bundle("demo", MODEL, 1, tmp_path / "out")
    assert fetched.name == "tumour_triage-1.0.0.tar.gz"
    assert fetched.read_bytes() == bundles[0].read_bytes()


def test_register_the_same_bundle_twice_returns_the_same_version(
    registry: Registry, bundles: list[Path]
) -> None:
    registry.create_project("demo")
    first = registry.register_model("demo", bundles[0])
    again = registry.register_model("demo", bundles[0])
    assert again.version_id == first.version_id
    assert len(registry.versions("demo", MODEL)) == 1


def test_register_refuses_other_content_under_a_registered_version(
    registry: Registry, bundles: list[Path], tmp_path: Path
) -> None:
    # Same files, recompressed: a different blob that claims the same pipeline version.
    repacked = tmp_path / "tumour_triage-1.0.0.tar.gz"
    with (
        tarfile.open(bundles[0]) as source,
        gzip.open(repacked, "wb", compresslevel=1) as raw,
        tarfile.open(fileobj=raw, mode="w") as target,
    ):
        for member in source.getmembers():
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
    registry.create_project("demo")
    registry.register_model("demo", bundles[0])
    with pytest.raises(Conflict, match="1.0.0 is already registered .* new version"):
        registry.register_model("demo", repacked)


def test_register_refuses_a_tampered_bundle(
    registry: Registry, bundles: list[Path], tmp_path: Path
) -> None:
    tampered = tmp_path / "tumour_triage-1.0.0.tar.gz"
    with tarfile.open(bundles[0]) as source, tarfile.open(tampered, "w:gz") as target:
        for member in source.getmembers():
            data = source.extractfile(member) if member.isfile() else None
            if member.name.endswith("metadata.json"):
                import io

                content = data.read().replace(b"Probability", b"Likelihood")  # type: ignore[union-attr]
                member.size = len(content)
                data = io.BytesIO(content)  # type: ignore[assignment]
            target.addfile(member, data)
    registry.create_project("demo")
    with pytest.raises(TamperedArtifact, match="metadata.json"):
        registry.register_model("demo", tampered)
    assert registry.list_models("demo") == []


def test_register_checks_the_signature_when_a_key_is_configured(
    registry: Registry,
    bundles: list[Path],
    key_pair: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry.create_project("demo")
    _, other_public = generate_key_pair(tmp_path / "other")
    monkeypatch.setenv("SHIPYARD_PUBLIC_KEY", str(other_public))
    with pytest.raises(SignatureError):
        registry.register_model("demo", bundles[0])
    monkeypatch.setenv("SHIPYARD_PUBLIC_KEY", str(key_pair[1]))
    assert registry.register_model("demo", bundles[0]).signed


def test_tags_count_up_and_the_newest_tag_is_the_default(
    registry: Registry, bundles: list[Path]
) -> None:
    registry.create_project("demo")
    ids = [registry.register_model("demo", b).version_id for b in bundles]
    assert registry.get_version("demo", MODEL, 1).tag is None
    with pytest.raises(NotFound, match="no tagged version to use by default"):
        registry.get_version("demo", MODEL)
    assert registry.tag("demo", MODEL, ids[2]).tag == "v1"
    assert registry.tag("demo", MODEL, str(ids[0])).tag == "v2"
    assert registry.get_version("demo", MODEL).tag == "v2"
    with pytest.raises(Conflict, match="already tagged v1"):
        registry.tag("demo", MODEL, ids[2])
    models = registry.list_models("demo")
    assert [(m.name, m.default_version, m.versions, m.candidates) for m in models] == [
        (MODEL, "v2", 3, 1)
    ]


def test_set_default_pins_a_version_until_cleared(demo: Registry) -> None:
    assert demo.get_version("demo", MODEL).tag == "v3"
    assert demo.set_default("demo", MODEL, "v1").tag == "v1"
    assert demo.get_version("demo", MODEL).bundle_version == "1.0.0"
    assert [v.tag for v in demo.versions("demo", MODEL) if v.is_default] == ["v1"]
    assert demo.set_default("demo", MODEL, None).tag == "v3"


def test_set_default_refuses_a_candidate(registry: Registry, bundles: list[Path]) -> None:
    registry.create_project("demo")
    registry.register_model("demo", bundles[0])
    with pytest.raises(Conflict, match="candidate; tag it"):
        registry.set_default("demo", MODEL, 1)


def test_unknown_versions_and_models_are_named(demo: Registry) -> None:
    with pytest.raises(NotFound, match=r"has no version v9 \(tags: v1, v2, v3; candidates: none\)"):
        demo.get_version("demo", MODEL, "v9")
    with pytest.raises(NotFound, match=r"no model 'nope' \(models: tumour_triage\)"):
        demo.versions("demo", "nope")
    with pytest.raises(InvalidInput, match="neither a tag like v2 nor a version id"):
        demo.get_version("demo", MODEL, "latest")
