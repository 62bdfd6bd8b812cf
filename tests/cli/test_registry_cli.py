"""Registry commands, the same scenarios run two ways: on the embedded registry, and through
a live registry server (SHIPYARD_URL) over HTTP; each on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from ..serving import _pipelines
from .test_cli import run_cli

MODEL = "tumour_triage"


@dataclass
class Shipyard:
    """The ``shipyard`` command, run in-process, in one mode (embedded or http)."""

    capsys: pytest.CaptureFixture[str]
    mode: str
    actor: str

    def __call__(self, *args: str) -> tuple[int, str, str]:
        """(exit code, stdout, stderr)."""
        return run_cli(self.capsys, *args)

    def ok(self, *args: str) -> str:
        """stdout of a command that must succeed."""
        code, out, err = self(*args)
        assert code == 0, f"shipyard {' '.join(args)} -> {code}: {err}"
        return out

    def json(self, *args: str) -> Any:
        """The parsed ``--json`` output of a command that must succeed."""
        return json.loads(self.ok(*args, "--json"))

    def fails(self, code: int, *args: str) -> str:
        """The one error line of a command that must fail with ``code``."""
        got, out, err = self(*args)
        assert got == code, f"shipyard {' '.join(args)} -> {got} (wanted {code}): {out}{err}"
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        return lines[0]


@pytest.fixture(params=["embedded", "http"])
def shipyard(
    request: pytest.FixtureRequest,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    key_pair: tuple[Path, Path],
) -> Shipyard:
    """The CLI on the embedded registry, or on a live server (SHIPYARD_URL + SHIPYARD_TOKEN).

    Either way the registry trusts the key that signed the test bundles (``key trust``).
    """
    made = _shipyard(request, database_url, tmp_path, monkeypatch, capsys)
    assert "trusted key release" in made.ok("key", "trust", str(key_pair[1]), "--name", "release")
    return made


def _shipyard(
    request: pytest.FixtureRequest,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Shipyard:
    for name in ("SHIPYARD_PROJECT", "SHIPYARD_PUBLIC_KEY", "SHIPYARD_URL", "SHIPYARD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHIPYARD_USER", "alice")
    if request.param == "embedded":
        monkeypatch.setenv("SHIPYARD_DATABASE_URL", database_url)
        monkeypatch.setenv("SHIPYARD_ARTIFACT_STORE", str(tmp_path / "artifacts"))
        return Shipyard(capsys, "embedded", actor="alice")
    server = request.getfixturevalue("api_server")
    # Nothing embedded to fall back on: an empty home and no database URL.
    monkeypatch.delenv("SHIPYARD_DATABASE_URL", raising=False)
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "empty-home"))
    monkeypatch.setenv("SHIPYARD_URL", server.url)
    monkeypatch.setenv("SHIPYARD_TOKEN", server.token("admin", name="ci-admin"))
    return Shipyard(capsys, "http", actor="ci-admin")


def _components(status: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["name"], c["tag"]) for c in status["components"]]


def _project_with_v1(shipyard: Shipyard, bundle: Path) -> None:
    """Project demo, model v1 registered, tagged and added to integration."""
    shipyard.ok("project", "create", "demo")
    version = shipyard.json("model", "register", str(bundle), "--project", "demo")
    assert (version["model"], version["version_id"], version["tag"]) == (MODEL, 1, None)
    shipyard.ok("model", "tag", MODEL, "1", "--project", "demo")
    shipyard.ok("component", "add", MODEL, "--env", "integration", "--project", "demo")


def test_the_promotion_chain(shipyard: Shipyard, bundles: list[Path], monkeypatch) -> None:
    _project_with_v1(shipyard, bundles[0])
    monkeypatch.setenv("SHIPYARD_PROJECT", "demo")  # the project from here on
    challenger = shipyard.json("env", "challenger", "create", "pr-1", "--from", "uat")
    assert (challenger["challenger_of"], challenger["promotes_to"]) == ("uat", "uat")

    shipyard.ok("env", "promote", "integration", "--yes")
    out = shipyard.ok("env", "promote", "uat", "--yes")
    assert "production revision 2" in out and f"{MODEL} v1" in out
    for env in ("integration", "uat", "production"):
        status = shipyard.json("env", "status", env)
        assert _components(status) == [(MODEL, "v1")], env
    assert "tumour_triage 1.0.0" in shipyard.ok("env", "status", "production")

    # A second version goes the same way; production then rolls back to the first.
    second = shipyard.json("model", "register", str(bundles[1]))
    assert (second["version_id"], second["bundle_version"]) == (2, "1.1.0")
    assert shipyard.json("model", "tag", MODEL, "2")["tag"] == "v2"
    shipyard.ok("component", "add", MODEL, "--env", "integration")  # the default: newest tag
    shipyard.ok("env", "promote", "integration", "--yes")
    promoted = shipyard.json("env", "promote", "uat", "--yes")
    assert (promoted["environment"], promoted["number"]) == ("production", 3)
    assert _components(shipyard.json("env", "status", "production")) == [(MODEL, "v2")]

    diff = shipyard.json("env", "diff", "production@2", "production")
    assert [(c["name"], c["a_version"], c["b_version"]) for c in diff["components"]] == [
        (MODEL, "v1", "v2")
    ]
    rolled = shipyard.json("env", "rollback", "production", "--yes")
    assert (rolled["number"], rolled["reason"]) == (4, "rollback to revision 2")
    assert _components(rolled) == [(MODEL, "v1")]
    assert shipyard.json("env", "diff", "production@2", "production")["same"] is True
    assert "production@2 and production hold the same" in shipyard.ok(
        "env", "diff", "production@2", "production"
    )

    history = shipyard.json("env", "history", "production")
    assert [r["number"] for r in history] == [4, 3, 2, 1]
    assert {r["actor"] for r in history[:-1]} == {shipyard.actor}
    assert "rollback to" in shipyard.ok("env", "history", "production")
    versions = shipyard.json("model", "versions", MODEL)
    assert [(v["tag"], v["is_default"]) for v in versions] == [("v1", False), ("v2", True)]
    shipyard.ok("model", "set-default", MODEL, "v1")
    assert shipyard.json("model", "list")[0]["default_version"] == "v1"

    events = shipyard.json("audit", "list", "--limit", "3")
    assert [e["action"] for e in events] == [
        "model.set_default",
        "environment.rollback",
        "environment.promote",
    ]
    assert {e["actor"] for e in events} == {shipyard.actor}
    assert "audit log OK" in shipyard.ok("audit", "verify")


def test_promote_and_rollback_list_the_change_and_dry_runs_change_nothing(
    shipyard: Shipyard, bundles: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _project_with_v1(shipyard, bundles[0])
    monkeypatch.setenv("SHIPYARD_PROJECT", "demo")
    out = shipyard.ok("env", "promote", "integration", "--dry-run")
    assert out.splitlines() == ["promoting integration would change uat:", f"  add     {MODEL} v1"]
    assert shipyard.json("env", "status", "uat")["revision"] == 1  # nothing happened
    out = shipyard.ok("env", "promote", "integration", "--yes")
    assert f"  add     {MODEL} v1" in out and "promoted integration -> uat revision 2" in out

    plan = shipyard.json("env", "rollback", "uat", "--dry-run")
    assert [(c["name"], c["change"], c["b_version"]) for c in plan["components"]] == [
        (MODEL, "removed", "v1")
    ]
    assert shipyard.json("env", "status", "uat")["revision"] == 2
    line = shipyard.fails(1, "env", "rollback", "uat", "--yes")
    assert f"would remove every component ({MODEL})" in line and "--allow-empty" in line
    emptied = shipyard.json("env", "rollback", "uat", "--yes", "--allow-empty")
    assert (emptied["number"], emptied["components"]) == (3, [])
    # The diff reads as the change: promoting integration would add the model back.
    [change] = shipyard.json("env", "diff", "integration", "uat")["components"]
    assert (change["change"], change["a_version"], change["b_version"]) == ("added", "v1", None)


def test_promoting_a_challenger_from_an_older_state_says_it_removes_what_it_lacks(
    shipyard: Shipyard,
    bundles: list[Path],
    key_pair: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Issue 12: uat gained a model after pr-1 was cloned from it; promoting pr-1 removed
    # that model silently, while env diff pr-1 uat called it "added".
    _project_with_v1(shipyard, bundles[0])
    monkeypatch.setenv("SHIPYARD_PROJECT", "demo")
    shipyard.ok("env", "promote", "integration", "--yes")
    shipyard.ok("env", "challenger", "create", "pr-1", "--from", "uat")
    other = _pipelines.export(
        _pipelines.frame_pipeline(),
        tmp_path,
        {"frame": {"a": [1.0], "b": [2.0], "c": [3.0]}},
        key_pair[0],
    )
    shipyard.ok("model", "register", str(other))
    shipyard.ok("model", "tag", "frame_total", "1")
    shipyard.ok("component", "add", "frame_total", "--env", "uat")

    [change] = shipyard.json("env", "diff", "pr-1", "uat")["components"]
    assert (change["name"], change["change"], change["b_version"]) == (
        "frame_total",
        "removed",
        "v1",
    )
    planned = shipyard.ok("env", "promote", "pr-1", "--dry-run")
    assert planned.splitlines() == ["promoting pr-1 would change uat:", "  remove  frame_total v1"]
    assert {name for name, _ in _components(shipyard.json("env", "status", "uat"))} == {
        MODEL,
        "frame_total",
    }
    out = shipyard.ok("env", "promote", "pr-1", "--yes")
    said = out.splitlines()
    assert "  remove  frame_total v1" in said
    assert said.index("  remove  frame_total v1") < next(
        i for i, line in enumerate(said) if line.startswith("promoted pr-1 -> uat")
    )  # listed before it is done
    assert _components(shipyard.json("env", "status", "uat")) == [(MODEL, "v1")]


def test_four_eyes_a_promotion_waits_for_a_second_person(
    shipyard: Shipyard,
    bundles: list[Path],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    _project_with_v1(shipyard, bundles[0])
    monkeypatch.setenv("SHIPYARD_PROJECT", "demo")
    shipyard.ok("env", "promote", "integration", "--yes")
    shipyard.ok("env", "promote", "uat", "--yes")
    shipyard.ok("env", "settings", "set", "approvals_required", "1", "--env", "production")
    shipyard.json("model", "register", str(bundles[1]))
    shipyard.ok("model", "tag", MODEL, "2")
    shipyard.ok("component", "add", MODEL, "--env", "integration")
    shipyard.ok("env", "promote", "integration", "--yes")

    out = shipyard.ok("env", "promote", "uat", "--yes")
    assert "pending: environment 'production' needs 1 approval for every change" in out
    [pending] = shipyard.json("env", "changes", "--state", "pending")
    assert (pending["action"], pending["source"], pending["approvals"]) == ("promote", "uat", [])
    line = shipyard.fails(1, "env", "approve", str(pending["id"]))
    assert f"asked for change request {pending['id']} and cannot approve it" in line
    assert _components(shipyard.json("env", "status", "production")) == [(MODEL, "v1")]

    if shipyard.mode == "embedded":  # a second person: another user, or another token
        monkeypatch.setenv("SHIPYARD_USER", "bob")
    else:
        token = request.getfixturevalue("api_server").token("deployer", name="bob")
        monkeypatch.setenv("SHIPYARD_TOKEN", token)
    out = shipyard.ok("env", "approve", str(pending["id"]))
    assert out.startswith(f"applied: change request {pending['id']} (promote uat@")
    assert _components(shipyard.json("env", "status", "production")) == [(MODEL, "v2")]
    assert "approved by bob" in shipyard.json("env", "history", "production")[0]["reason"]


def test_a_model_card_comes_with_the_bundle_and_is_completed_at_registration(
    shipyard: Shipyard,
    demo_pipeline: Any,
    demo_reference: Any,
    key_pair: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shipyard as sy

    card = {
        "owner": "credit-risk team",
        "intended_use": "triage of biopsy reports",
        "validation_metrics": {"roc_auc": 0.97},
        "limitations": ["not for patients under 18"],
    }
    carded = sy.Pipeline(
        demo_pipeline.name,
        "3.0.0",
        inputs=demo_pipeline.inputs,
        nodes=demo_pipeline.nodes.values(),
        outputs=demo_pipeline.outputs,
        model_card=card,
    )
    bundle = carded.export(tmp_path, reference=demo_reference, sign_key=key_pair[0])
    inspected = shipyard.ok("artifact", "inspect", str(bundle))
    assert "model card:" in inspected and "owner: credit-risk team" in inspected

    monkeypatch.setenv("SHIPYARD_PROJECT", "demo")
    shipyard.ok("project", "create", "demo")
    extra = tmp_path / "approval.yaml"
    extra.write_text("approvals: [MRC-2026-114]\n")
    version = shipyard.json("model", "register", str(bundle), "--model-card", str(extra))
    assert version["model_card"] == {**card, "approvals": ["MRC-2026-114"]}
    shown = shipyard.ok("model", "card", MODEL, "--version", str(version["version_id"]))
    assert "validation_metrics: roc_auc = 0.97" in shown and "approvals: MRC-2026-114" in shown

    extra.write_text("owner: 42\n")
    line = shipyard.fails(2, "model", "register", str(bundle), "--model-card", str(extra))
    assert "the model card given: owner must be text" in line


def test_refusals_are_one_line_with_an_exit_code(shipyard: Shipyard, bundles: list[Path]) -> None:
    line = shipyard.fails(1, "env", "status", "production", "--project", "nope")
    assert "project 'nope' does not exist" in line
    _project_with_v1(shipyard, bundles[0])

    # Production-changing commands refuse without --yes when no one can be asked.
    line = shipyard.fails(2, "env", "promote", "integration", "--project", "demo")
    assert "without --yes" in line
    assert shipyard.json("env", "status", "uat", "--project", "demo")["components"] == []
    shipyard.fails(2, "env", "rollback", "integration", "--project", "demo")
    shipyard.fails(2, "component", "remove", MODEL, "--env", "integration", "--project", "demo")
    shipyard.fails(2, "project", "delete", "demo")
    # A challenger is anyone's to change: no confirmation.
    shipyard.ok("env", "challenger", "create", "try", "--from", "integration", "-p", "demo")
    shipyard.ok("component", "remove", MODEL, "--env", "try", "--project", "demo")
    shipyard.ok("env", "rollback", "try", "--project", "demo")

    line = shipyard.fails(
        2, "env", "settings", "set", "replicas", "0", "--project", "demo", "--env", "uat"
    )
    assert line == "error: setting 'replicas': 0 is below 1"
    line = shipyard.fails(1, "model", "tag", MODEL, "1", "--project", "demo")
    assert "already tagged v1" in line
    line = shipyard.fails(1, "env", "delete", "uat", "--project", "demo", "--yes")
    assert "integration (promotes to it)" in line
    line = shipyard.fails(1, "env", "promote", "production", "--project", "demo", "--yes")
    assert "does not promote to another environment" in line
    line = shipyard.fails(1, "model", "register", "missing.tar.gz", "--project", "demo")
    assert "missing.tar.gz" in line


def test_settings_show_where_a_value_comes_from(shipyard: Shipyard, bundles: list[Path]) -> None:
    _project_with_v1(shipyard, bundles[0])
    shipyard.ok("worker-group", "create", "gpu", "--machine-size", "gpu-1", "--count", "2")
    assert [g["name"] for g in shipyard.json("worker-group", "list")] == ["gpu"]
    shipyard.ok("env", "settings", "set", "replicas", "3", "--project", "demo")
    at_env = ("--project", "demo", "--env", "integration")
    got = shipyard.json("env", "settings", "get", "replicas", *at_env)
    assert (got["value"], got["level"], got["inherited"]) == (3, "project", True)
    assert "replicas = 3 (from project, inherited)" in shipyard.ok(
        "env", "settings", "get", "replicas", *at_env
    )
    shipyard.ok("env", "settings", "set", "worker_group", "gpu", *at_env)
    every = {s["key"]: s for s in shipyard.json("env", "settings", "get", *at_env)}
    assert (every["worker_group"]["value"], every["worker_group"]["level"]) == (
        "gpu",
        "environment",
    )
    line = shipyard.fails(1, "worker-group", "delete", "gpu")
    assert "environment demo/integration" in line
    now = shipyard.json("env", "settings", "inherit", "worker_group", *at_env)
    assert (now["value"], now["level"]) == (None, "default")
    shipyard.ok("worker-group", "delete", "gpu")


def test_configs_round_trip(shipyard: Shipyard, bundles: list[Path], tmp_path: Path) -> None:
    _project_with_v1(shipyard, bundles[0])
    at = ("--env", "integration", "--project", "demo")
    shipyard.ok("env", "config", "set", "reports=s3://reports/int", "batch_size=500", *at)
    assert shipyard.json("env", "config", "get", *at) == {
        "reports": "s3://reports/int",
        "batch_size": 500,
    }
    config_file = tmp_path / "config.yaml"
    config_file.write_text("reports: s3://reports/other\n")
    shipyard.ok("env", "config", "set", "--file", str(config_file), *at)
    assert shipyard.json("env", "config", "get", *at) == {"reports": "s3://reports/other"}

    saved = tmp_path / "integration.yaml"
    shipyard.ok("component-config", "save", str(saved), *at)
    assert f"name: {MODEL}" in saved.read_text()
    shipyard.ok("component", "remove", MODEL, *at, "--yes")
    assert shipyard.json("component", "list", *at) == []
    applied = shipyard.json("component-config", "apply", str(saved), *at, "--yes")
    assert _components(applied) == [(MODEL, "v1")]
    saved.write_text("components:\n- name: nothing_here\n  version: v9\n")
    line = shipyard.fails(2, "component-config", "apply", str(saved), *at, "--yes")
    assert "nothing changed" in line and "nothing_here" in line
    assert _components(shipyard.json("env", "status", "integration", "--project", "demo")) == [
        (MODEL, "v1")
    ]


def test_app_config_files_are_read_strictly_and_a_no_op_says_unchanged(
    shipyard: Shipyard, bundles: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_PROJECT", "demo")
    shipyard.ok("project", "create", "demo")
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text("threshold: 0.4\nteam: risk\n")
    version = shipyard.json("model", "register", str(bundles[0]), "--app-config", str(defaults))
    assert version["app_config"] == {"threshold": 0.4, "team": "risk"}
    again = shipyard.ok("model", "register", str(bundles[0]))
    assert again.startswith("unchanged: this bundle is already registered, tumour_triage")
    shipyard.ok("model", "tag", MODEL, "1")
    at = ("--env", "integration", "--project", "demo")

    override = tmp_path / "override.json"
    override.write_text('{"threshold": 0.6}')
    added = shipyard.json("component", "add", MODEL, "--app-config", str(override), *at)
    assert [c["app_config"] for c in added["components"]] == [{"threshold": 0.6}]
    again = shipyard.ok("component", "add", MODEL, "--app-config", str(override), *at)
    assert again.startswith(
        f"unchanged: integration already holds that; still revision {added['number']}"
    )

    saved = tmp_path / "integration.yaml"
    shipyard.ok("component-config", "save", str(saved), *at)
    out = shipyard.ok("component-config", "apply", str(saved), *at, "--yes")
    assert out.startswith("unchanged: integration already holds that")
    assert shipyard.json("env", "status", "integration")["revision"] == added["number"]

    twice = tmp_path / "twice.yaml"
    twice.write_text("threshold: 0.4\nteam: risk\nthreshold: 0.9\n")
    line = shipyard.fails(2, "component", "add", MODEL, "--app-config", str(twice), *at)
    assert (
        f"app config '{twice}'" in line and "key 'threshold' appears twice (lines 1 and 3)" in line
    )
    line = shipyard.fails(2, "component", "add", MODEL, "--app-config", str(tmp_path / "none"), *at)
    assert "cannot read app config" in line
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    line = shipyard.fails(2, "component", "add", MODEL, "--app-config", str(listed), *at)
    assert "must hold a mapping, not list" in line

    saved.write_text(saved.read_text() + f"- name: {MODEL}\n  version: v1\n  version: v1\n")
    line = shipyard.fails(2, "component-config", "apply", str(saved), *at, "--yes")
    assert "key 'version' appears twice" in line


def test_audit_verify_names_the_event_edited_in_the_database(
    shipyard: Shipyard, bundles: list[Path], database_url: str
) -> None:
    _project_with_v1(shipyard, bundles[0])
    assert shipyard.json("audit", "verify")["ok"] is True
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE audit_events SET actor = 'mallory' WHERE id = 2"))
    engine.dispose()
    line = shipyard.fails(1, "audit", "verify")
    assert line.startswith("error: audit log broken at event 2: ")
    code, out, _ = shipyard("audit", "verify", "--json")
    report = json.loads(out)
    assert code == 1 and (report["ok"], report["broken_event"]) == (False, 2)


def test_tokens_are_shown_once_and_listed_without_their_secret(shipyard: Shipyard) -> None:
    made = shipyard.json("token", "create", "ci", "--role", "deployer")
    assert made["token"].startswith(f"shy_{made['id']}_") and made["role"] == "deployer"
    listed = shipyard.json("token", "list")
    assert made["token"] not in json.dumps(listed)
    assert shipyard.json("token", "revoke", str(made["id"]))["revoked"] is True
    assert "role 'root' is not one of" in shipyard.fails(
        2, "token", "create", "x", "--role", "root"
    )


def test_shipyard_server_serves_the_embedded_registry(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, SHIPYARD_HOME=str(tmp_path / "home"), SHIPYARD_USER="ops")
    env.pop("SHIPYARD_DATABASE_URL", None)
    command = Path(sys.executable).with_name("shipyard")
    server = subprocess.Popen(
        [str(command), "server", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()[0]
                assert time.monotonic() < deadline, "shipyard server did not start"
                time.sleep(0.2)
        assert health.json() == {"status": "ok"}
        listed = httpx.get(f"http://127.0.0.1:{port}/api/v1/projects", timeout=5)
        assert listed.status_code == 401
    finally:
        server.terminate()
        output = server.communicate(timeout=15)[0]
    assert "shipyard token create admin --role admin" in output
