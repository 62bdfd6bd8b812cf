"""``shipyard demo``'s steps (the registry's, scoring a file, serving production), its public
names, and the rule that only the command line imports it."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

import shipyard
import shipyard.demo
from shipyard.demo import _registry_steps
from shipyard.demo._batch_step import batch_step
from shipyard.demo._serve_step import open_registry, serve_step
from shipyard.pipeline import Pipeline

from ._display import recording_display
from ._production import production_registry

PACKAGE = Path(shipyard.__file__).parent


def test_the_registry_steps_take_every_change_into_production_through_a_reviewers_approval(
    tmp_path: Path,
    demo_pipeline: Pipeline,
    signed_bundle: Path,
    key_pair: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHIPYARD_USER", "alice")
    (tmp_path / "dist").mkdir()
    bundle = Path(shutil.copy(signed_bundle, tmp_path / "dist"))
    display = recording_display()
    _registry_steps.run(tmp_path, demo_pipeline, bundle, key_pair, display)

    with open_registry(tmp_path) as registry:
        requests = registry.list_change_requests("demo", "production")[::-1]  # oldest first
        history = registry.history("demo", "production")
        status = registry.status("demo", "production")
    # 1.0.0 and 1.1.0 promoted, the unsigned 1.2.0 refused at approval and rejected, the
    # rollback to 1.0.0: each asked for by alice and decided by the reviewer.
    assert [(r.action, r.state) for r in requests] == [
        ("promote", "applied"),
        ("promote", "applied"),
        ("promote", "rejected"),
        ("rollback", "applied"),
    ]
    assert {r.requested_by for r in requests} == {"alice"}
    assert {r.decided_by for r in requests} == {"reviewer"}
    assert [[a.actor for a in r.approvals] for r in requests] == [
        ["reviewer"],
        ["reviewer"],
        [],
        ["reviewer"],
    ]
    changed = [r for r in history if r.reason.startswith(("promote", "rollback"))]
    assert [r.number for r in changed] == [
        r.result_revision for r in requests[::-1] if r.result_revision
    ]
    assert {r.actor for r in changed} == {"reviewer"}
    assert [c.tag for c in status.components] == ["v1"]
    assert status.settings["approvals_required"].value == 1

    shown = display.console.export_text()
    assert (
        "$ shipyard env settings set approvals_required 1 --project demo --env production" in shown
    )
    first, unsigned = requests[0].id, requests[2].id
    own = f"refused: alice asked for change request {first} and cannot approve it"
    assert shown.count(own) == 1 and shown.count("cannot approve it") == 1
    assert f"$ SHIPYARD_USER=reviewer shipyard env approve {first} --project demo" in shown
    assert f"applied: change request {first} (promote uat@" in shown
    assert "refused at approval: environment 'production'" in shown and "it is unsigned" in shown
    assert f"rejected: change request {unsigned} (promote uat@" in shown
    assert "audit log OK" in shown and "audit verify on the copy fails" in shown


def test_the_batch_step_scores_100_000_rows_and_shows_the_four_broken_ones(
    signed_bundle: Path, tmp_path: Path
) -> None:
    console = Console(record=True, width=200)
    result = batch_step(tmp_path, signed_bundle, console)
    assert (result.rows, result.scored, result.rejected) == (100_000, 99_996, 4)
    shown = console.export_text()
    assert "100,000 rows: 99,996 scored, 4 rejected" in shown
    for text in ("T0001234", "T0025000", "T0061803", "line has 32 fields, expected 31"):
        assert text in shown
    assert (tmp_path / "batch" / "scores.csv").exists()


@pytest.mark.integration  # the step runs `shipyard serve` in a subprocess and calls it over HTTP
def test_the_serve_step_serves_predicts_and_stops(
    tmp_path: Path, signed_bundle: Path, key_pair: tuple[Path, Path]
) -> None:
    production_registry(tmp_path, signed_bundle, key_pair[1])
    console = Console(record=True, width=200)
    answer = serve_step(tmp_path, "demo", "production", console)
    assert answer["decision"]["values"] == ["refer"]
    shown = console.export_text()
    assert "$ shipyard serve --project demo --env production --port" in shown
    assert "$ curl -s -X POST http://127.0.0.1:" in shown
    assert "answered by tumour_triage v1" in shown
    assert (tmp_path / "api-key.txt").read_text().strip() not in shown


def _deploy_step(tmp_path: Path, signed_bundle: Path, public_key: Path) -> tuple[Path, str]:
    from shipyard.demo._deploy_step import deploy_step

    production_registry(tmp_path, signed_bundle, public_key)
    console = Console(record=True, width=400)
    overlay = deploy_step(tmp_path, "demo", "production", console)
    return overlay, console.export_text()


def test_the_deploy_step_renders_production_and_says_a_builder_is_missing(
    tmp_path: Path,
    signed_bundle: Path,
    key_pair: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no buildah, podman or docker
    overlay, shown = _deploy_step(tmp_path / "work", signed_bundle, key_pair[1])
    assert (overlay / "kustomization.yaml").exists()
    assert "image: not built: no image builder (buildah, podman or docker) on PATH" in shown
    assert "apt-get install buildah podman runc" in shown
    assert (
        shown.rstrip()
        .splitlines()[-1]
        .startswith(f"apply on a cluster: kubectl apply -k {overlay}")
    )
    assert not (tmp_path / "work" / "deploy" / "demo" / "image").exists()
    with open_registry(tmp_path / "work") as registry:
        [render] = registry.list_deployments("demo", "production")
        assert (render.target, render.action) == ("kubernetes", "render")


@pytest.mark.integration  # the step asks the builder (a script here) about its store
def test_the_deploy_step_says_which_base_image_is_missing_and_how_to_make_one(
    tmp_path: Path,
    signed_bundle: Path,
    key_pair: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shipyard.deploy import LOCAL_BASE_IMAGE, default_base_image

    tools = tmp_path / "bin"
    tools.mkdir()
    asked = tmp_path / "asked"
    # A builder whose store holds no image: it notes what it was asked, and has nothing.
    builder = tools / "buildah"
    builder.write_text(f'#!/bin/sh\necho "$@" >> {asked}\nexit 1\n')
    builder.chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))
    monkeypatch.setenv("SHIPYARD_BASE_IMAGE", "localhost/our-base:1")
    overlay, shown = _deploy_step(tmp_path / "work", signed_bundle, key_pair[1])
    assert "image: not built: buildah is here, but none of the base images" in shown
    bases = ["localhost/our-base:1", default_base_image(), LOCAL_BASE_IMAGE]
    assert ", ".join(bases) in shown
    assert f"podman import - {LOCAL_BASE_IMAGE}" in shown and "debootstrap" in shown
    assert asked.read_text().splitlines() == [f"inspect --type image {b}" for b in bases]
    assert f"kubectl apply -k {overlay}" in shown
    assert not (tmp_path / "work" / "deploy" / "demo" / "image").exists()


@pytest.mark.slow  # collects the wheels and builds the image with buildah (minutes)
def test_the_deploy_step_builds_the_image_where_a_builder_and_a_base_are_at_hand(
    containers: dict[str, str],
    tmp_path: Path,
    signed_bundle: Path,
    key_pair: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shipyard.deploy import LOCAL_BASE_IMAGE

    for name, value in containers.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SHIPYARD_BASE_IMAGE", raising=False)
    overlay, shown = _deploy_step(tmp_path / "work", signed_bundle, key_pair[1])
    with open_registry(tmp_path / "work") as registry:
        builds = [d for d in registry.list_deployments("demo", "production") if d.action == "build"]
    for build in builds:
        subprocess.run(["podman", "rmi", "-f", build.image], capture_output=True)
    (build,) = builds
    assert f"--base-image {LOCAL_BASE_IMAGE}" in shown
    assert f"image: built {build.image} with buildah" in shown
    assert f"digest {build.digest}" in shown and " MB, " in shown
    last = shown.rstrip().splitlines()[-1]
    assert last.startswith(f"apply on a cluster: kubectl apply -k {overlay}")


def test_the_public_names_of_shipyard_demo() -> None:
    assert sorted(shipyard.demo.__all__) == [
        "Display",
        "RegistryViews",
        "build_pipeline",
        "reference",
        "run_demo",
    ]
    for name in shipyard.demo.__all__:
        assert getattr(shipyard.demo, name) is not None


def _imported(module: Path) -> set[str]:
    """The absolute names of the modules ``module`` imports (relative imports resolved)."""
    parts = ["shipyard", *module.relative_to(PACKAGE).with_suffix("").parts]
    package = parts[:-1]  # what a relative import of level 1 starts from
    names: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def _importers(prefix: str) -> set[str]:
    """The top-level packages (or modules) of shipyard that import ``prefix`` or below it."""
    found = set()
    for module in PACKAGE.rglob("*.py"):
        if any(n == prefix or n.startswith(prefix + ".") for n in _imported(module)):
            found.add(module.relative_to(PACKAGE).parts[0])
    return found


def test_only_the_command_line_imports_the_demo() -> None:
    assert _importers("shipyard.demo") == {"cli", "demo"}


def test_batch_reports_progress_without_drawing_it() -> None:
    assert "batch" not in _importers("rich")
    assert "cli" in _importers("rich")  # the check sees rich where it is imported
