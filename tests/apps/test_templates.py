"""``shipyard app templates`` and ``app create``: the folders each template writes, the
refusals, and the scaffolded apps' own tests (unit, integration, smoke) passing in them,
run as a data scientist would (pytest in the folder, this tree's shipyard on the path)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from shipyard import __version__, app_templates
from shipyard.app_templates import CreateOptions, create_app
from shipyard.apps import AppBundle, build_app_bundle, read_app_config
from shipyard.errors import Conflict, UsageError
from tests.cli.test_cli import run_cli
from tests.cli.test_registry_cli import Shipyard, shipyard  # noqa: F401  (the fixture)
from tests.serving._hold import wait_until
from tests.serving.conftest import serve_process

SOURCE = str(Path(app_templates.__file__).resolve().parents[2])  # this tree's src/
TOOLS = Path(sys.executable).parent
KEY = "sya_1_template-test-environment-key"

COMMON = {
    ".dockerignore",
    ".gitignore",
    ".github/workflows/shipyard.yml",
    ".gitlab-ci.yml",
    "Containerfile",
    "README.md",
    "app/__init__.py",
    "app/main.py",
    "pytest.ini",
    "requirements-dev.txt",
    "requirements.txt",
    "shipyard-app.toml",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/integration/__init__.py",
    "tests/integration/loopback.py",
    "tests/smoke/__init__.py",
    "tests/smoke/test_smoke.py",
    "tests/unit/__init__.py",
}
MODEL_FILES = {
    "app/schema.py",
    "tests/integration/conftest.py",
    "tests/integration/stand_in.py",
    "tests/unit/test_schema.py",
}
TREES = {
    "web": COMMON
    | MODEL_FILES
    | {
        "app/access.py",
        "app/templates/index.html",
        "tests/integration/test_app.py",
        "tests/unit/test_web.py",
    },
    "batch": COMMON
    | MODEL_FILES
    | {
        "app/score.py",
        "tests/integration/test_scoring.py",
        "tests/integration/test_served.py",
        "tests/unit/test_health.py",
        "tests/unit/test_reading.py",
    },
    "blank": COMMON | {"tests/integration/test_served.py", "tests/unit/test_health.py"},
}


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def scaffold(folder: Path, template: str, name: str = "triage_web") -> Path:
    models = () if template == "blank" else ("tumour_triage",)
    return create_app(CreateOptions(name, template, folder, models, project="demo")).folder


def run_app_tests(
    folder: Path, basetemp: Path, *args: str, env: dict[str, str] | None = None
) -> str:
    """pytest in the app's folder, as its author runs it; its output (it must pass)."""
    variables = {**os.environ, "PYTHONPATH": SOURCE, **(env or {})}
    for name in ("SHIPYARD_SMOKE_URL", "SHIPYARD_SMOKE_API_KEY", "SHIPYARD_APP_API_KEY"):
        if not (env and name in env):
            variables.pop(name, None)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"]
    done = subprocess.run(
        [*command, f"--basetemp={basetemp}", *args],
        cwd=folder,
        env=variables,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return done.stdout


def test_app_templates_lists_each_with_a_line_saying_what_it_is(capsys) -> None:
    code, out, _ = run_cli(capsys, "app", "templates")
    assert code == 0
    lines = out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["web", "batch", "blank"]
    assert "HTML form" in lines[0] and "/health" in lines[2]
    code, out, _ = run_cli(capsys, "app", "templates", "--json")
    listed = json.loads(out)
    assert [t["name"] for t in listed] == ["web", "batch", "blank"]
    assert all(t["description"] for t in listed)
    assert [t.name for t in app_templates.templates()] == ["web", "batch", "blank"]


@pytest.mark.parametrize("template", ["web", "batch", "blank"])
def test_app_create_writes_the_templates_tree(template: str, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "triage_web"
    args = ["app", "create", "triage_web", "--template", template, "-o", str(folder), "-p", "demo"]
    if template != "blank":
        args += ["--model", "tumour_triage"]
    code, out, err = run_cli(capsys, *args, "--json")
    assert code == 0, err
    assert tree(folder) == TREES[template]
    assert sorted(json.loads(out)["files"]) == sorted(TREES[template])
    spec = read_app_config(folder)  # what app register reads
    models = [] if template == "blank" else ["tumour_triage"]
    assert (spec.name, spec.version, spec.template, spec.entry, spec.models) == (
        "triage_web",
        "0.1.0",
        template,
        "app.main:app",
        models,
    )
    assert "$" not in (folder / "README.md").read_text().replace("$SHIPYARD", "")
    assert not list(tmp_path.glob(".triage_web-*"))  # no scratch folder left


def test_the_default_folder_is_the_apps_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "app", "create", "web1", "-m", "tumour_triage", "-p", "demo")
    assert code == 0, err
    assert "created web1 from the web template" in out
    assert (tmp_path / "web1" / "shipyard-app.toml").is_file()


def test_an_unknown_template_is_one_line_and_writes_nothing(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "x"
    code, out, err = run_cli(
        capsys, "app", "create", "x", "--template", "flask", "-o", str(folder), "-p", "demo"
    )
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "error: unknown template 'flask': choose web, batch, blank (shipyard app templates "
        "describes them)"
    ]
    assert not folder.exists() and list(tmp_path.iterdir()) == []


def test_a_folder_that_is_not_empty_is_refused_and_left_alone(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "taken"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    args = ["app", "create", "taken", "-o", str(folder), "-m", "tumour_triage", "-p", "demo"]
    code, _, err = run_cli(capsys, *args)
    assert code == 1 and "exists and is not empty" in err and len(err.strip().splitlines()) == 1
    assert tree(folder) == {"notes.txt"} and (folder / "notes.txt").read_text() == "mine"
    with pytest.raises(Conflict):
        create_app(CreateOptions("t", "blank", tmp_path / "taken" / "notes.txt", project="p"))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert tree(scaffold(empty, "blank")) == TREES["blank"]  # an empty folder is filled


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (CreateOptions("1app", project="p", models=("m",)), "app name '1app' is not allowed"),
        (CreateOptions("a.b", project="p", models=("m",)), "app name 'a.b' is not allowed"),
        (CreateOptions("web1", project="p"), "the web template calls a model: give --model"),
        (CreateOptions("web1", project="p", models=("bad-name",)), "'bad-name' is not a model"),
        (CreateOptions("web1", project="p", models=("m", "m")), "names a model twice"),
        (CreateOptions("web1", models=("m",)), "give --project"),
    ],
)
def test_bad_options_are_usage_errors_naming_what_is_wrong(
    options: CreateOptions, message: str, tmp_path: Path
) -> None:
    options = CreateOptions(**{**options.__dict__, "folder": tmp_path / "out"})
    with pytest.raises(UsageError, match=message):
        create_app(options)
    assert not (tmp_path / "out").exists()


