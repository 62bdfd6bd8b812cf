"""The rendered workflows, played: a pull request, its merge (with the approval before
production) and a close, against a real ``shipyard server`` on loopback.

The steps come from the files ``shipyard ci render`` writes (tests/ci/_play.py plays
them as GitHub and GitLab would), so a broken workflow fails here. The runner's only
credentials are the CI secrets: the server's URL and a deployer token.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.ci import CIOptions, render_ci

from ._play import (
    GitHubWorkflow,
    GitLabFile,
    job_logs,
    job_results,
    pull_request,
    refuse_approval,
    runner_environment,
)
from ._server import MODEL, Server, git, registry_server

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture()
def server(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    key_pair: tuple[Path, Path],
    bundles: list[Path],
) -> Iterator[Server]:
    """Project demo with v1 of the model on every environment, served by ``shipyard server``."""
    with registry_server(tmp_path, monkeypatch, key_pair, bundles[0]) as running:
        yield running


def _repository(tmp_path: Path, bundle: Path, provider: str) -> Path:
    """A clone of a model repository: its export step (``make bundle``) writes the
    branch's bundle, and the rendered CI files; ``origin`` is a bare repository here."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "--quiet", "--bare", "-b", "main", str(origin))
    repo = tmp_path / "repo"
    git(tmp_path, "clone", "--quiet", str(origin), str(repo))
    (repo / "models").mkdir()
    shutil.copy2(bundle, repo / "models" / bundle.name)
    (repo / "Makefile").write_text(
        'bundle:\n\tmkdir -p "$(SHIPYARD_BUNDLE_DIR)"\n'
        '\tcp models/*.tar.gz "$(SHIPYARD_BUNDLE_DIR)/"\n'
    )
    render_ci(CIOptions(provider, project="demo"), repo)
    git(repo, "checkout", "--quiet", "-B", "main")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "The model and its CI")
    git(repo, "push", "--quiet", "origin", "main")
    return repo


def _no_secret(server: Server, *texts: str) -> None:
    for text in texts:
        assert server.deployer not in text, "a step printed the deployer token"


def _challenger_checks(server: Server, state: dict[str, Any], name: str) -> None:
    assert state[name]["challenger_of"] == "integration"
    assert state[name]["components"] == {MODEL: "candidate 2"}
    assert state["integration"]["components"] == {MODEL: "v1"}
    with server.client() as registry:
        keys = registry.list_api_keys("demo", name)
    assert keys and all(k["revoked"] for k in keys), "the smoke test's key outlived it"


def test_github_workflow_takes_a_pull_request_through_a_challenger_to_production(
    server: Server, tmp_path: Path, bundles: list[Path]
) -> None:
    repo = _repository(tmp_path, bundles[1], "github")
    workflow = GitHubWorkflow(
        repo / ".github/workflows/shipyard.yml",
        repo,
        runner_environment(tmp_path / "runner"),
        secrets={"SHIPYARD_URL": server.url, "SHIPYARD_TOKEN": server.deployer},
        artifacts=tmp_path / "artifacts",
    )

    # Pull request 7 opened: challenger pr-7 holds the branch's model, smoke-tested.
    opened = workflow.play("pull_request", pull_request("opened", 7), refuse_approval)
    assert job_results(opened) == {
        "challenger": "success",
        "integrate": "skipped",
        "production": "skipped",
        "close": "skipped",
    }, job_logs(opened)
    state = server.state()
    _challenger_checks(server, state, "pr-7")
    assert "smoke test passed: demo/pr-7" in opened["challenger"].log
    saved = (tmp_path / "artifacts/component-config-pr-7/component-config.yaml").read_text()
    assert f"name: {MODEL}" in saved and "version: 2" in saved

    # Merged: integration and uat take the new version at once; production waits for a
    # reviewer, and takes it after the approval.
    asked: list[str] = []

    def approve(job: str, environment: str) -> bool:
        waiting = server.state()
        assert waiting["integration"]["components"] == {MODEL: "v2"}
        assert waiting["uat"]["components"] == {MODEL: "v2"}
        assert waiting["production"]["components"] == {MODEL: "v1"}
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
    state = server.state()
    assert {e: state[e]["components"] for e in state} == {
        "integration": {MODEL: "v2"},
        "uat": {MODEL: "v2"},
        "production": {MODEL: "v2"},
    }, "the challenger is gone and the chain holds v2"
    assert "production revision" in merged["production"].log

    # Pull request 8, closed without merging: its challenger goes, nothing else changes.
    with server.client(server.deployer) as registry:
        registry.create_challenger("demo", "pr-8", "integration")
    before = server.state()
    closed = workflow.play("pull_request", pull_request("closed", 8), refuse_approval)
    assert job_results(closed) == {
        "challenger": "skipped",
        "integrate": "skipped",
        "production": "skipped",
        "close": "success",
    }, job_logs(closed)
    after = server.state()
    assert "pr-8" in before and "pr-8" not in after
    assert after == {e: v for e, v in before.items() if e != "pr-8"}
    _no_secret(server, job_logs(opened), job_logs(merged), job_logs(closed))


