"""An app's own repository, as ``shipyard app create`` scaffolds it, taken through its
generated workflows: a pull request, its merge (with the approval before production) and
a close, played against a real ``shipyard server`` on loopback.

The app is the web template in front of the demo model, which the registry already runs
as v1 on every environment. The workflows are the ones the scaffold wrote (by
``shipyard.ci``), played by tests/ci/_play.py; the runner holds only the CI secrets (the
server's URL, a deployer token and the key that signs the app). The smoke step serves the
challenger itself (``shipyard ci smoke`` starts ``shipyard serve --project demo --env
pr-N`` on loopback) and runs the app's own smoke tests against the app mounted there, so
nothing here stands in for a deployment.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._play import (
    GitHubWorkflow,
    GitLabFile,
    job_logs,
    job_results,
    pull_request,
    refuse_approval,
    runner_environment,
)
from ._server import MODEL, SHIPYARD, Server, git, registry_server

pytestmark = [pytest.mark.slow, pytest.mark.integration]

APP = "triage_web"


@pytest.fixture()
def server(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    key_pair: tuple[Path, Path],
    bundles: list[Path],
) -> Iterator[Server]:
    """Project demo with the model's v1 on integration, uat and production, and no app."""
    with registry_server(tmp_path, monkeypatch, key_pair, bundles[0]) as running:
        yield running


def _scaffold(tmp_path: Path, runner: dict[str, str]) -> Path:
    """``shipyard app create`` of the web template, committed on main and pushed to
    ``origin`` (a bare repository here), as its author would start."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "--quiet", "--bare", "-b", "main", str(origin))
    repo = tmp_path / "repo"
    command = [SHIPYARD, "app", "create", APP, "--template", "web", "--model", MODEL]
    done = subprocess.run(
        [*command, "--project", "demo", "-o", str(repo)],
        env=runner,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    git(repo, "init", "--quiet", "-b", "main")
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", f"{APP} from the web template")
    git(repo, "push", "--quiet", "origin", "main")
    return repo


def _guard_the_key(repo: Path, branch: str) -> None:
    """A pull request's branch: the author adds a smoke test of their own, which checks the
    signing key is out of reach of the repository's code the smoke step runs."""
    git(repo, "checkout", "--quiet", "-B", branch)
    (repo / "tests" / "smoke" / "test_no_signing_key.py").write_text(
        "import os\n\n\n"
        "def test_the_signing_key_is_not_in_this_environment() -> None:\n"
        '    assert "SHIPYARD_SIGN_KEY" not in os.environ\n'
    )
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "A smoke test of my own")


def _change_the_app(repo: Path, branch: str, version: str) -> None:
    """A pull request's branch: the page's heading changed, the app's version raised."""
    git(repo, "checkout", "--quiet", "-B", branch)
    toml = repo / "shipyard-app.toml"
    toml.write_text(toml.read_text().replace('version = "0.1.0"', f'version = "{version}"'))
    page = repo / "app" / "templates" / "index.html"
    page.write_text(page.read_text().replace("</h1>", " (new)</h1>", 1))
    git(repo, "commit", "--quiet", "-am", f"{APP} {version}")


def _shown(step: str, state: dict[str, Any]) -> str:
    """An assertion's message: the step played and the registry's state after it."""
    return f"registry after {step}: {json.dumps(state, indent=1)}"


def _smoke_tested(server: Server, log: str, challenger: str) -> None:
    """The challenger's smoke step ran the app's smoke tests (the template's four and the
    author's) against the app served in it, with a key of the challenger's that was
    revoked after."""
    assert f"against demo/{challenger}" in log and "5 passed" in log, log
    with server.client() as registry:
        keys = registry.list_api_keys("demo", challenger)
    assert keys and all(k["revoked"] for k in keys), "the smoke test's key outlived it"


def _secrets(server: Server, sign_key: str) -> dict[str, str]:
    return {
        "SHIPYARD_URL": server.url,
        "SHIPYARD_TOKEN": server.deployer,
        "SHIPYARD_SIGN_KEY": sign_key,
    }


def _no_secret(server: Server, key_pair: tuple[Path, Path], *texts: str) -> None:
    private = "".join(key_pair[0].read_text().strip().splitlines()[1:-1])  # the PEM's body
    for text in texts:
        assert server.deployer not in text, "a step printed the deployer token"
        assert private not in "".join(text.split()), "a step printed the signing key"


