"""Components in environments, component config files, environment and app config."""

from __future__ import annotations

import pytest
import yaml

from shipyard.registry import InvalidComponentConfig, InvalidInput, NotFound, Registry

from .conftest import MODEL


def test_add_uses_the_default_version_and_replaces_the_one_there(demo: Registry) -> None:
    first = demo.add_component("demo", "integration", MODEL)
    assert [(c.name, c.tag, c.bundle_version) for c in first.components] == [(MODEL, "v3", "1.2.0")]
    second = demo.add_component("demo", "integration", MODEL, version="v1")
    assert second.number == first.number + 1
    assert [c.tag for c in demo.list_components("demo", "integration")] == ["v1"]


def test_a_candidate_can_be_added_by_its_version_id(registry: Registry, bundles: list) -> None:
    registry.create_project("demo")
    candidate = registry.register_model("demo", bundles[0])
    revision = registry.add_component("demo", "integration", MODEL, candidate.version_id)
    assert (revision.components[0].tag, revision.components[0].version_id) == (None, 1)


def test_add_refuses_an_unknown_version_and_changes_nothing(demo: Registry) -> None:
    with pytest.raises(NotFound, match="has no version v7"):
        demo.add_component("demo", "integration", MODEL, "v7")
    assert demo.list_components("demo", "integration") == []
    assert len(demo.history("demo", "integration")) == 1


def test_remove_component(demo: Registry) -> None:
    demo.add_component("demo", "integration", MODEL)
    demo.set_setting("replicas", 2, "demo", "integration", MODEL)
    revision = demo.remove_component("demo", "integration", MODEL)
    assert revision.components == []
    assert revision.settings == {"environment": {}, "components": {}}
    with pytest.raises(NotFound, match=r"no component 'tumour_triage' \(components: none\)"):
        demo.remove_component("demo", "integration", MODEL)


def test_save_then_apply_round_trips(demo: Registry) -> None:
    demo.add_component("demo", "integration", MODEL, "v2", app_config={"threshold": 0.3})
    text = demo.save_component_config("demo", "integration")
    document = yaml.safe_load(text)
    assert document["components"] == [
        {
            "name": MODEL,
            "kind": "model",
            "version": "v2",
            "digest": demo.get_version("demo", MODEL, "v2").digest,
            "app_config": {"threshold": 0.3},
        }
    ]
    revision = demo.apply_component_config("demo", "uat", text)
    assert [(c.tag, c.app_config) for c in revision.components] == [("v2", {"threshold": 0.3})]
    assert demo.save_component_config("demo", "uat").split("\n", 1)[1] == text.split("\n", 1)[1]
    again = demo.apply_component_config("demo", "uat", text)
    assert again.number == revision.number  # nothing changed, no new revision


def test_apply_makes_the_environment_match_exactly(demo: Registry, bundles: list) -> None:
    demo.add_component("demo", "integration", MODEL, "v1")
    revision = demo.apply_component_config("demo", "integration", "components: []\n")
    assert revision.components == []
    assert revision.reason == "apply component config (0 components)"


def test_apply_lists_every_problem_and_changes_nothing(demo: Registry) -> None:
    demo.add_component("demo", "uat", MODEL, "v1")
    before = demo.status("demo", "uat")
    text = """
components:
  - name: tumour_triage
    version: v9
  - name: ghost
    version: v1
  - name: tumour_triage
    version: v1
    colour: red
"""
    with pytest.raises(InvalidComponentConfig) as refused:
        demo.apply_component_config("demo", "uat", text)
    problems = refused.value.problems
    assert any("listed twice" in p for p in problems)
    assert any("unknown field(s) colour" in p for p in problems)
    assert any("has no version v9" in p for p in problems)
    assert any("no model 'ghost'" in p for p in problems)
    assert str(refused.value).startswith("component config refused, nothing changed: ")
    assert demo.status("demo", "uat") == before


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("components: [", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping with a 'components' list"),
        ("components:\n  - version: v1\n", "'name' is missing"),
        ("components:\n  - name: tumour_triage\n    app_config: [1]\n", "must be a mapping"),
    ],
)
def test_malformed_component_configs_are_refused(demo: Registry, text: str, problem: str) -> None:
    with pytest.raises(InvalidComponentConfig, match=problem):
        demo.apply_component_config("demo", "uat", text)


def test_apply_checks_the_digest_when_given(demo: Registry) -> None:
    text = f"components:\n  - name: {MODEL}\n    version: v1\n    digest: '{'0' * 64}'\n"
    with pytest.raises(InvalidComponentConfig, match="the file says 000000000000"):
        demo.apply_component_config("demo", "uat", text)


def test_app_config_moves_with_promotion_environment_config_does_not(demo: Registry) -> None:
    demo.add_component("demo", "integration", MODEL, "v1", app_config={"threshold": 0.7})
    demo.set_environment_config("demo", "integration", {"reports": "/tmp/int"})
    demo.set_environment_config("demo", "uat", {"reports": "/tmp/uat"})
    revision = demo.promote("demo", "integration")
    assert revision.components[0].app_config == {"threshold": 0.7}
    assert revision.config == {"reports": "/tmp/uat"}
    assert demo.get_environment_config("demo", "uat") == {"reports": "/tmp/uat"}


def test_environment_config_must_be_a_mapping(demo: Registry) -> None:
    with pytest.raises(InvalidInput, match="must be a mapping"):
        demo.set_environment_config("demo", "uat", ["a"])  # type: ignore[arg-type]
