"""``shipyard app build|register|list|versions|tag``: embedded and over HTTP, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_registry_cli import Shipyard, shipyard  # noqa: F401  (the fixture)

from ._folders import make_app

APP = "tumour_app"


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder whose working context is project demo, holding the app folder."""
    folder = tmp_path / "work"
    make_app(folder / APP)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # in no repository
    (folder / ".shipyard.toml").write_text('project = "demo"\n')
    monkeypatch.chdir(folder)
    return folder


def test_register_builds_the_bundle_and_adds_a_candidate_then_says_unchanged(
    shipyard: Shipyard,  # noqa: F811
    workdir: Path,
    key_pair: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    shipyard.ok("project", "create", "demo")
    code, out, err = shipyard("app", "register", APP, "--sign-key", str(key_pair[0]))
    assert code == 0, err
    assert out.startswith("registered tumour_app candidate 1: bundle tumour_app 0.1.0, sha256 ")
    assert out.rstrip().endswith(", signed")
    assert f"acted on project demo (project from {workdir / '.shipyard.toml'})" in err
    again = shipyard.ok("app", "register", APP, "--sign-key", str(key_pair[0]))
    assert again.startswith("unchanged: this bundle is already registered, tumour_app candidate 1")
    assert shipyard.json("app", "versions", APP)[0]["kind"] == "app"
    assert shipyard.json("app", "tag", APP, "1")["tag"] == "v1"
    assert [(a["name"], a["default_version"]) for a in shipyard.json("app", "list")] == [
        (APP, "v1")
    ]
    shipyard.ok("component", "add", APP, "--env", "integration")
    status = shipyard.json("env", "status", "integration")
    assert [(c["name"], c["kind"]) for c in status["components"]] == [(APP, "app")]
    assert "│ app " in shipyard.ok("env", "status", "integration")


def test_build_writes_the_bundle_and_kept_bundles_register_as_built(
    shipyard: Shipyard,  # noqa: F811
    workdir: Path,
    signed_bundle: Path,
) -> None:
    shipyard.ok("project", "create", "demo")
    out = shipyard.ok("app", "build", APP, "-o", "dist")
    bundle = workdir / "dist" / "tumour_app-0.1.0.tar.gz"
    assert out.startswith("built dist/tumour_app-0.1.0.tar.gz: tumour_app 0.1.0, sha256 ")
    assert out.rstrip().endswith("unsigned; not in a git repository")
    kept = shipyard.json("app", "register", str(bundle), "--app-config", _config(workdir))
    assert (kept["kind"], kept["app_config"]) == ("app", {"title": "Triage"})
    line = shipyard.fails(2, "model", "register", str(bundle))
    assert line.endswith(
        "tumour_app 0.1.0 is an app bundle, not a model: use shipyard app register"
    )
    line = shipyard.fails(2, "app", "register", str(signed_bundle))
    assert "is a model bundle, not an app: use shipyard model register" in line
    shipyard.ok("model", "register", str(signed_bundle))
    line = shipyard.fails(2, "app", "versions", "tumour_triage")
    assert line == "error: 'tumour_triage' is a model, not an app: use shipyard model commands"
    line = shipyard.fails(2, "app", "register", str(bundle), "--sign-key", "k.pem")
    assert "--sign-key signs a bundle built from a folder" in line
    line = shipyard.fails(2, "app", "register", "nowhere")
    assert "app folder nowhere does not exist" in line


def _config(folder: Path) -> str:
    path = folder / "app-config.yaml"
    path.write_text("title: Triage\n")
    return str(path)
