"""env diff shows what a new version changes in a model's prompts, LLM settings and
knowledge as unified text diffs, read from both bundles in the artifact store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.registry import Registry, to_json
from shipyard.registry._genai_diff import MAX_DIFF_LINES, file_diffs
from shipyard.registry_http import RegistryClient, create_app
from tests.cli.test_cli import run_cli
from tests.conftest import serving

from ._loans import SYSTEM, build
from .conftest import registry_env

pytestmark = pytest.mark.integration

NEW_SYSTEM = SYSTEM.replace("Decide by the policy below only.", "Decide by the policy; cite it.")
TEMPLATE = "objects/underwriting/system.jinja"


@pytest.fixture()
def two_versions(loans: Registry, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """loans: uat runs v1; integration runs v2, with a new system prompt and seed 11."""
    folder = tmp_path_factory.mktemp("v2")
    bundle = build("1.1.0", system=NEW_SYSTEM, seed=11).export(folder, created_by="test")
    version = loans.register_model("loans", bundle)
    loans.tag("loans", version.model, version.version_id)
    loans.add_component("loans", "integration", "loan_advice", "v2")
    return loans


def test_a_version_change_lists_the_template_and_setting_diffs(two_versions: Registry) -> None:
    diff = to_json(two_versions.diff("loans", "integration", "uat"))
    (component,) = diff["components"]
    assert (component["change"], component["b_version"], component["a_version"]) == (
        "version",
        "v1",
        "v2",
    )
    files = {f["path"]: f for f in component["files"]}
    assert sorted(files) == ["objects/answer/llm.json", TEMPLATE]
    template = files[TEMPLATE]
    assert (template["node"], template["kind"], template["change"]) == (
        "underwriting",
        "prompt",
        "changed",
    )
    assert template["diff"].startswith(f"--- uat v1/{TEMPLATE}\n+++ integration v2/{TEMPLATE}\n")
    assert "-You are an underwriter. Decide by the policy below only.\n" in template["diff"]
    assert "+You are an underwriter. Decide by the policy; cite it.\n" in template["diff"]
    assert (template["added"], template["removed"]) == (1, 1)
    settings = files["objects/answer/llm.json"]
    assert settings["kind"] == "llm"
    assert '-  "seed": 7,\n' in settings["diff"] and '+  "seed": 11,\n' in settings["diff"]
    # Rolling integration back to the same version as uat changes nothing of the kind.
    assert to_json(two_versions.diff("loans", "uat", "uat"))["components"] == []


def test_env_diff_prints_the_text_diffs_and_gives_them_in_json(
    two_versions: Registry,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in registry_env(database_url, tmp_path).items():
        monkeypatch.setenv(name, value)
    code, out, err = run_cli(capsys, "env", "diff", "integration", "uat", "--project", "loans")
    assert code == 0, err
    assert f"{TEMPLATE} (prompt underwriting): changed, +1 -1" in out
    assert "-You are an underwriter. Decide by the policy below only." in out
    assert "+You are an underwriter. Decide by the policy; cite it." in out
    assert '+  "seed": 11,' in out
    code, out, _ = run_cli(
        capsys, "env", "diff", "integration", "uat", "--project", "loans", "--json"
    )
    (component,) = json.loads(out)["components"]
    assert {f["path"] for f in component["files"]} == {"objects/answer/llm.json", TEMPLATE}
    # Promoting shows which GenAI files change, before it asks.
    code, out, _ = run_cli(
        capsys, "env", "promote", "integration", "--project", "loans", "--dry-run"
    )
    assert code == 0 and f"{TEMPLATE} changed (+1 -1)" in out


def test_the_registry_api_answers_the_same_diffs(two_versions: Registry) -> None:
    token = two_versions.create_token("reviewer", "viewer")[1]
    with serving(create_app(lambda: two_versions)) as url, RegistryClient(url, token) as client:
        answered = client.diff("loans", "integration", "uat")
    assert answered == to_json(two_versions.diff("loans", "integration", "uat"))
    assert answered["components"][0]["files"][1]["path"] == TEMPLATE


def test_a_new_node_shows_as_added_and_a_rewritten_document_is_cut_short() -> None:
    old = {"objects/policy/files/policy.md": ("policy", "knowledge", "a\n" * 10)}
    new = {
        "objects/policy/files/policy.md": ("policy", "knowledge", "b\n" * 1000),
        "objects/check/schema.json": ("check", "parse", '{"type": "object"}'),
    }
    added, rewritten = file_diffs(old, new, "prod v1", "uat v2")
    assert (added.path, added.change, added.added, added.removed) == (
        "objects/check/schema.json",
        "added",
        1,
        0,
    )
    assert added.diff.startswith("--- /dev/null\n+++ uat v2/objects/check/schema.json\n")
    assert added.diff.endswith('+{"type": "object"}\n\\ No newline at end of file\n')
    assert (rewritten.added, rewritten.removed, rewritten.truncated) == (1000, 10, True)
    assert len(rewritten.diff.splitlines()) == MAX_DIFF_LINES + 1
    assert rewritten.diff.endswith("more lines of diff left out\n")
    (removed,) = file_diffs(new, old, "uat v2", "prod v1")[:1]
    assert removed.change == "removed" and removed.diff.endswith(
        '+++ /dev/null\n@@ -1 +0,0 @@\n-{"type": "object"}\n\\ No newline at end of file\n'
    )
