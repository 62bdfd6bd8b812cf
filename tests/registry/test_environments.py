"""Environments: the promotion chain, its refusals, and challengers."""

from __future__ import annotations

import pytest

from shipyard.registry import Conflict, NotFound, Registry

from .conftest import MODEL


def test_create_environment_at_the_end_of_a_chain(demo: Registry) -> None:
    env = demo.create_environment("demo", "dr", promotes_to=None)
    assert (env.name, env.promotes_to, env.is_challenger, env.revision) == ("dr", None, False, 1)
    demo.set_promotes_to("demo", "production", "dr")
    assert demo.get_environment("demo", "production").promotes_to == "dr"


def test_a_cycle_is_refused_and_named(demo: Registry) -> None:
    with pytest.raises(
        Conflict, match="refused: production -> integration -> uat -> production would be a cycle"
    ):
        demo.set_promotes_to("demo", "production", "integration")
    with pytest.raises(Conflict, match="uat -> uat would be a cycle"):
        demo.set_promotes_to("demo", "uat", "uat")
    assert demo.get_environment("demo", "production").promotes_to is None


def test_duplicate_and_unknown_environments(demo: Registry) -> None:
    with pytest.raises(Conflict, match="already has an environment 'uat'"):
        demo.create_environment("demo", "uat")
    with pytest.raises(
        NotFound,
        match=r"no environment 'qa' \(environments: integration, uat, production\)",
    ):
        demo.create_environment("demo", "hotfix", promotes_to="qa")


def test_challenger_clones_components_and_environment_config(demo: Registry) -> None:
    demo.add_component("demo", "uat", MODEL, "v2", app_config={"threshold": 0.4})
    demo.set_environment_config("demo", "uat", {"reports": "s3://reports/uat"})
    demo.set_setting("replicas", 3, "demo", "uat")
    challenger = demo.create_challenger("demo", "uat-pr-7", "uat")
    assert (challenger.challenger_of, challenger.promotes_to) == ("uat", "uat")
    assert challenger.is_challenger
    [component] = demo.list_components("demo", "uat-pr-7")
    assert (component.tag, component.app_config) == ("v2", {"threshold": 0.4})
    assert demo.get_environment_config("demo", "uat-pr-7") == {"reports": "s3://reports/uat"}
    # Settings are not cloned: the challenger inherits from the project.
    assert demo.get_setting("replicas", "demo", "uat-pr-7").level == "default"


def test_challenger_promotes_back_into_its_source(demo: Registry) -> None:
    demo.add_component("demo", "uat", MODEL, "v1")
    demo.create_challenger("demo", "try-v3", "uat")
    demo.add_component("demo", "try-v3", MODEL, "v3")
    revision = demo.promote("demo", "try-v3")
    assert (revision.environment, revision.components[0].tag) == ("uat", "v3")


def test_nothing_may_promote_into_a_challenger(demo: Registry) -> None:
    demo.create_challenger("demo", "try", "uat")
    with pytest.raises(
        Conflict, match="cannot promote to 'try': nothing may promote into a challenger"
    ):
        demo.set_promotes_to("demo", "integration", "try")
    with pytest.raises(Conflict, match="nothing may promote into a challenger"):
        demo.create_environment("demo", "feed", promotes_to="try")
    with pytest.raises(Conflict, match="'try' is a challenger"):
        demo.create_challenger("demo", "try-of-try", "try")
    with pytest.raises(Conflict, match="always promotes into its source"):
        demo.set_promotes_to("demo", "try", "production")


def test_deleting_a_depended_on_environment_lists_the_dependants(demo: Registry) -> None:
    demo.create_challenger("demo", "uat-pr-1", "uat")
    with pytest.raises(Conflict) as refused:
        demo.delete_environment("demo", "uat")
    message = str(refused.value)
    assert "integration (promotes to it)" in message
    assert "uat-pr-1 (challenger of it)" in message
    assert [e.name for e in demo.list_environments("demo")] == [
        "integration",
        "uat",
        "production",
        "uat-pr-1",
    ]


def test_delete_environment(demo: Registry) -> None:
    demo.create_challenger("demo", "uat-pr-1", "uat")
    demo.add_component("demo", "uat-pr-1", MODEL)
    demo.delete_environment("demo", "uat-pr-1")
    demo.delete_environment("demo", "integration")
    assert [e.name for e in demo.list_environments("demo")] == ["uat", "production"]
    with pytest.raises(NotFound, match="no environment 'integration'"):
        demo.status("demo", "integration")
