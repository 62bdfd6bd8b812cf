"""``shipyard ci smoke`` of an environment holding an app and no model: what the smoke
step of a blank app's workflow meets (its challenger holds the app alone)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from shipyard.app_templates import CreateOptions, create_app
from shipyard.apps import build_app_bundle
from shipyard.registry import Registry

from ._play import runner_environment

pytestmark = pytest.mark.integration  # ci smoke starts shipyard serve by itself


def _app_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An embedded registry whose integration holds the blank template's app and nothing
    else; the app's folder."""
    folder = create_app(CreateOptions("hello", "blank", tmp_path / "hello", project="demo")).folder
    home = tmp_path / "registry"
    for name in ("SHIPYARD_URL", "SHIPYARD_TOKEN", "SHIPYARD_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    with Registry.open() as registry:
        registry.create_project("demo", ["integration", "uat", "production"])
        version = registry.register_app("demo", build_app_bundle(folder, tmp_path / "dist"))
        registry.add_component("demo", "integration", "hello", version.version_id)
    return folder


def _smoke_step(folder: Path, tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    env = {**runner_environment(tmp_path / "runner"), "SHIPYARD_HOME": os.environ["SHIPYARD_HOME"]}
    env |= {"SHIPYARD_PROJECT": "demo", "CHALLENGER": "integration"}
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_blank_apps_smoke_step_passes_against_the_app_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _app_alone(tmp_path, monkeypatch)
    workflow = yaml.safe_load((folder / ".github/workflows/shipyard.yml").read_text())
    [script] = [
        s["run"]
        for s in workflow["jobs"]["challenger"]["steps"]
        if s.get("name") == "Smoke-test the challenger"
    ]
    done = _smoke_step(folder, tmp_path, script)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout  # the app's /health, under /apps/hello
    assert "smoke test passed" in done.stdout and "demo/integration" in done.stdout


def test_without_a_command_an_app_alone_is_refused_saying_what_to_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _app_alone(tmp_path, monkeypatch)
    done = _smoke_step(folder, tmp_path, 'shipyard ci smoke --env "$CHALLENGER"')
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "error: demo/integration holds no model: nothing to send an example to (give "
        "--command with a smoke test of your own)"
    ]