def _signed(server: Server, tag: str) -> None:
    """The app's version ``tag`` was signed by the key the registry trusts."""
    with server.client() as registry:
        version = registry.get_version("demo", APP, tag)
    assert version["signed"] and version["signer_key_id"], version


def test_an_apps_github_workflow_takes_it_with_its_model_through_to_production(
    server: Server, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    runner = runner_environment(tmp_path / "runner")
    repo = _scaffold(tmp_path, runner)
    _guard_the_key(repo, "feature-7")
    # The secret holds the private key whose public half the registry trusts (as
    # release): production takes only signed versions, so the app is signed when the
    # challenger job registers it.
    secrets = _secrets(server, key_pair[0].read_text())
    workflow = GitHubWorkflow(
        repo / ".github/workflows/shipyard.yml",
        repo,
        runner,
        secrets=secrets,
        artifacts=tmp_path / "artifacts",
    )
    before = server.state("the seed")
    assert {e: v["components"] for e, v in before.items()} == {
        e: {MODEL: "v1"} for e in ("integration", "uat", "production")
    }, _shown("the seed", before)

    # Pull request 7 (the app's first): challenger pr-7 of integration holds the model it
    # inherited and the branch's app as a candidate, and the app's smoke tests pass there.
    opened = workflow.play("pull_request", pull_request("opened", 7), refuse_approval)
    assert job_results(opened) == {
        "challenger": "success",
        "integrate": "skipped",
        "production": "skipped",
        "close": "skipped",
    }, job_logs(opened)
    state = server.state("pull request 7 opened")
    assert state["pr-7"]["challenger_of"] == "integration", _shown("pr 7 opened", state)
    assert state["pr-7"]["components"] == {MODEL: "v1", APP: "candidate 1"}, _shown(
        "pr 7 opened", state
    )
    assert state["integration"]["components"] == {MODEL: "v1"}, _shown("pr 7 opened", state)
    _smoke_tested(server, opened["challenger"].log, "pr-7")
    saved = (tmp_path / "artifacts/component-config-pr-7/component-config.yaml").read_text()
    assert f"name: {APP}" in saved and f"name: {MODEL}" in saved, saved

    # Merged: integration and uat take the app's v1 beside the model at once; production
    # waits for a reviewer, and takes both after the approval; pr-7 is deleted.
    asked: list[str] = []

    def approve(job: str, environment: str) -> bool:
        waiting = server.state("pull request 7 merged, before the approval")
        shown = _shown("the merge, before the approval", waiting)
        assert waiting["integration"]["components"] == {MODEL: "v1", APP: "v1"}, shown
        assert waiting["uat"]["components"] == {MODEL: "v1", APP: "v1"}, shown
        assert waiting["production"]["components"] == {MODEL: "v1"}, shown
        asked.append(f"{job}:{environment}")
        return True

    merged = workflow.play("pull_request", pull_request("closed", 7, merged=True), approve)
    assert job_results(merged) == {
        "challenger": "skipped",
        "integrate": "success",
        "production": "success",
        "close": "success",
    }, job_logs(merged)
    assert asked == ["production:production"]
    logs = [job_logs(opened), job_logs(merged)]
    state = server.state("pull request 7 merged, production approved, pr-7 closed")
    assert {e: v["components"] for e, v in state.items()} == {
        e: {MODEL: "v1", APP: "v1"} for e in ("integration", "uat", "production")
    }, _shown("the merge and the approval", state)
    _signed(server, "v1")

    # Pull request 8 changes the app (0.2.0): its challenger holds candidate 2 and passes
    # its smoke tests; closed without merging, pr-8 goes and nothing else changes.
    _change_the_app(repo, "feature-8", "0.2.0")
    opened = workflow.play("pull_request", pull_request("opened", 8), refuse_approval)
    assert job_results(opened)["challenger"] == "success", job_logs(opened)
    state = server.state("pull request 8 opened")
    assert state["pr-8"]["components"] == {MODEL: "v1", APP: "candidate 2"}, _shown(
        "pr 8 opened", state
    )
    _smoke_tested(server, opened["challenger"].log, "pr-8")
    closed = workflow.play("pull_request", pull_request("closed", 8), refuse_approval)
    assert job_results(closed) == {
        "challenger": "skipped",
        "integrate": "skipped",
        "production": "skipped",
        "close": "success",
    }, job_logs(closed)
    after = server.state("pull request 8 closed unmerged")
    assert after == {e: v for e, v in state.items() if e != "pr-8"}, _shown("pr 8 closed", after)
    _no_secret(server, key_pair, *logs, job_logs(opened), job_logs(closed))


def test_an_apps_gitlab_pipelines_take_it_with_its_model_through_to_production(
    server: Server, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    runner = runner_environment(tmp_path / "runner")
    repo = _scaffold(tmp_path, runner)
    _guard_the_key(repo, "feature-7")
    # A GitLab variable of type File: the job gets the path of a file holding the key.
    variables = tmp_path / "gitlab-variables"
    variables.mkdir()
    key_file = variables / "SHIPYARD_SIGN_KEY"
    key_file.write_text(key_pair[0].read_text())
    ci = GitLabFile(
        repo / ".gitlab-ci.yml",
        repo,
        runner,
        project_variables=_secrets(server, str(key_file)),
        artifacts=tmp_path / "artifacts",
    )
    common = {"CI_DEFAULT_BRANCH": "main", "CI_PROJECT_PATH": f"acme/{APP}"}
    merge_request = {
        **common,
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_IID": "7",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature-7",
        "CI_COMMIT_REF_NAME": "feature-7",
    }

    # Merge request 7: challenger pr-7 holds the model and the app's candidate, and the
    # app's smoke tests pass against it.
    opened = ci.play(merge_request, refuse_approval)
    assert job_results(opened) == {"challenger": "success", "close-challenger": "manual"}, job_logs(
        opened
    )
    state = server.state("merge request 7 opened")
    assert state["pr-7"]["components"] == {MODEL: "v1", APP: "candidate 1"}, _shown(
        "mr 7 opened", state
    )
    assert state["integration"]["components"] == {MODEL: "v1"}, _shown("mr 7 opened", state)
    _smoke_tested(server, opened["challenger"].log, "pr-7")
    assert f"name: {APP}" in (tmp_path / "artifacts/challenger/component-config.yaml").read_text()
    assert key_file.is_file(), "the job removed GitLab's own file of the variable"

    # Merged (a merge commit, GitLab's default): the stop job leaves pr-7 to the main
    # branch's pipeline, which takes the app into integration and uat, deletes pr-7, and
    # waits for the manual production job.
    message = f"Merge branch 'feature-7' into 'main'\n\n{APP}\n\nSee merge request acme/{APP}!7"
    git(repo, "checkout", "--quiet", "main")
    git(repo, "merge", "--quiet", "--no-ff", "feature-7", "-m", message)
    git(repo, "push", "--quiet", "origin", "main")
    stopped = ci.stop(merge_request, "challenger")
    assert stopped.result == "success" and "was merged" in stopped.log, stopped.log
    state = server.state("merge request 7 merged, its stop job run")
    assert "pr-7" in state, _shown("the stop job of a merged merge request", state)

    asked: list[str] = []

    def approve(job: str, environment: str) -> bool:
        waiting = server.state("the main pipeline, before the manual production job")
        shown = _shown("the main pipeline's integrate job", waiting)
        assert "pr-7" not in waiting, shown
        assert waiting["integration"]["components"] == {MODEL: "v1", APP: "v1"}, shown
        assert waiting["uat"]["components"] == {MODEL: "v1", APP: "v1"}, shown
        assert waiting["production"]["components"] == {MODEL: "v1"}, shown
        asked.append(f"{job}:{environment}")
        return True

    main = {
        **common,
        "CI_PIPELINE_SOURCE": "push",
        "CI_COMMIT_BRANCH": "main",
        "CI_COMMIT_MESSAGE": message,
    }
    merged = ci.play(main, approve)
    assert job_results(merged) == {"integrate": "success", "production": "success"}, job_logs(
        merged
    )
    assert asked == ["production:production"]
    state = server.state("the main pipeline, production run")
    assert {e: v["components"] for e, v in state.items()} == {
        e: {MODEL: "v1", APP: "v1"} for e in ("integration", "uat", "production")
    }, _shown("the main pipeline", state)
    _signed(server, "v1")
    _no_secret(server, key_pair, job_logs(opened), stopped.log, job_logs(merged))
