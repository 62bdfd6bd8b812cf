"""Promotion, rollback, history, status and diff; atomicity; racing promotions."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from shipyard.registry import Conflict, InvalidInput, NotFound, Registry, _audit, _state
from shipyard.registry_http import RegistryClient, create_app

from ..conftest import serving
from .conftest import MODEL


def components(registry: Registry, env: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    return [(c.name, c.tag, c.app_config) for c in registry.list_components("demo", env)]


def test_promote_copies_the_whole_set_along_the_chain(demo: Registry) -> None:
    demo.add_component("demo", "integration", MODEL, "v2", app_config={"threshold": 0.6})
    uat = demo.promote("demo", "integration")
    assert (uat.environment, uat.number, uat.action) == ("uat", 2, "environment.promote")
    assert uat.reason == "promote from integration (its revision 2)"
    production = demo.promote("demo", "uat")
    assert production.environment == "production"
    assert components(demo, "production") == [(MODEL, "v2", {"threshold": 0.6})]


def test_promote_replaces_what_the_target_held(demo: Registry, bundles: list) -> None:
    demo.add_component("demo", "uat", MODEL, "v1")
    demo.set_setting("replicas", 4, "demo", "uat", MODEL)
    demo.apply_component_config("demo", "integration", "components: []\n")
    with pytest.raises(Conflict, match="nothing to promote: environment 'integration' holds no"):
        demo.promote("demo", "integration")
    demo.add_component("demo", "integration", MODEL, "v3")
    demo.promote("demo", "integration")
    assert components(demo, "uat") == [(MODEL, "v3", {})]
    # The target keeps its own component-level settings for components that stay.
    assert demo.get_setting("replicas", "demo", "uat", MODEL).value == 4


def test_the_end_of_the_chain_promotes_nowhere(demo: Registry) -> None:
    demo.add_component("demo", "production", MODEL)
    with pytest.raises(Conflict, match="'production' does not promote to another environment"):
        demo.promote("demo", "production")


def test_rollback_to_the_previous_and_to_a_chosen_revision(demo: Registry) -> None:
    for tag in ("v1", "v2", "v3"):
        demo.add_component("demo", "production", MODEL, tag)
    demo.set_environment_config("demo", "production", {"reports": "/r"})
    back = demo.rollback("demo", "production")
    assert (back.number, back.reason, back.config) == (6, "rollback to revision 4", {})
    assert components(demo, "production") == [(MODEL, "v3", {})]
    first = demo.rollback("demo", "production", to=2)
    assert (first.number, components(demo, "production")) == (7, [(MODEL, "v1", {})])
    with pytest.raises(NotFound, match=r"no revision 42 \(revisions: 1 to 7\)"):
        demo.rollback("demo", "production", to=42)


def test_rollback_needs_an_earlier_revision(demo: Registry) -> None:
    with pytest.raises(Conflict, match="no revision before 1"):
        demo.rollback("demo", "uat")


def test_rollback_refuses_to_empty_an_environment_unless_asked(demo: Registry) -> None:
    demo.set_setting("replicas", 2, "demo", "uat")  # revision 2: still no components
    demo.add_component("demo", "uat", MODEL, "v1")  # revision 3
    with pytest.raises(Conflict, match=rf"would remove every component \({MODEL}\)"):
        demo.rollback("demo", "uat")
    assert components(demo, "uat") == [(MODEL, "v1", {})]
    assert demo.get_revision("demo", "uat").number == 3  # nothing was written
    emptied = demo.rollback("demo", "uat", allow_empty=True)
    assert (emptied.number, emptied.components) == (4, [])


def test_rollback_refuses_to_empty_over_http_too(demo: Registry) -> None:
    demo.add_component("demo", "uat", MODEL, "v1")
    token = demo.create_token("ci", "deployer")[1]
    with serving(create_app(lambda: demo)) as url, RegistryClient(url, token) as client:
        with pytest.raises(Conflict, match="would remove every component"):
            client.rollback("demo", "uat")
        assert client.rollback("demo", "uat", allow_empty=True)["components"] == []


def test_history_lists_every_revision_newest_first(demo: Registry) -> None:
    demo.add_component("demo", "integration", MODEL, "v1")
    demo.add_component("demo", "integration", MODEL, "v2")
    demo.rollback("demo", "integration")
    history = demo.history("demo", "integration")
    assert [(r.number, r.action) for r in history] == [
        (4, "environment.rollback"),
        (3, "component.add"),
        (2, "component.add"),
        (1, "environment.create"),
    ]
    assert [[c.tag for c in r.components] for r in history] == [["v1"], ["v2"], ["v1"], []]
    assert {r.actor for r in history} == {"alice"}
    assert demo.get_revision("demo", "integration", 3).components[0].tag == "v2"


def test_status_names_the_revision_and_versions(demo: Registry) -> None:
    demo.add_component("demo", "uat", MODEL, "v2")
    status = demo.status("demo", "uat")
    assert (status.environment, status.promotes_to, status.revision) == ("uat", "production", 2)
    assert status.updated_by == "alice"
    assert [(c.name, c.tag, c.bundle_version) for c in status.components] == [
        (MODEL, "v2", "1.1.0")
    ]


def test_diff_between_environments_and_revisions(demo: Registry) -> None:
    demo.add_component("demo", "integration", MODEL, "v2", app_config={"t": 1})
    demo.set_setting("replicas", 2, "demo", "integration")
    demo.set_environment_config("demo", "integration", {"reports": "/int"})
    # Read as the change: what promoting integration would do to uat, and the reverse.
    diff = demo.diff("demo", "integration", "uat")
    assert not diff.same
    [change] = diff.components
    assert (change.change, change.a_version, change.b_version) == ("added", "v2", None)
    assert [(s.key, s.a, s.b) for s in diff.settings] == [("replicas", 2, None)]
    assert [(c.key, c.a, c.b) for c in diff.config] == [("reports", "/int", None)]
    [reverse] = demo.diff("demo", "uat", "integration").components
    assert (reverse.change, reverse.a_version, reverse.b_version) == ("removed", None, "v2")
    demo.add_component("demo", "integration", MODEL, "v3", app_config={"t": 2})
    [change] = demo.diff("demo", "integration@2", "integration").components
    assert (change.change, change.a_version, change.b_version) == (
        "version, app_config",
        "v2",
        "v3",
    )
    assert demo.diff("demo", "integration@2", "integration@2").same
    with pytest.raises(InvalidInput, match="ENVIRONMENT@REVISION"):
        demo.diff("demo", "uat@x", "uat")


def _fail_on_audit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the last step of every change fail, after its revision rows were written."""

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(_audit, "append", broken)