def test_gitlab_pipelines_take_a_merge_request_through_a_challenger_to_production(
    server: Server, tmp_path: Path, bundles: list[Path]
) -> None:
    repo = _repository(tmp_path, bundles[1], "gitlab")
    ci = GitLabFile(
        repo / ".gitlab-ci.yml",
        repo,
        runner_environment(tmp_path / "runner"),
        project_variables={"SHIPYARD_URL": server.url, "SHIPYARD_TOKEN": server.deployer},
        artifacts=tmp_path / "artifacts",
    )
    common = {"CI_DEFAULT_BRANCH": "main", "CI_PROJECT_PATH": "acme/models"}
    merge_request = {
        **common,
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_IID": "7",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature-7",
        "CI_COMMIT_REF_NAME": "feature-7",
    }
    # A branch push makes no pipeline: merge request pipelines do the work.
    assert (
        ci.play({**common, "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "x"}, refuse_approval)
        == {}
    )

    opened = ci.play(merge_request, refuse_approval)
    assert job_results(opened) == {"challenger": "success", "close-challenger": "manual"}, job_logs(
        opened
    )
    _challenger_checks(server, server.state(), "pr-7")
    assert "version: 2" in (tmp_path / "artifacts/challenger/component-config.yaml").read_text()

    # The merge: GitLab may run the stop job before the main branch's pipeline; the stop
    # job leaves a merged challenger to that pipeline.
    message = "Merge branch 'feature-7' into 'main'\n\nNew model\n\nSee merge request acme/models!7"
    git(repo, "commit", "--quiet", "--allow-empty", "-m", message)
    git(repo, "push", "--quiet", "origin", "main")
    stopped = ci.stop(merge_request, "challenger")
    assert stopped.result == "success" and "was merged" in stopped.log, stopped.log
    assert "pr-7" in server.state()

    asked: list[str] = []

    def approve(job: str, environment: str) -> bool:
        waiting = server.state()
        assert "pr-7" not in waiting
        assert waiting["uat"]["components"] == {MODEL: "v2"}
        assert waiting["production"]["components"] == {MODEL: "v1"}
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
    state = server.state()
    assert {e: state[e]["components"] for e in state} == {
        "integration": {MODEL: "v2"},
        "uat": {MODEL: "v2"},
        "production": {MODEL: "v2"},
    }

    # Merge request 8 closed without merging: its stop job deletes its challenger.
    with server.client(server.deployer) as registry:
        registry.create_challenger("demo", "pr-8", "integration")
    closed = ci.stop({**merge_request, "CI_MERGE_REQUEST_IID": "8"}, "challenger")
    assert closed.result == "success", closed.log
    assert "pr-8" not in server.state()
    _no_secret(server, job_logs(opened), stopped.log, job_logs(merged), closed.log)
