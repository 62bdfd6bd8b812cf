"""The rendered workflows, played: a pull request, its merge (with the approval before
production) and a close, against a real ``shipyard server`` on loopback.

The steps come from the files ``shipyard ci render`` writes (tests/ci/_play.py plays
them as GitHub and GitLab would), so a broken workflow fails here. The runner's only
credentials are the CI secrets: the server's URL and a deployer token.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.ci import CIOptions, render_ci
from shipyard.registry import Registry
from shipyard.registry_http import RegistryClient
from tests.serving._hold import wait_until

from ._play import GitHubWorkflow, GitLabFile, JobRun, runner_environment

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MODEL = "tumour_triage"
SHIPYARD = str(Path(sys.executable).with_name("shipyard"))


@dataclass
class Server:
    """A ``shipyard server`` process on loopback and the tokens made for it."""

    url: str
    deployer: str
    viewer: str

    def client(self, token: str | None = None) -> RegistryClient:
        return RegistryClient(self.url, token or self.viewer)

    def state(self) -> dict[str, Any]:
        """Each environment of project demo: what it holds (model -> tag or candidate id)."""
        with self.client() as registry:
            found = {}
            for env in registry.list_environments("demo"):
                status = registry.status("demo", env["name"])
                found[env["name"]] = {
                    "revision": status["revision"],
                    "challenger_of": env["challenger_of"],
                    "components": {
                        c["name"]: c["tag"] or f"candidate {c['version_id']}"
                        for c in status["components"]
                    },
                }
        print(json.dumps(found))  # the state after each played step, for -s runs
        return found


@pytest.fixture()
def server(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    key_pair: tuple[Path, Path],
    bundles: list[Path],
) -> Iterator[Server]:
    """Project demo with v1 of the model on every environment, served by ``shipyard server``."""
    home = tmp_path / "registry"
    for name in ("SHIPYARD_URL", "SHIPYARD_TOKEN", "SHIPYARD_DATABASE_URL", "SHIPYARD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    monkeypatch.setenv("SHIPYARD_USER", "ops")
    with Registry.open() as registry:
        registry.create_project("demo", ["integration", "uat", "production"])
        registry.trust_key("release", key_pair[1].read_text())
        registry.register_model("demo", bundles[0])
        registry.tag("demo", MODEL, 1)
        registry.add_component("demo", "integration", MODEL)
        registry.promote("demo", "integration")
        registry.promote("demo", "uat")
        deployer = registry.create_token("ci", "deployer")[1]
        viewer = registry.create_token("checks", "viewer")[1]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [SHIPYARD, "server", "--host", "127.0.0.1", "--port", str(port)],
        env=dict(os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, "shipyard server started", timeout=60)
        yield Server(url, deployer, viewer)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "dev",
            "GIT_AUTHOR_EMAIL": "dev@example.org",
            "GIT_COMMITTER_NAME": "dev",
            "GIT_COMMITTER_EMAIL": "dev@example.org",
        },
    )
    return done.stdout.strip()


def _repository(tmp_path: Path, bundle: Path, provider: str) -> Path:
    """A clone of a model repository: its export step (``make bundle``) writes the
    branch's bundle, and the rendered CI files; ``origin`` is a bare repository here."""
    origin = tmp_path / "origin.git"
    _git(tmp_path, "init", "--quiet", "--bare", "-b", "main", str(origin))
    repo = tmp_path / "repo"
    _git(tmp_path, "clone", "--quiet", str(origin), str(repo))
    (repo / "models").mkdir()
    shutil.copy2(bundle, repo / "models" / bundle.name)
    (repo / "Makefile").write_text(
        'bundle:\n\tmkdir -p "$(SHIPYARD_BUNDLE_DIR)"\n'
        '\tcp models/*.tar.gz "$(SHIPYARD_BUNDLE_DIR)/"\n'
    )
    render_ci(CIOptions(provider, project="demo"), repo)
    _git(repo, "checkout", "--quiet", "-B", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "--quiet", "-m", "The model and its CI")
    _git(repo, "push", "--quiet", "origin", "main")
    return repo


def _results(runs: dict[str, JobRun]) -> dict[str, str]:
    return {name: run.result for name, run in runs.items()}


def _logs(runs: dict[str, JobRun]) -> str:
    return "".join(run.log for run in runs.values())


def _no_secret(server: Server, *texts: str) -> None:
    for text in texts:
        assert server.deployer not in text, "a step printed the deployer token"


def _payload(action: str, number: int, merged: bool = False) -> dict[str, Any]:
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "merged": merged,
            "head": {"ref": f"feature-{number}"},
            "base": {"ref": "main"},
        },
    }


def _refuse(job: str, environment: str) -> bool:
    raise AssertionError(f"{job} asked for approval ({environment}) where none is due")


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
    opened = workflow.play("pull_request", _payload("opened", 7), _refuse)
    assert _results(opened) == {
        "challenger": "success",
        "integrate": "skipped",
        "production": "skipped",
        "close": "skipped",
    }, _logs(opened)
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

    merged = workflow.play("pull_request", _payload("closed", 7, merged=True), approve)
    assert _results(merged) == {
        "challenger": "skipped",
        "integrate": "success",
        "production": "success",
        "close": "success",
    }, _logs(merged)
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
    closed = workflow.play("pull_request", _payload("closed", 8), _refuse)
    assert _results(closed) == {
        "challenger": "skipped",
        "integrate": "skipped",
        "production": "skipped",
        "close": "success",
    }, _logs(closed)
    after = server.state()
    assert "pr-8" in before and "pr-8" not in after
    assert after == {e: v for e, v in before.items() if e != "pr-8"}
    _no_secret(server, _logs(opened), _logs(merged), _logs(closed))


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
    assert ci.play({**common, "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "x"}, _refuse) == {}

    opened = ci.play(merge_request, _refuse)
    assert _results(opened) == {"challenger": "success", "close-challenger": "manual"}, _logs(
        opened
    )
    _challenger_checks(server, server.state(), "pr-7")
    assert "version: 2" in (tmp_path / "artifacts/challenger/component-config.yaml").read_text()

    # The merge: GitLab may run the stop job before the main branch's pipeline; the stop
    # job leaves a merged challenger to that pipeline.
    message = "Merge branch 'feature-7' into 'main'\n\nNew model\n\nSee merge request acme/models!7"
    _git(repo, "commit", "--quiet", "--allow-empty", "-m", message)
    _git(repo, "push", "--quiet", "origin", "main")
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
    assert _results(merged) == {"integrate": "success", "production": "success"}, _logs(merged)
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
    _no_secret(server, _logs(opened), stopped.log, _logs(merged), closed.log)