def test_a_failed_promotion_leaves_the_target_exactly_as_before(
    demo: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo.add_component("demo", "uat", MODEL, "v1")
    demo.add_component("demo", "integration", MODEL, "v3")
    before = (demo.status("demo", "uat"), demo.history("demo", "uat"))
    _fail_on_audit(monkeypatch)
    with pytest.raises(RuntimeError, match="disk full"):
        demo.promote("demo", "integration")
    monkeypatch.undo()
    assert (demo.status("demo", "uat"), demo.history("demo", "uat")) == before
    assert demo.promote("demo", "integration").number == before[0].revision + 1


def test_a_failed_apply_leaves_the_environment_exactly_as_before(
    demo: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo.add_component("demo", "uat", MODEL, "v1")
    demo.set_setting("replicas", 3, "demo", "uat", MODEL)
    before = (demo.status("demo", "uat"), demo.history("demo", "uat"))
    _fail_on_audit(monkeypatch)
    with pytest.raises(RuntimeError):
        demo.apply_component_config("demo", "uat", "components: []\n")
    monkeypatch.undo()
    assert (demo.status("demo", "uat"), demo.history("demo", "uat")) == before


def test_racing_promotions_into_one_environment_serialize(
    demo: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four challengers of uat promote into it at once: four revisions, none lost."""
    demo.add_component("demo", "uat", MODEL, "v1")
    sources = {}
    for n in range(4):
        name = f"try-{n}"
        demo.create_challenger("demo", name, "uat")
        demo.add_component("demo", name, MODEL, f"v{1 + n % 3}", app_config={"n": n})
        sources[name] = components(demo, name)
    start = demo.status("demo", "uat").revision
    # Widen the window between reading the target and writing its revision, so that
    # without the row lock the writers would surely collide.
    copy_state = _state.State.copy

    def slow_copy(self: Any) -> Any:
        time.sleep(0.05)
        return copy_state(self)

    monkeypatch.setattr(_state.State, "copy", slow_copy)
    barrier = threading.Barrier(len(sources))
    results: dict[str, Any] = {}

    def promote(name: str) -> None:
        barrier.wait()
        try:
            results[name] = demo.promote("demo", name)
        except Exception as exc:  # reported below
            results[name] = exc

    threads = [threading.Thread(target=promote, args=(name,)) for name in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(not isinstance(r, Exception) for r in results.values()), results
    numbers = sorted(r.number for r in results.values())
    assert numbers == list(range(start + 1, start + 1 + len(sources)))
    history = demo.history("demo", "uat")
    assert history[0].number == start + len(sources)
    last = max(results, key=lambda name: results[name].number)
    assert components(demo, "uat") == sources[last]
    by_number = {r.number: [(c.name, c.tag, c.app_config) for c in r.components] for r in history}
    for name, revision in results.items():
        assert by_number[revision.number] == sources[name]
    assert demo.audit_verify().ok
