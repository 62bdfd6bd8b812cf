"""The working context: ``config init``, ``project select`` and ``env select`` keep a folder's
project and environment in ``.shipyard.toml``; flags and environment variables still win."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_cli import run_cli


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> Path:
    """An embedded registry with projects demo and other, and an empty folder as cwd."""
    for name in ("SHIPYARD_PROJECT", "SHIPYARD_ENV", "SHIPYARD_URL", "SHIPYARD_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHIPYARD_USER", "alice")
    folder = tmp_path / "repo"
    folder.mkdir()
    monkeypatch.chdir(folder)
    for project, chain in (("demo", "integration,uat,production"), ("other", "dev,prod")):
        code, _, err = run_cli(capsys, "project", "create", project, "--environments", chain)
        assert code == 0, err
    return folder


def _ok(capsys, *args: str) -> tuple[str, str]:
    code, out, err = run_cli(capsys, *args)
    assert code == 0, f"shipyard {' '.join(args)} -> {code}: {err}"
    return out, err


def _fails(capsys, code: int, *args: str) -> str:
    got, out, err = run_cli(capsys, *args)
    assert got == code, f"shipyard {' '.join(args)} -> {got}: {out}{err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_commands_below_the_folder_use_its_project_and_environment(
    workdir: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _ = _ok(capsys, "config", "init", "--project", "demo", "--env", "uat")
    assert f"wrote {workdir / '.shipyard.toml'}: project demo, environment uat" in out
    deeper = workdir / "notebooks" / "deep"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)

    out, err = _ok(capsys, "env", "status", "integration")
    assert "integration" in out
    out, err = _ok(capsys, "component", "list")
    assert out.strip() == "(none)"
    assert err.strip() == (
        "acted on project demo, environment uat "
        f"(project and environment from {workdir / '.shipyard.toml'})"
    )


def test_flags_then_environment_variables_win_over_the_file(
    workdir: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ok(capsys, "config", "init", "--project", "demo", "--env", "uat")
    monkeypatch.setenv("SHIPYARD_ENV", "integration")
    _, err = _ok(capsys, "component", "list")
    assert err.strip() == (
        f"acted on project demo, environment integration "
        f"(project from {workdir / '.shipyard.toml'})"
    )
    monkeypatch.setenv("SHIPYARD_PROJECT", "other")
    _, err = _ok(capsys, "component", "list", "--env", "dev")
    assert err.strip() == "acted on project other, environment dev"
    _, err = _ok(capsys, "component", "list", "-p", "demo", "-e", "production")
    assert err.strip() == "acted on project demo, environment production"
    shown = json.loads(_ok(capsys, "config", "show", "--json")[0])
    assert (shown["project"], shown["project_from"]) == ("other", "$SHIPYARD_PROJECT")
    assert (shown["environment"], shown["environment_from"]) == ("integration", "$SHIPYARD_ENV")


def test_json_output_is_only_json_and_carries_no_note(workdir: Path, capsys) -> None:
    _ok(capsys, "config", "init", "--project", "demo", "--env", "integration")
    out, err = _ok(capsys, "component", "list", "--json")
    assert json.loads(out) == [] and err == ""
    out, err = _ok(capsys, "env", "list", "--json")
    assert [e["name"] for e in json.loads(out)] == ["integration", "uat", "production"]
    assert err == ""


def test_with_no_value_anywhere_the_error_says_how_to_give_one(workdir: Path, capsys) -> None:
    line = _fails(capsys, 2, "component", "list", "--env", "uat")
    assert (
        "no project given: pass --project, set $SHIPYARD_PROJECT, or run 'shipyard project " in line
    )
    assert "'shipyard config init' makes one" in line
    _ok(capsys, "config", "init", "--project", "demo")
    line = _fails(capsys, 2, "component", "list")
    assert "no environment given: pass --env, set $SHIPYARD_ENV" in line
    assert f"{workdir / '.shipyard.toml'} has no environment" in line


def test_a_failed_command_prints_its_error_line_and_no_note(workdir: Path, capsys) -> None:
    _ok(capsys, "config", "init", "--project", "demo", "--env", "integration")
    line = _fails(capsys, 1, "component", "add", "no_such_model")
    assert "no_such_model" in line


def test_select_checks_the_registry_before_writing(workdir: Path, capsys) -> None:
    line = _fails(capsys, 2, "project", "select", "demo")
    assert "run 'shipyard config init'" in line
    _ok(capsys, "config", "init")
    out, _ = _ok(capsys, "project", "select", "demo")
    assert out.strip().endswith("project demo, no environment")
    _ok(capsys, "env", "select", "uat")
    before = (workdir / ".shipyard.toml").read_text()

    assert "project 'nope' does not exist" in _fails(capsys, 1, "project", "select", "nope")
    assert "'staging'" in _fails(capsys, 1, "env", "select", "staging")
    assert (workdir / ".shipyard.toml").read_text() == before

    # A project without the selected environment drops it rather than keep a wrong pair.
    out, err = _ok(capsys, "project", "select", "other")
    assert "other has no environment uat: it is no longer selected" in err
    shown = json.loads(_ok(capsys, "config", "show", "--json")[0])
    assert (shown["project"], shown["environment"]) == ("other", None)
    # env select with --project writes both, so the file never pairs a project with
    # another project's environment.
    _ok(capsys, "env", "select", "uat", "--project", "demo")
    shown = json.loads(_ok(capsys, "config", "show", "--json")[0])
    assert (shown["project"], shown["environment"]) == ("demo", "uat")


def test_init_refuses_to_replace_a_file_unless_forced(workdir: Path, capsys) -> None:
    _ok(capsys, "config", "init", "--project", "demo", "--env", "uat")
    assert "exists already" in _fails(capsys, 1, "config", "init", "--project", "other")
    assert "--env needs --project" in _fails(capsys, 2, "config", "init", "--env", "uat")
    out, _ = _ok(capsys, "config", "init", "--project", "other", "--force")
    assert out.strip().endswith("project other, no environment")


def test_a_nested_context_takes_over_below_its_folder(
    workdir: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ok(capsys, "config", "init", "--project", "demo", "--env", "uat")
    inner = workdir / "service"
    inner.mkdir()
    monkeypatch.chdir(inner)
    out, _ = _ok(capsys, "config", "init", "--project", "other", "--env", "dev")
    assert f"takes over from {workdir / '.shipyard.toml'}" in out
    assert "environment dev" in _ok(capsys, "component", "list")[1]
    monkeypatch.chdir(workdir)
    assert "environment uat" in _ok(capsys, "component", "list")[1]


@pytest.mark.parametrize(
    "text, problem",
    [
        ('project = "demo\n', "cannot read the working context"),
        ('project = "demo"\nenv = "uat"\n', "unknown key(s) env"),
        ("project = 3\n", "'project' must be a name in quotes"),
    ],
)
def test_a_broken_context_file_is_one_line_naming_it(
    workdir: Path, capsys, text: str, problem: str
) -> None:
    (workdir / ".shipyard.toml").write_text(text)
    line = _fails(capsys, 2, "component", "list")
    assert problem in line and str(workdir / ".shipyard.toml") in line


def test_names_with_quotes_survive_the_file(workdir: Path, capsys) -> None:
    from shipyard.cli._context import read, write

    path = write(workdir / ".shipyard.toml", 'a "quoted" \\ name', "é").path
    assert path is not None
    assert (read(path).project, read(path).environment) == ('a "quoted" \\ name', "é")