def test_a_failure_while_writing_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.app_templates import _scaffold

    def broken(folder: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_scaffold, "read_app_config", broken)
    with pytest.raises(OSError, match="No space"):
        scaffold(tmp_path / "app", "web")
    assert list(tmp_path.iterdir()) == []


def test_the_scaffolded_code_is_ruff_clean_and_the_containerfile_hadolint_clean(
    tmp_path: Path,
) -> None:
    for template in ("web", "batch", "blank"):
        folder = scaffold(tmp_path / template, template)
        lint = [str(TOOLS / "ruff"), "check", "--isolated", "--line-length", "100"]
        lint += ["--select", "E,F,W,I,B,UP,SIM", "."]
        # Run in the app's folder, as its author would: app is first-party, shipyard not.
        done = subprocess.run(lint, cwd=folder, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout
        form = [str(TOOLS / "ruff"), "format", "--isolated", "--line-length", "100"]
        done = subprocess.run([*form, "--check", "."], cwd=folder, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout
        hadolint = TOOLS / "hadolint"
        done = subprocess.run(
            [str(hadolint), "--no-color", str(folder / "Containerfile")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_apps_containerfile_runs_its_entry_as_the_deploy_images_user(tmp_path: Path) -> None:
    from shipyard.deploy import CONTAINER_UID

    text = (scaffold(tmp_path / "web", "web") / "Containerfile").read_text()
    assert f"USER {CONTAINER_UID}:{CONTAINER_UID}" in text
    assert f"'shipyard=={__version__}'" in text
    assert 'ENTRYPOINT ["/opt/venv/bin/uvicorn", "app.main:app"]' in text
    assert "+ '/health'" in text  # the health check asks the app's own route
    ignored = (tmp_path / "web" / ".dockerignore").read_text().split()
    assert "tests" in ignored and ".git" in ignored


def test_the_apps_workflows_register_it_and_run_its_smoke_tests(tmp_path: Path) -> None:
    folder = scaffold(tmp_path / "web", "web")
    workflow = folder / ".github/workflows/shipyard.yml"
    env = {"PATH": f"{TOOLS}:/usr/bin:/bin", "HOME": "/tmp"}
    for command in (
        [str(TOOLS / "actionlint"), "-no-color", str(workflow)],
        [str(TOOLS / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows"]
        + [str(workflow)],
        [str(TOOLS / "check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci"]
        + ["--data-transform", "gitlab-ci", str(folder / ".gitlab-ci.yml")],
    ):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    steps = yaml.safe_load(workflow.read_text())["jobs"]["challenger"]["steps"]
    scripts = {s.get("name"): s.get("run", "") for s in steps}
    assert "Build the bundles (the repository's export step)" not in scripts  # no models here
    name = "Register the app as a candidate and deploy it to the challenger"
    register = scripts[name]
    assert 'shipyard app register . --env "$CHALLENGER" --sign-key "$sign_key"' in register
    # The signing key is that step's alone: the smoke step runs the repository's code.
    secret_steps = [s["name"] for s in steps if "SHIPYARD_SIGN_KEY" in str(s.get("env", {}))]
    assert secret_steps == [name]
    smoke = scripts["Smoke-test the challenger"]
    assert "SHIPYARD_SMOKE_PATH=/apps/triage_web" in smoke and "-m smoke tests/smoke" in smoke
    assert "-r requirements.txt -r requirements-dev.txt" in scripts["Install shipyard"]
    gitlab = (folder / ".gitlab-ci.yml").read_text()
    assert 'shipyard app register . --env "$CHALLENGER" --sign-key "$sign_key"' in gitlab
    assert "unset SHIPYARD_SIGN_KEY" in gitlab  # a GitLab job's variables are every line's


def test_a_scaffolded_app_locks_as_an_app_bundle(tmp_path: Path) -> None:
    folder = scaffold(tmp_path / "web", "web")
    bundle = AppBundle(build_app_bundle(folder, tmp_path / "dist"))
    bundle.verify()
    assert bundle.metadata["name"] == "triage_web" and bundle.metadata["kind"] == "app"
    assert bundle.metadata["requirements"] == ["jinja2>=3.1"]
    extracted = bundle.extract(tmp_path / "extracted")
    assert (extracted / "app" / "main.py").is_file()
    assert (extracted / "app" / "templates" / "index.html").is_file()


@pytest.mark.parametrize(
    ("template", "passed"), [("web", 16), ("batch", 14), ("blank", 4)], ids=str
)
def test_the_scaffolded_apps_own_tests_pass_out_of_the_box(
    template: str, passed: int, tmp_path: Path
) -> None:
    folder = scaffold(tmp_path / template, template)
    out = run_app_tests(folder, tmp_path / "basetemp")
    assert f"{passed} passed" in out, out
    assert "SHIPYARD_SMOKE_URL is not set" in out  # the smoke tests say why they skipped
    # Each test carries its folder's marker: pytest -m unit runs the fast ones alone (the
    # smoke marker is run by the smoke test below).
    listed = run_app_tests(folder, tmp_path / "basetemp", "--collect-only", "-m", "unit")
    tests = [line for line in listed.splitlines() if "::" in line]
    assert tests and all(line.startswith("tests/unit/") for line in tests), listed
    assert 0 < len(tests) < passed  # the rest are the integration tests


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_app(folder: Path, serving_url: str, log: Path) -> Iterator[str]:
    """The scaffolded app served by uvicorn in a subprocess, as its image runs it."""
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": SOURCE,
        "SHIPYARD_SERVING_URL": serving_url,
        "SHIPYARD_PROJECT": "local",
        "SHIPYARD_ENV": "local",
    }
    env.pop("SHIPYARD_APP_API_KEY", None)
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(healthy, "the app answers /health", timeout=60)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def test_the_web_apps_smoke_tests_pass_against_it_in_front_of_the_real_model(
    tmp_path: Path, signed_bundle: Path
) -> None:
    folder = scaffold(tmp_path / "web", "web")
    keys = tmp_path / "api-keys"
    keys.write_text(KEY + "\n")
    with (
        serve_process(["--bundle", str(signed_bundle), "--api-key-file", str(keys)]) as (
            models,
            _,
        ),
        running_app(folder, models, tmp_path / "app.log") as url,
    ):
        page = httpx.get(f"{url}/")
        assert page.status_code == 200
        assert page.text.count('type="number" step="any"') == 30  # the tumour's measurements
        assert 'name="mean_radius" value="' in page.text
        smoke = {"SHIPYARD_SMOKE_URL": url, "SHIPYARD_SMOKE_API_KEY": KEY}
        out = run_app_tests(folder, tmp_path / "basetemp", "-m", "smoke", env=smoke)
        assert "4 passed" in out, out
        example = httpx.get(f"{url}/schema").json()["example"]
        answer = httpx.post(
            f"{url}/predict", json={"rows": [example]}, headers={"X-API-Key": KEY}
        ).json()
        [prediction] = answer["predictions"]
        assert answer["model"] == "tumour_triage"
        assert prediction["decision"] in {"refer", "review", "routine"}


def test_every_template_file_is_a_tmpl_file_so_packaging_ships_it() -> None:
    # pyproject.toml's package data takes **/*.tmpl, and app create renders only those.
    root = Path(app_templates.__file__).parent
    for layer in {layer for t in app_templates.TEMPLATES.values() for layer in t.layers}:
        files = [
            p for p in (root / layer).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ]
        assert files and all(p.name.endswith(".tmpl") for p in files), layer


def test_a_scaffolded_app_registers_straight_into_a_challenger(
    shipyard: Shipyard,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What the CI's challenger job runs: shipyard app register . --env "$CHALLENGER".
    folder = scaffold(tmp_path / "triage_web", "web")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # in no repository
    monkeypatch.chdir(folder)
    shipyard.ok("project", "create", "demo")
    shipyard.ok("env", "challenger", "create", "pr-7", "--from", "integration", "-p", "demo")
    out = shipyard.ok("app", "register", ".", "--env", "pr-7", "-p", "demo")
    assert out.startswith("registered triage_web candidate 1: bundle triage_web 0.1.0")
    assert out.rstrip().endswith("; deployed to pr-7, revision 2")
    status = shipyard.json("env", "status", "pr-7", "-p", "demo")
    assert [(c["name"], c["kind"], c["tag"]) for c in status["components"]] == [
        ("triage_web", "app", None)
    ]
    again = shipyard.json("app", "register", ".", "--env", "pr-7", "-p", "demo")
    assert again["version_id"] == 1 and again["deployed"]["environment"] == "pr-7"
    assert shipyard.json("env", "status", "integration", "-p", "demo")["components"] == []
