"""Settings: inheritance global -> project -> environment -> component; worker groups."""

from __future__ import annotations

import pytest

from shipyard.registry import Conflict, InvalidInput, InvalidSetting, NotFound, Registry

from .conftest import MODEL


@pytest.fixture()
def deployed(demo: Registry) -> Registry:
    """The demo project with tumour_triage v1 in integration."""
    demo.add_component("demo", "integration", MODEL, "v1")
    return demo


def where(registry: Registry, key: str) -> tuple[object, str, bool]:
    found = registry.get_setting(key, "demo", "integration", MODEL)
    return found.value, found.level, found.inherited


def test_each_level_inherits_what_it_does_not_set(deployed: Registry) -> None:
    assert where(deployed, "replicas") == (1, "default", True)
    deployed.set_setting("replicas", 2)
    assert where(deployed, "replicas") == (2, "global", True)
    deployed.set_setting("replicas", 3, "demo")
    assert where(deployed, "replicas") == (3, "project", True)
    deployed.set_setting("replicas", 4, "demo", "integration")
    assert where(deployed, "replicas") == (4, "environment", True)
    deployed.set_setting("replicas", 5, "demo", "integration", MODEL)
    assert where(deployed, "replicas") == (5, "component", False)
    # Other places still see their own levels.
    assert deployed.get_setting("replicas", "demo", "uat").level == "project"
    assert deployed.get_setting("replicas").value == 2


def test_inherit_clears_one_level(deployed: Registry) -> None:
    deployed.set_setting("low_latency_mode", True, "demo")
    deployed.set_setting("low_latency_mode", False, "demo", "integration", MODEL)
    now = deployed.inherit_setting("low_latency_mode", "demo", "integration", MODEL)
    assert (now.value, now.level, now.inherited) == (True, "project", True)
    assert deployed.inherit_setting("low_latency_mode", "demo").level == "default"


def test_text_values_are_parsed(deployed: Registry) -> None:
    assert deployed.set_setting("replicas", "3", "demo").value == 3
    assert deployed.set_setting("low_latency_mode", "yes", "demo").value is True
    traffic = '{"weights": {"v1": 90, "v2": 10}, "shadow": "v3"}'
    found = deployed.set_setting("traffic", traffic, "demo", "integration", MODEL)
    assert found.value == {"weights": {"v1": 90, "v2": 10}, "shadow": "v3"}


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("replicas", 0, "0 is below 1"),
        ("replicas", "two", "'two' is not a whole number"),
        ("replicas", True, "True is not a whole number"),
        ("low_latency_mode", "maybe", "'maybe' is not true or false"),
        ("worker_group", "gpu", r"'gpu' is not a worker group \(worker groups: none defined\)"),
        ("colour", "red", "unknown setting"),
        ("traffic", {"weights": {"v1": 50, "v2": 40}}, "weights add up to 90, not 100"),
        (
            "traffic",
            {"weights": {"v1": 100, "v9": 0}},
            r"'v9' is not a tagged version \(v1, v2, v3\)",
        ),
        ("traffic", {"weights": {"v1": 100}, "shadow": "v1"}, "also receives live traffic"),
        ("traffic", {"weights": {"v1": 100}, "mirror": "v2"}, "unknown field"),
        ("traffic", {"weights": {"v1": 100.0}}, "whole percent"),
        ("traffic", "{not json", "not valid JSON"),
    ],
)
def test_invalid_values_are_refused_with_the_reason(
    deployed: Registry, key: str, value: object, reason: str
) -> None:
    with pytest.raises(InvalidSetting, match=reason):
        deployed.set_setting(key, value, "demo", "integration", MODEL)
    assert deployed.status("demo", "integration").revision == 2  # nothing was written


def test_traffic_is_a_component_setting(deployed: Registry) -> None:
    with pytest.raises(InvalidSetting, match="set it at component level"):
        deployed.set_setting("traffic", {"weights": {"v1": 100}}, "demo", "integration")


def test_levels_need_their_parents(deployed: Registry) -> None:
    with pytest.raises(InvalidInput, match="needs its environment"):
        deployed.get_setting("replicas", "demo", component=MODEL)
    with pytest.raises(NotFound, match="no component 'ghost'"):
        deployed.set_setting("replicas", 2, "demo", "integration", "ghost")


def test_environment_settings_make_revisions(deployed: Registry) -> None:
    revision = deployed.set_setting("replicas", 2, "demo", "integration", MODEL)
    assert revision.level == "component"
    latest = deployed.history("demo", "integration")[0]
    assert latest.settings == {"environment": {}, "components": {MODEL: {"replicas": 2}}}
    assert latest.reason == f"component {MODEL}: replicas = 2"


def test_status_shows_effective_settings(deployed: Registry) -> None:
    deployed.create_worker_group("cpu-small", "cpu-2-8gb", 3)
    deployed.set_setting("worker_group", "cpu-small", "demo", "integration")
    deployed.set_setting("replicas", 2, "demo", "integration", MODEL)
    status = deployed.status("demo", "integration")
    assert status.settings["worker_group"].value == "cpu-small"
    assert status.settings["replicas"].level == "default"
    [component] = status.components
    assert (component.settings["replicas"].value, component.settings["replicas"].level) == (
        2,
        "component",
    )
    assert component.settings["worker_group"].level == "environment"


def test_worker_groups_crud(registry: Registry) -> None:
    registry.create_worker_group("gpu", "gpu-a10-24gb", 2)
    with pytest.raises(Conflict, match="already exists"):
        registry.create_worker_group("gpu", "gpu-a10-24gb", 2)
    with pytest.raises(InvalidInput, match="count 0 must be a whole number >= 1"):
        registry.create_worker_group("tiny", "cpu", 0)
    updated = registry.update_worker_group("gpu", count=4)
    assert (updated.machine_size, updated.count) == ("gpu-a10-24gb", 4)
    assert [g.name for g in registry.list_worker_groups()] == ["gpu"]
    registry.delete_worker_group("gpu")
    assert registry.list_worker_groups() == []
    with pytest.raises(NotFound, match=r"worker group 'gpu' does not exist"):
        registry.delete_worker_group("gpu")


def test_a_worker_group_in_use_cannot_be_deleted(deployed: Registry) -> None:
    deployed.create_worker_group("gpu", "gpu-a10-24gb", 2)
    deployed.set_setting("worker_group", "gpu", "demo")
    deployed.set_setting("worker_group", "gpu", "demo", "integration", MODEL)
    with pytest.raises(Conflict) as refused:
        deployed.delete_worker_group("gpu")
    assert "project demo" in str(refused.value)
    assert f"component demo/integration/{MODEL}" in str(refused.value)


def test_rollback_refuses_a_worker_group_that_is_gone(deployed: Registry) -> None:
    deployed.create_worker_group("gpu", "gpu-a10-24gb", 2)
    deployed.set_setting("worker_group", "gpu", "demo", "integration")
    with_group = deployed.status("demo", "integration").revision
    deployed.inherit_setting("worker_group", "demo", "integration")
    deployed.delete_worker_group("gpu")
    with pytest.raises(Conflict, match="worker group 'gpu', which no longer exists"):
        deployed.rollback("demo", "integration", to=with_group)
